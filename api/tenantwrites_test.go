package api_test

import (
	"strconv"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wxrelay/wxrelay/api"
	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
)

// TestTenantWriteBudget: a tenant's key may ask for only so many
// redeliveries, test events and recoveries; the one over its budget is
// refused with 429 and Retry-After (RetryInfo over gRPC), writes nothing,
// and takes nothing from another tenant or from the admins.
func TestTenantWriteBudget(t *testing.T) {
	e := newEnvWith(t, func(o *api.Options) { o.TenantWriteRate, o.TenantWriteBurst = 0.01, 3 })
	c := e.createTenant(validTenant())
	other := validTenant()
	other["appid"] = "wx00000000000000ab"
	d := e.createTenant(other)

	countEvents := func() int {
		t.Helper()
		r := e.mustStatus(e.do("GET", "/v1/tenants/"+c.id+"/events?page_size=100", e.admin, nil), 200)
		evs, _ := r.body["events"].([]any)
		return len(evs)
	}
	for range 3 {
		e.mustStatus(e.do("POST", "/v1/tenants/"+c.id+"/events:sendTest", c.apiKey, `{}`), 200)
	}
	before := countEvents()
	for _, call := range []struct{ path, body string }{
		{"/events:sendTest", `{}`},
		{"/events:recoverFailed", `{"since":"2026-01-01T00:00:00Z"}`},
	} {
		r := e.mustStatus(e.do("POST", "/v1/tenants/"+c.id+call.path, c.apiKey, call.body), 429)
		if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < 1 {
			t.Errorf("%s over the budget: Retry-After %q, want whole seconds", call.path, r.header.Get("Retry-After"))
		}
		if msg, _ := r.body["message"].(string); !strings.Contains(msg, "recoverFailed") || !strings.Contains(msg, "retry in") {
			t.Errorf("%s over the budget says %q; want when to retry and the bulk alternative", call.path, msg)
		}
	}
	if after := countEvents(); after != before {
		t.Errorf("a refused test event was stored: %d events before, %d after", before, after)
	}
	if r := e.do("GET", "/v1/tenants/"+c.id+"/recoveries", c.apiKey, nil); strings.Contains(r.raw, "rcv_") {
		t.Errorf("a refused recovery was stored: %s", r.raw)
	}
	// Reads are not budgeted; another tenant and the admins keep theirs.
	e.mustStatus(e.do("GET", "/v1/tenants/"+c.id+"/events", c.apiKey, nil), 200)
	e.mustStatus(e.do("POST", "/v1/tenants/"+d.id+"/events:sendTest", d.apiKey, `{}`), 200)
	e.mustStatus(e.do("POST", "/v1/tenants/"+c.id+"/events:sendTest", e.admin, `{}`), 200)

	// Over gRPC: RESOURCE_EXHAUSTED with how long to wait.
	_, err := wxrelayv1.NewEventServiceClient(e.grpcClient()).SendTestEvent(withToken(c.apiKey), &wxrelayv1.SendTestEventRequest{Id: c.id})
	st := status.Convert(err)
	var wait *errdetails.RetryInfo
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			wait = ri
		}
	}
	if st.Code() != codes.ResourceExhausted || wait == nil || wait.GetRetryDelay().AsDuration() <= 0 {
		t.Errorf("over gRPC the call over the budget got %v with details %v, want RESOURCE_EXHAUSTED and a RetryInfo", st.Code(), st.Details())
	}
}

// TestTenantWriteBudgetOff: a negative rate (wxrelay's
// --tenant-write-rate 0) sets no budget.
func TestTenantWriteBudgetOff(t *testing.T) {
	e := newEnvWith(t, func(o *api.Options) { o.TenantWriteRate, o.TenantWriteBurst = -1, 1 })
	c := e.createTenant(validTenant())
	for range 5 {
		e.mustStatus(e.do("POST", "/v1/tenants/"+c.id+"/events:sendTest", c.apiKey, `{}`), 200)
	}
}
