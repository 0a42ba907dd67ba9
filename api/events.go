package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/tenant"
)

// Redeliverer queues an event for delivery again; delivery.Dispatcher is one.
type Redeliverer interface {
	Redeliver(ctx context.Context, tid tenant.ID, id relay.EventID) error
}

// EventAppender stores an event durably for delivery; relay.Ingestor is one.
type EventAppender interface {
	Append(ctx context.Context, e *relay.Event) (relay.AppendResult, error)
}

// eventServer implements wxrelayv1.EventServiceServer on relay.Events.
type eventServer struct {
	wxrelayv1.UnimplementedEventServiceServer
	events     *relay.Events
	redeliver  Redeliverer
	tenants    *tenant.Service
	appender   EventAppender       // nil: no test events
	recoveries relay.RecoveryStore // nil: no recoveries
}

// maxRecoveryAge is how far back a recovery may reach: failed events are
// kept 30 days by default, and a since further back asks for nothing more.
const maxRecoveryAge = 366 * 24 * time.Hour

func (s *eventServer) RecoverFailedEvents(ctx context.Context, req *wxrelayv1.RecoverFailedEventsRequest) (*wxrelayv1.Recovery, error) {
	if s.recoveries == nil {
		return nil, status.Error(codes.Unimplemented, "this relay recovers no events")
	}
	now := time.Now()
	switch {
	case req.GetSince() == nil:
		return nil, &tenant.FieldError{Field: "since", Reason: "is required: the time from which failed events are delivered again, e.g. 2026-12-05T08:00:00Z"}
	case req.GetSince().AsTime().After(now):
		return nil, &tenant.FieldError{Field: "since", Reason: "is in the future"}
	}
	since := req.GetSince().AsTime()
	if earliest := now.Add(-maxRecoveryAge); since.Before(earliest) {
		since = earliest
	}
	t, err := s.tenants.Get(ctx, tenant.ID(req.GetId()))
	if err != nil {
		return nil, err
	}
	r, err := s.recoveries.CreateRecovery(ctx, t.ID, since, sender(ctx), now)
	if err != nil {
		return nil, err
	}
	return toProtoRecovery(r), nil
}

func (s *eventServer) GetRecovery(ctx context.Context, req *wxrelayv1.GetRecoveryRequest) (*wxrelayv1.Recovery, error) {
	if s.recoveries == nil {
		return nil, status.Error(codes.Unimplemented, "this relay recovers no events")
	}
	r, err := s.recoveries.Recovery(ctx, tenant.ID(req.GetId()), req.GetRecoveryId())
	if err != nil {
		return nil, err
	}
	return toProtoRecovery(r), nil
}

func (s *eventServer) ListRecoveries(ctx context.Context, req *wxrelayv1.ListRecoveriesRequest) (*wxrelayv1.ListRecoveriesResponse, error) {
	resp := &wxrelayv1.ListRecoveriesResponse{}
	if s.recoveries == nil {
		return resp, nil
	}
	if _, err := s.tenants.Get(ctx, tenant.ID(req.GetId())); err != nil {
		return nil, err
	}
	rs, err := s.recoveries.Recoveries(ctx, tenant.ID(req.GetId()), 20)
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		resp.Recoveries = append(resp.Recoveries, toProtoRecovery(r))
	}
	return resp, nil
}

func toProtoRecovery(r *relay.Recovery) *wxrelayv1.Recovery {
	out := &wxrelayv1.Recovery{Id: r.ID, Since: timestamppb.New(r.Since), State: wxrelayv1.Recovery_STATE_RUNNING,
		Total: r.Total, Recovered: r.Recovered, RequestedBy: r.RequestedBy, CreateTime: timestamppb.New(r.CreateTime)}
	if r.Done {
		out.State, out.FinishTime = wxrelayv1.Recovery_STATE_DONE, timestamppb.New(r.FinishTime)
	}
	return out
}

func (s *eventServer) SendTestEvent(ctx context.Context, req *wxrelayv1.SendTestEventRequest) (*wxrelayv1.Event, error) {
	if s.appender == nil {
		return nil, status.Error(codes.Unimplemented, "this relay sends no test events")
	}
	t, err := s.tenants.Get(ctx, tenant.ID(req.GetId()))
	if err != nil {
		return nil, err
	}
	e, err := relay.NewTestEvent(t, req.GetNote(), sender(ctx), time.Now())
	if err != nil {
		return nil, err
	}
	res, err := s.appender.Append(ctx, e)
	if err != nil {
		return nil, err
	}
	return s.event(ctx, t.ID, res.ID)
}

func (s *eventServer) ListEvents(ctx context.Context, req *wxrelayv1.ListEventsRequest) (*wxrelayv1.ListEventsResponse, error) {
	f := relay.EventFilter{Type: req.GetType(), OpenID: req.GetOpenid()}
	var ok bool
	if f.State, ok = eventStates[req.GetState()]; !ok {
		return nil, &tenant.FieldError{Field: "state", Reason: "must be STATE_PENDING, STATE_DELIVERED or STATE_FAILED"}
	}
	if req.ReceivedAfter != nil {
		f.ReceivedAfter = req.GetReceivedAfter().AsTime()
	}
	if req.ReceivedBefore != nil {
		f.ReceivedBefore = req.GetReceivedBefore().AsTime()
	}
	evs, next, err := s.events.List(ctx, tenant.ID(req.GetId()), int(req.GetPageSize()), req.GetPageToken(), f)
	if err != nil {
		return nil, err
	}
	resp := &wxrelayv1.ListEventsResponse{NextPageToken: next}
	for _, e := range evs {
		resp.Events = append(resp.Events, toProtoEvent(e))
	}
	return resp, nil
}

