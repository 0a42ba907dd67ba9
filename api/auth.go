package api

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
	"github.com/wxrelay/wxrelay/tenant"
)

// access says who may call a method.
type access int

const (
	// accessAdmin: admin tokens only.
	accessAdmin access = iota + 1
	// accessTenant: admins, and the tenant whose id the request names.
	accessTenant
	// accessPublic: no token (server reflection, health).
	accessPublic
)

// policy lists every method of the API. A method missing here is refused,
// so a new RPC cannot ship unprotected by accident.
var policy = map[string]access{
	wxrelayv1.TenantService_CreateTenant_FullMethodName:        accessAdmin,
	wxrelayv1.TenantService_GetTenant_FullMethodName:           accessTenant,
	wxrelayv1.TenantService_ListTenants_FullMethodName:         accessAdmin,
	wxrelayv1.TenantService_UpdateTenant_FullMethodName:        accessAdmin,
	wxrelayv1.TenantService_DeleteTenant_FullMethodName:        accessAdmin,
	wxrelayv1.TenantService_RotateApiKey_FullMethodName:        accessAdmin,
	wxrelayv1.TenantService_RotateWebhookSecret_FullMethodName: accessAdmin,
	wxrelayv1.TenantService_AuthorizationUrl_FullMethodName:    accessAdmin,
	wxrelayv1.TenantService_ListPushRejections_FullMethodName:  accessTenant,
	wxrelayv1.TenantService_Search_FullMethodName:              accessAdmin,
	wxrelayv1.OperatorService_CreateOperator_FullMethodName:    accessAdmin,
	wxrelayv1.OperatorService_ListOperators_FullMethodName:     accessAdmin,
	wxrelayv1.OperatorService_DeleteOperator_FullMethodName:    accessAdmin,
	wxrelayv1.OperatorService_RotateOperatorKey_FullMethodName: accessAdmin,
	wxrelayv1.AuditService_ListAuditEntries_FullMethodName:     accessAdmin,
	wxrelayv1.ComponentService_CreateComponent_FullMethodName:  accessAdmin,
	wxrelayv1.ComponentService_GetComponent_FullMethodName:     accessAdmin,
	wxrelayv1.ComponentService_ListComponents_FullMethodName:   accessAdmin,
	wxrelayv1.ComponentService_UpdateComponent_FullMethodName:  accessAdmin,
	wxrelayv1.ComponentService_DeleteComponent_FullMethodName:  accessAdmin,
	wxrelayv1.ComponentService_ListAuthorizers_FullMethodName:  accessAdmin,
	wxrelayv1.EventService_ListEvents_FullMethodName:           accessTenant,
	wxrelayv1.EventService_GetEvent_FullMethodName:             accessTenant,
	wxrelayv1.EventService_RedeliverEvent_FullMethodName:       accessTenant,
	wxrelayv1.EventService_SendTestEvent_FullMethodName:        accessTenant,
	wxrelayv1.EventService_RecoverFailedEvents_FullMethodName:  accessTenant,
	wxrelayv1.EventService_GetRecovery_FullMethodName:          accessTenant,
	wxrelayv1.EventService_ListRecoveries_FullMethodName:       accessTenant,
	wxrelayv1.MessageService_SendMessage_FullMethodName:        accessTenant,
	wxrelayv1.MessageService_SetTyping_FullMethodName:          accessTenant,
	wxrelayv1.MessageService_UploadMedia_FullMethodName:        accessTenant,
	wxrelayv1.CallService_ListCalls_FullMethodName:             accessTenant,
}

// viewerMethods are what an operator with the viewer role may call: the
// reads an admin may make. Every other method changes something, or
// sends as a tenant, and is refused to a viewer by readOnlyInterceptor.
var viewerMethods = map[string]bool{
	wxrelayv1.TenantService_GetTenant_FullMethodName:          true,
	wxrelayv1.TenantService_ListTenants_FullMethodName:        true,
	wxrelayv1.TenantService_ListPushRejections_FullMethodName: true,
	wxrelayv1.TenantService_Search_FullMethodName:             true,
	wxrelayv1.OperatorService_ListOperators_FullMethodName:    true,
	wxrelayv1.AuditService_ListAuditEntries_FullMethodName:    true,
	wxrelayv1.ComponentService_GetComponent_FullMethodName:    true,
	wxrelayv1.ComponentService_ListComponents_FullMethodName:  true,
	wxrelayv1.ComponentService_ListAuthorizers_FullMethodName: true,
	wxrelayv1.EventService_ListEvents_FullMethodName:          true,
	wxrelayv1.EventService_GetEvent_FullMethodName:            true,
	wxrelayv1.EventService_GetRecovery_FullMethodName:         true,
	wxrelayv1.EventService_ListRecoveries_FullMethodName:      true,
	wxrelayv1.CallService_ListCalls_FullMethodName:            true,
}

