package api

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/tenant"
)

// operatorServer implements wxrelayv1.OperatorServiceServer.
type operatorServer struct {
	wxrelayv1.UnimplementedOperatorServiceServer
	auth  *tenant.Authenticator
	store tenant.OperatorStore
}

func (s *operatorServer) CreateOperator(ctx context.Context, req *wxrelayv1.CreateOperatorRequest) (*wxrelayv1.CreateOperatorResponse, error) {
	if s.store == nil {
		return nil, errNoOperators
	}
	role, ok := operatorRoles[req.GetRole()]
	if !ok {
		return nil, &tenant.FieldError{Field: "role", Reason: "must be ROLE_ADMIN or ROLE_VIEWER"}
	}
	p, _ := callerOf(ctx)
	o, key, err := s.auth.NewOperator(ctx, req.GetName(), role, p.Actor())
	if err != nil {
		return nil, err
	}
	return &wxrelayv1.CreateOperatorResponse{Operator: toProtoOperator(o), Key: key}, nil
}

// errNoOperators answers operator calls on a relay without an operator
// store.
var errNoOperators = status.Error(codes.Unimplemented, "this relay has no operators")

func (s *operatorServer) ListOperators(ctx context.Context, _ *wxrelayv1.ListOperatorsRequest) (*wxrelayv1.ListOperatorsResponse, error) {
	if s.store == nil {
		return nil, errNoOperators
	}
	os, err := s.store.Operators(ctx)
	if err != nil {
		return nil, err
	}
	resp := &wxrelayv1.ListOperatorsResponse{}
	for _, o := range os {
		resp.Operators = append(resp.Operators, toProtoOperator(o))
	}
	return resp, nil
}

func (s *operatorServer) DeleteOperator(ctx context.Context, req *wxrelayv1.DeleteOperatorRequest) (*emptypb.Empty, error) {
	if s.store == nil {
		return nil, errNoOperators
	}
	if err := s.store.DeleteOperator(ctx, tenant.OperatorID(req.GetId())); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

func (s *operatorServer) RotateOperatorKey(ctx context.Context, req *wxrelayv1.RotateOperatorKeyRequest) (*wxrelayv1.CreateOperatorResponse, error) {
	if s.store == nil {
		return nil, errNoOperators
	}
	o, key, err := s.auth.RotateOperatorKey(ctx, tenant.OperatorID(req.GetId()))
	if err != nil {
		return nil, err
	}
	return &wxrelayv1.CreateOperatorResponse{Operator: toProtoOperator(o), Key: key}, nil
}

// operatorRoles maps the API's roles to the domain's; unspecified is an
// admin, as operators were before roles.
var operatorRoles = map[wxrelayv1.Operator_Role]tenant.OperatorRole{
	wxrelayv1.Operator_ROLE_UNSPECIFIED: tenant.RoleAdmin,
	wxrelayv1.Operator_ROLE_ADMIN:       tenant.RoleAdmin,
	wxrelayv1.Operator_ROLE_VIEWER:      tenant.RoleViewer,
}

func toProtoOperator(o *tenant.Operator) *wxrelayv1.Operator {
	role := wxrelayv1.Operator_ROLE_ADMIN
	if o.Role == tenant.RoleViewer {
		role = wxrelayv1.Operator_ROLE_VIEWER
	}
	return &wxrelayv1.Operator{Id: string(o.ID), Name: o.Name, Role: role, CreateTime: timestamppb.New(o.CreateTime), CreatedBy: o.CreatedBy}
}

// auditServer implements wxrelayv1.AuditServiceServer.
type auditServer struct {
	wxrelayv1.UnimplementedAuditServiceServer
	store tenant.AuditStore
}

func (s *auditServer) ListAuditEntries(ctx context.Context, req *wxrelayv1.ListAuditEntriesRequest) (*wxrelayv1.ListAuditEntriesResponse, error) {
	if s.store == nil {
		return &wxrelayv1.ListAuditEntriesResponse{}, nil
	}
	size, err := relay.PageSize(int(req.GetPageSize()))
	if err != nil {
		return nil, err
	}
	before, err := relay.DecodeCursor(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	entries, err := s.store.AuditEntries(ctx, before, size+1)
	if err != nil {
		return nil, err
	}
	resp := &wxrelayv1.ListAuditEntriesResponse{}
	if len(entries) > size {
		entries = entries[:size]
		resp.NextPageToken = relay.EncodeCursor(entries[size-1].Seq)
	}
	for _, e := range entries {
		resp.Entries = append(resp.Entries, &wxrelayv1.AuditEntry{Time: timestamppb.New(e.Time), Actor: e.Actor,
			Method: e.Method, Target: e.Target, Detail: e.Detail, Code: e.Code})
	}
	return resp, nil
}

// audited are the methods that change something, whose calls by an
// operator or an admin token go to the audit log. A tenant's own calls
// (redeliveries, test events with its API key) are its traffic, as its
// sends are, and are not: so a tenant cannot fill the log, nor spend the
// write lock on it.
var audited = map[string]bool{
	wxrelayv1.TenantService_CreateTenant_FullMethodName:        true,
	wxrelayv1.TenantService_UpdateTenant_FullMethodName:        true,
	wxrelayv1.TenantService_DeleteTenant_FullMethodName:        true,
	wxrelayv1.TenantService_RotateApiKey_FullMethodName:        true,
	wxrelayv1.TenantService_RotateWebhookSecret_FullMethodName: true,
	wxrelayv1.TenantService_AuthorizationUrl_FullMethodName:    true,
	wxrelayv1.ComponentService_CreateComponent_FullMethodName:  true,
	wxrelayv1.ComponentService_UpdateComponent_FullMethodName:  true,
	wxrelayv1.ComponentService_DeleteComponent_FullMethodName:  true,
	wxrelayv1.EventService_RedeliverEvent_FullMethodName:       true,
	wxrelayv1.EventService_SendTestEvent_FullMethodName:        true,
	wxrelayv1.EventService_RecoverFailedEvents_FullMethodName:  true,
	wxrelayv1.OperatorService_CreateOperator_FullMethodName:    true,
	wxrelayv1.OperatorService_DeleteOperator_FullMethodName:    true,
	wxrelayv1.OperatorService_RotateOperatorKey_FullMethodName: true,
}

// auditInterceptor records the audited calls of admins, whatever their
// outcome. It runs after authUnaryInterceptor, which names the caller.
//
// The entry is written before the call runs (code STARTED) and given
// its outcome after, so that no change is made unlogged: a relay killed
// in between leaves an entry that says the change was attempted. If the
// entry cannot be written, the call is refused and nothing is changed;
// if its outcome cannot, the failure is logged and the entry keeps
// saying STARTED. Two writes per change: admins' changes are few.
func auditInterceptor(store tenant.AuditStore, log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		p, ok := callerOf(ctx)
		if store == nil || !audited[info.FullMethod] || !ok || !p.Admin {
			return handler(ctx, req)
		}
		target, detail := auditTarget(req, nil)
		e := tenant.AuditEntry{Time: time.Now(), Actor: p.Actor(), Method: info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:],
			Target: clip(target, 128), Detail: clip(detail, 256), Code: tenant.AuditStarted}
		seq, aerr := store.AppendAudit(context.WithoutCancel(ctx), e)
		if aerr != nil {
			log.ErrorContext(ctx, "audit log: entry not written; the change is refused", "actor", e.Actor, "method", e.Method, "target", e.Target, "err", aerr)
			return nil, status.Error(codes.Unavailable, "the audit log could not be written, so nothing was changed; retry in a moment")
		}
		resp, err := handler(ctx, req)
		code := "OK"
		if err != nil {
			code = snakeCode(status.Code(toStatus(ctx, slog.New(slog.DiscardHandler), info.FullMethod, err)).String())
		}
		// The answer may name what was made; what a refused request named
		// may be anything an admin sent.
		target, detail = auditTarget(req, resp)
		if ferr := store.FinishAudit(context.WithoutCancel(ctx), seq, clip(target, 128), clip(detail, 256), code); ferr != nil {
			log.ErrorContext(ctx, "audit log: outcome not written; the entry says STARTED", "seq", seq, "actor", e.Actor, "method", e.Method, "code", code, "err", ferr)
		}
		return resp, err
	}
}