func (s *eventServer) GetEvent(ctx context.Context, req *wxrelayv1.GetEventRequest) (*wxrelayv1.Event, error) {
	return s.event(ctx, tenant.ID(req.GetId()), relay.EventID(req.GetEventId()))
}

func (s *eventServer) RedeliverEvent(ctx context.Context, req *wxrelayv1.RedeliverEventRequest) (*wxrelayv1.Event, error) {
	tid, id := tenant.ID(req.GetId()), relay.EventID(req.GetEventId())
	if err := s.redeliver.Redeliver(ctx, tid, id); err != nil {
		return nil, err
	}
	return s.event(ctx, tid, id)
}

// event is one event with its payload and attempts.
func (s *eventServer) event(ctx context.Context, tid tenant.ID, id relay.EventID) (*wxrelayv1.Event, error) {
	e, attempts, err := s.events.GetWithAttempts(ctx, tid, id)
	if err != nil {
		return nil, err
	}
	pe := toProtoEvent(e)
	pe.DeliveredBody = string(e.Payload)
	if pe.Payload, err = payloadStruct(e.Payload); err != nil {
		return nil, fmt.Errorf("event %s: %w", e.ID, err)
	}
	for _, a := range attempts {
		pe.Attempts = append(pe.Attempts, &wxrelayv1.Attempt{
			Time:       timestamppb.New(a.Time),
			HttpStatus: int32(a.HTTPStatus),
			LatencyMs:  int32(a.Latency.Milliseconds()),
			Error:      a.Error,

			ResponseHeaders: a.ResponseHeaders,
			ResponseBody:    strings.ToValidUTF8(string(a.ResponseBody[:min(len(a.ResponseBody), maxShownResponseBody)]), ""),
		})
	}
	if e.State == relay.StatePending {
		if pe.Held, err = s.held(ctx, tid); err != nil {
			return nil, err
		}
	}
	return pe, nil
}

// BreakerState tells whether a tenant's webhook's circuit breaker holds
// its deliveries; delivery.Dispatcher is one.
type BreakerState interface {
	HeldUntil(tid tenant.ID, url string) time.Time
}

// held says what holds tenant tid's pending events beyond their next
// attempt time, if anything does.
func (s *eventServer) held(ctx context.Context, tid tenant.ID) (string, error) {
	t, err := s.tenants.Get(ctx, tid)
	if err != nil {
		return "", err
	}
	if t.State == tenant.StateDisabled {
		return "the tenant is disabled: its events wait until it is active again", nil
	}
	if b, ok := s.redeliver.(BreakerState); ok {
		if until := b.HeldUntil(tid, t.WebhookURL); !until.IsZero() {
			return fmt.Sprintf("the webhook's circuit breaker is open after failures in a row: no attempt before %s", until.UTC().Format(time.RFC3339)), nil
		}
	}
	return "", nil
}

var eventStates = map[wxrelayv1.Event_State]relay.State{
	wxrelayv1.Event_STATE_UNSPECIFIED: relay.StateUnspecified,
	wxrelayv1.Event_STATE_PENDING:     relay.StatePending,
	wxrelayv1.Event_STATE_DELIVERED:   relay.StateDelivered,
	wxrelayv1.Event_STATE_FAILED:      relay.StateFailed,
}

func toProtoEvent(e *relay.Event) *wxrelayv1.Event {
	pe := &wxrelayv1.Event{
		Id:           string(e.ID),
		Type:         e.Type,
		Openid:       e.OpenID,
		ReceiveTime:  timestamppb.New(e.ReceiveTime),
		State:        toProto(eventStates, e.State),
		AttemptCount: int32(e.AttemptCount),
	}
	if e.State == relay.StatePending && !e.DueAt.IsZero() {
		pe.NextAttemptTime = timestamppb.New(e.DueAt)
	}
	return pe
}

// payloadStruct turns the stored webhook body into a Struct. Struct numbers
// are doubles, which would round a MsgId (beyond 2^53); such integers
// become strings instead, as protojson writes every 64-bit integer.
func payloadStruct(payload []byte) (*structpb.Struct, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode payload: %w", err)
	}
	return structpb.NewStruct(exactNumbers(m).(map[string]any))
}

func exactNumbers(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = exactNumbers(x)
		}
		return v
	case []any:
		for i, x := range v {
			v[i] = exactNumbers(x)
		}
		return v
	case json.Number:
		if beyondDouble(string(v)) {
			return string(v)
		}
		if f, err := v.Float64(); err == nil {
			return f
		}
		return string(v)
	default:
		return v
	}
}

// beyondDouble reports whether n is an integer literal that a float64
// cannot hold exactly (|n| > 2^53).
func beyondDouble(n string) bool {
	digits := strings.TrimPrefix(n, "-")
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return false // a fraction or exponent: a double anyway
	}
	u, err := strconv.ParseUint(digits, 10, 64)
	return err != nil || u > 1<<53
}

// maxShownResponseBody is how much of a webhook's answer an attempt shows:
// its first KiB (4 are kept), enough to tell a proxy's error page or the
// tenant's own error.
const maxShownResponseBody = 1 << 10

// sender names the caller for a test event's data: the admin, or the
// tenant itself.
func sender(ctx context.Context) string {
	if p, ok := callerOf(ctx); ok && !p.Admin {
		return "tenant"
	}
	return "admin"
}