// readOnlyInterceptor refuses a viewer any method but a read. It runs
// after auditInterceptor, so that a viewer's refused change is in the
// audit log as any refused change is.
func readOnlyInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if p, ok := callerOf(ctx); ok && p.ReadOnly && !viewerMethods[info.FullMethod] {
		return nil, status.Errorf(codes.PermissionDenied, "%s is a viewer: operators with that role may read, not change", p.Actor())
	}
	return handler(ctx, req)
}

// publicPrefixes are services that need no token.
var publicPrefixes = []string{
	"/grpc.reflection.",
	"/grpc.health.v1.Health/",
}

func accessFor(method string) (access, bool) {
	for _, p := range publicPrefixes {
		if strings.HasPrefix(method, p) {
			return accessPublic, true
		}
	}
	a, ok := policy[method]
	return a, ok
}

// tenantScoped is implemented by every request that names a tenant.
type tenantScoped interface{ GetId() string }

// authenticator is what the interceptor needs from tenant.Authenticator.
type authenticator interface {
	Verify(ctx context.Context, token string) (tenant.Principal, error)
}

// authorize authenticates the bearer token in ctx and checks that its
// principal may call method with req, and returns the principal (the
// zero one for a public method).
func authorize(ctx context.Context, auth authenticator, method string, req any) (tenant.Principal, error) {
	acc, ok := accessFor(method)
	if !ok {
		return tenant.Principal{}, fmt.Errorf("%w: method %s is not open to any principal", tenant.ErrForbidden, method)
	}
	if acc == accessPublic {
		return tenant.Principal{}, nil
	}
	token, err := bearerToken(ctx)
	if err != nil {
		return tenant.Principal{}, err
	}
	p, err := auth.Verify(ctx, token)
	if err != nil {
		return tenant.Principal{}, err
	}
	if !p.Admin {
		scoped, isScoped := req.(tenantScoped)
		if acc != accessTenant || !isScoped || !p.CanAccess(tenant.ID(scoped.GetId())) {
			return tenant.Principal{}, tenant.ErrForbidden
		}
	}
	return p, nil
}

// callerKey holds, in a handler's context, the principal that
// authorize let through.
type callerKey struct{}

// callerOf is the principal a handler serves; ok is false for a public
// method.
func callerOf(ctx context.Context) (tenant.Principal, bool) {
	p, ok := ctx.Value(callerKey{}).(tenant.Principal)
	return p, ok && (p.Admin || p.Tenant != "")
}

func bearerToken(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return "", fmt.Errorf("%w: no authorization header", tenant.ErrUnauthenticated)
	}
	return parseBearer(vals[0])
}

// precheck runs tenant.Authenticator.Precheck on an Authorization value,
// before any body is read; the full check follows in the interceptor.
func precheck(ctx context.Context, auth *tenant.Authenticator, authorization string) (tenant.Principal, error) {
	if authorization == "" {
		return tenant.Principal{}, fmt.Errorf("%w: no authorization header", tenant.ErrUnauthenticated)
	}
	token, err := parseBearer(authorization)
	if err != nil {
		return tenant.Principal{}, err
	}
	return auth.Precheck(ctx, token)
}

// parseBearer returns the token of an Authorization value.
func parseBearer(authorization string) (string, error) {
	scheme, token, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", fmt.Errorf("%w: authorization must be \"Bearer <token>\"", tenant.ErrUnauthenticated)
	}
	return strings.TrimSpace(token), nil
}

func authUnaryInterceptor(auth authenticator) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		p, err := authorize(ctx, auth, info.FullMethod, req)
		if err != nil {
			return nil, err
		}
		return handler(context.WithValue(ctx, callerKey{}, p), req)
	}
}

// authStreamInterceptor guards streaming methods (server reflection today).
// Streams carry no request message up front, so only admin and public
// methods can be streams.
func authStreamInterceptor(auth authenticator, log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if _, err := authorize(ss.Context(), auth, info.FullMethod, nil); err != nil {
			return toStatus(ss.Context(), log, info.FullMethod, err)
		}
		return handler(srv, ss)
	}
}
