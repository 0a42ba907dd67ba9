package api

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
	"github.com/wxrelay/wxrelay/api/internal/perkey"
	"github.com/wxrelay/wxrelay/tenant"
)

// A tenant's key may ask the relay to write on its behalf outside any
// push: a redelivery, a test event, a bulk recovery. Each is a write under
// the database's write lock, which on SQLite every tenant's pushes wait
// for, so a script looping on one of them would slow everyone's ingest.
// Each tenant therefore has a budget of such calls; over it, a call is
// refused at once (429, with Retry-After and a RetryInfo detail) before
// anything is read or written. Admin and operator calls have no budget:
// they are few and trusted, and a recovery is how they move many events.
var tenantWriteMethods = map[string]bool{
	wxrelayv1.EventService_RedeliverEvent_FullMethodName:      true,
	wxrelayv1.EventService_SendTestEvent_FullMethodName:       true,
	wxrelayv1.EventService_RecoverFailedEvents_FullMethodName: true,
}

// Default budget: 5 writes a second, in bursts of up to 50; redelivering
// a few dozen events by hand never meets it, and many are one recovery.
const (
	DefaultTenantWriteRate  = 5
	DefaultTenantWriteBurst = 50
)

// tenantWrites holds each tenant's budget; only tenants that wrote in
// the last burst/rate seconds hold a bucket (perkey).
type tenantWrites struct {
	rate    float64
	burst   int
	now     func() time.Time
	buckets *perkey.Limiters[tenant.ID]
}

func newTenantWrites(perSecond float64, burst int, now func() time.Time) *tenantWrites {
	if now == nil {
		now = time.Now
	}
	return &tenantWrites{rate: perSecond, burst: burst, now: now, buckets: perkey.New[tenant.ID](perSecond, burst)}
}

// take spends one write of tid's budget, or says how long until one is
// there.
func (w *tenantWrites) take(tid tenant.ID) (wait time.Duration, ok bool) {
	return w.buckets.Take(tid, w.now())
}

// len is how many tenants have a bucket now.
func (w *tenantWrites) len() int { return w.buckets.Len() }

// tenantWritesInterceptor is the interceptor of a budget of perSecond
// (0: DefaultTenantWriteRate; negative: none) in bursts of burst (0:
// DefaultTenantWriteBurst).
func tenantWritesInterceptor(perSecond float64, burst int) grpc.UnaryServerInterceptor {
	if perSecond < 0 {
		return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			return handler(ctx, req)
		}
	}
	return newTenantWrites(cmp.Or(perSecond, DefaultTenantWriteRate), cmp.Or(burst, DefaultTenantWriteBurst), nil).interceptor
}

// interceptor refuses a tenant's write over its budget. It runs after
// authUnaryInterceptor, which names the caller.
func (w *tenantWrites) interceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !tenantWriteMethods[info.FullMethod] {
		return handler(ctx, req)
	}
	p, ok := callerOf(ctx)
	if !ok || p.Admin {
		return handler(ctx, req)
	}
	if wait, ok := w.take(p.Tenant); !ok {
		return nil, overBudget(wait, w.rate, w.burst)
	}
	return handler(ctx, req)
}

// overBudget is the error of a write refused for wait.
func overBudget(wait time.Duration, perSecond float64, burst int) error {
	st := status.New(codes.ResourceExhausted, fmt.Sprintf(
		"this tenant has asked for more than %g redeliveries, test events or recoveries a second (bursts of %d); retry in %s, "+
			"or queue many failed events again at once with events:recoverFailed", perSecond, burst, wait.Round(time.Millisecond)))
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)}); err == nil {
		st = d
	}
	return st.Err()
}

// retryAfter is the Retry-After, in whole seconds rounded up, that a
// status's RetryInfo asks for; "" without one.
func retryAfter(st *status.Status) string {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			return fmt.Sprint(max(1, int(math.Ceil(ri.GetRetryDelay().AsDuration().Seconds()))))
		}
	}
	return ""
}
