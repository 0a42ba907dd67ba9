package health_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wxrelay/wxrelay/relay/health"
	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

// TestChecker: CheckAll computes every tenant's health from the store,
// serves it as per-tenant gauges, reports changes of reasons, and forgets
// a deleted tenant.
func TestChecker(t *testing.T) {
	db := storetest.New(t)
	ctx := context.Background()
	ts := store.NewTenantStore(db)
	auth, err := tenant.NewAuthenticator(make([]byte, 32), ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := tenant.NewService(ts, auth, true, nil)
	quiet := &tenant.Tenant{AppID: "wx0123456789abcdef", Secrets: tenant.Secrets{AppSecret: "5ec2e75ec2e75ec2e75ec2e75ec2e75e", Token: "PushToken1"},
		WebhookURL: "https://example.com/h", PushSilenceAlert: time.Minute}
	a, _, err := svc.Create(ctx, quiet)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := svc.Create(ctx, &tenant.Tenant{AppID: "wx00000000000000ff", Secrets: tenant.Secrets{AppSecret: "5ec2e75ec2e75ec2e75ec2e75ec2e75e", Token: "PushToken1"}, WebhookURL: "https://example.com/h"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(2 * time.Minute) // a has had no push for over its minute
	keeper := token.NewKeeper(store.NewTokenStore(db), nil, tenant.NewCache(svc, 0, nil), token.Options{})
	c := health.NewChecker(store.NewHealthStore(db), keeper, func() time.Time { return now })
	var changes []string
	c.OnChange(func(old, new health.Health) { changes = append(changes, string(new.Tenant)+":"+new.State.String()) })

	if err := c.CheckAll(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if h, ok := c.Latest(a.ID); !ok || h.State != health.StateDegraded || !h.Has(health.NoPushes) {
		t.Fatalf("a: %+v, want DEGRADED with NO_PUSHES", h)
	}
	// Only a, which has something to show, has series of its own; b, OK
	// and quiet, is only counted.
	want := `
# HELP wxrelay_tenant_health_state A tenant's health: 0 OK, 1 DEGRADED, 2 FAILING.
# TYPE wxrelay_tenant_health_state gauge
wxrelay_tenant_health_state{tenant="` + string(a.ID) + `"} 1
# HELP wxrelay_tenants_by_health Tenants by their latest health (OK, DEGRADED, FAILING).
# TYPE wxrelay_tenants_by_health gauge
wxrelay_tenants_by_health{state="DEGRADED"} 1
wxrelay_tenants_by_health{state="FAILING"} 0
wxrelay_tenants_by_health{state="OK"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "wxrelay_tenant_health_state", "wxrelay_tenants_by_health"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "wxrelay_tenant_health_reason"); n != len(health.Kinds) {
		t.Errorf("%d reason series, want %d", n, len(health.Kinds))
	}

	// a turns OK when its alert is switched off: one change reported.
	off := time.Duration(0)
	if _, err := svc.Update(ctx, a.ID, tenant.Patch{PushSilenceAlert: &off}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Delete(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckAll(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0] != string(a.ID)+":OK" {
		t.Errorf("changes %v, want a turning OK", changes)
	}
	// a, OK again, loses its series; b, deleted, is no longer counted.
	if n := testutil.CollectAndCount(c, "wxrelay_tenant_health_state"); n != 0 {
		t.Errorf("%d state series once a is OK and b deleted, want 0", n)
	}
	want = `
# HELP wxrelay_tenants_by_health Tenants by their latest health (OK, DEGRADED, FAILING).
# TYPE wxrelay_tenants_by_health gauge
wxrelay_tenants_by_health{state="DEGRADED"} 0
wxrelay_tenants_by_health{state="FAILING"} 0
wxrelay_tenants_by_health{state="OK"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "wxrelay_tenants_by_health"); err != nil {
		t.Error(err)
	}
}
