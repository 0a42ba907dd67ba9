package api

import (
	"context"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
	"github.com/wxrelay/wxrelay/relay/health"
	"github.com/wxrelay/wxrelay/tenant"
)

// HealthChecker computes tenants' health; *health.Checker is one.
type HealthChecker interface {
	Check(ctx context.Context, t *tenant.Tenant) (health.Health, error)
	Latest(tid tenant.ID) (health.Health, bool)
}

// healthOf is t's health for a listing: the latest computed (every 15 s)
// or, for a tenant not computed yet, computed now.
func (s *tenantServer) healthOf(ctx context.Context, t *tenant.Tenant, fresh bool) (*wxrelayv1.Health, error) {
	if s.health == nil {
		return nil, nil
	}
	if !fresh {
		if h, ok := s.health.Latest(t.ID); ok {
			return toProtoHealth(h), nil
		}
	}
	h, err := s.health.Check(ctx, t)
	if err != nil {
		return nil, err
	}
	return toProtoHealth(h), nil
}

var healthStates = map[health.State]wxrelayv1.Health_State{
	health.StateOK:       wxrelayv1.Health_STATE_OK,
	health.StateDegraded: wxrelayv1.Health_STATE_DEGRADED,
	health.StateFailing:  wxrelayv1.Health_STATE_FAILING,
}

var healthKinds = map[health.Kind]wxrelayv1.Health_Kind{
	health.WebhookFailing:      wxrelayv1.Health_KIND_WEBHOOK_FAILING,
	health.DeliveryBacklog:     wxrelayv1.Health_KIND_DELIVERY_BACKLOG,
	health.TokenError:          wxrelayv1.Health_KIND_TOKEN_ERROR,
	health.NoPushes:            wxrelayv1.Health_KIND_NO_PUSHES,
	health.ReplyWindowRefusals: wxrelayv1.Health_KIND_REPLY_WINDOW_REFUSALS,
	health.PushRejected:        wxrelayv1.Health_KIND_PUSH_REJECTED,

	health.AuthorizationPending: wxrelayv1.Health_KIND_AUTHORIZATION_PENDING,
	health.AuthorizationRevoked: wxrelayv1.Health_KIND_AUTHORIZATION_REVOKED,
	health.RefreshTokenLost:     wxrelayv1.Health_KIND_REFRESH_TOKEN_LOST,
	health.PermissionMissing:    wxrelayv1.Health_KIND_PERMISSION_SET_MISSING,

	health.ComponentTicketStale:   wxrelayv1.Health_KIND_COMPONENT_TICKET_STALE,
	health.ComponentTicketMissing: wxrelayv1.Health_KIND_COMPONENT_TICKET_MISSING,
	health.ComponentTokenError:    wxrelayv1.Health_KIND_COMPONENT_TOKEN_ERROR,
}

func toProtoHealth(h health.Health) *wxrelayv1.Health {
	out := &wxrelayv1.Health{State: healthStates[h.State], ComputeTime: timestamppb.New(h.ComputeTime)}
	for _, r := range h.Reasons {
		pr := &wxrelayv1.Health_Reason{
			Kind: healthKinds[r.Kind], Severity: healthStates[r.Severity], Message: r.Message,
			ConsecutiveFailures: int32(r.ConsecutiveFailures), LastHttpStatus: int32(r.LastHTTPStatus),
			LastErrorClass: r.LastErrorClass, Pending: int64(r.Pending), LastErrcode: int32(r.LastErrcode),
			Refusals: int64(r.Refusals), Sends: int64(r.Sends),
		}
		if !r.Since.IsZero() {
			pr.Since = timestamppb.New(r.Since)
		}
		if r.OldestPendingAge > 0 {
			pr.OldestPendingAge = durationpb.New(r.OldestPendingAge)
		}
		if !r.LastPush.IsZero() {
			pr.LastPushTime = timestamppb.New(r.LastPush)
		}
		if r.Rejected > 0 {
			pr.Rejected, pr.LastRejection = r.Rejected, string(r.LastRejection)
			pr.LastRejectionTime = timestamppb.New(r.LastRejectionTime)
		}
		out.Reasons = append(out.Reasons, pr)
	}
	return out
}