// snakeCode spells a gRPC code as the API's errors do: InvalidArgument
// → INVALID_ARGUMENT.
func snakeCode(c string) string {
	var b strings.Builder
	for i, r := range c {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// auditTarget is what a call changed, and what else names the change:
// never a value that was sent but for ids, an appid, a name or a time.
func auditTarget(req, resp any) (target, detail string) {
	if r, ok := req.(tenantScoped); ok {
		target = r.GetId()
	}
	if r, ok := req.(interface{ GetEventId() string }); ok && r.GetEventId() != "" {
		target += "/" + r.GetEventId()
	}
	if r, ok := req.(interface{ GetUpdateMask() *fieldmaskpb.FieldMask }); ok {
		detail = "fields: " + strings.Join(r.GetUpdateMask().GetPaths(), ", ")
	}
	switch r := req.(type) {
	case *wxrelayv1.CreateTenantRequest:
		detail = "appid " + r.GetTenant().GetAppid()
		if t, ok := resp.(*wxrelayv1.CreateTenantResponse); ok {
			target = t.GetTenant().GetId()
		}
	case *wxrelayv1.CreateComponentRequest:
		detail = "component_appid " + r.GetComponent().GetComponentAppid()
		if c, ok := resp.(*wxrelayv1.CreateComponentResponse); ok {
			target = c.GetComponent().GetId()
		}
	case *wxrelayv1.CreateOperatorRequest:
		detail = "name " + r.GetName()
		if o, ok := resp.(*wxrelayv1.CreateOperatorResponse); ok {
			target = o.GetOperator().GetId()
		}
	case *wxrelayv1.RecoverFailedEventsRequest:
		detail = "since " + r.GetSince().AsTime().UTC().Format(time.RFC3339)
	case *wxrelayv1.SendTestEventRequest:
		if e, ok := resp.(*wxrelayv1.Event); ok {
			target += "/" + e.GetId()
		}
	}
	return target, detail
}

// clip cuts s to at most n bytes, on a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
