package api

import (
	"fmt"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/tenant"
)

// TestTenantWritesForgetsIdleTenants: a tenant whose budget filled again
// holds no entry, so the limiter's memory follows the tenants writing
// now, not every tenant that ever wrote.
func TestTenantWritesForgetsIdleTenants(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	w := newTenantWrites(5, 50, func() time.Time { return now })
	for i := range 1000 {
		if _, ok := w.take(tenant.ID(fmt.Sprintf("tn_%d", i))); !ok {
			t.Fatalf("tenant %d refused its first write", i)
		}
	}
	if n := w.len(); n != 1000 {
		t.Fatalf("%d buckets after 1000 tenants wrote, want 1000", n)
	}
	busy := tenant.ID("tn_busy")
	for range 50 {
		w.take(busy)
	}
	if wait, ok := w.take(busy); ok || wait <= 0 || wait > time.Second {
		t.Fatalf("the 51st write in a burst of 50: ok %v, wait %s; want refused for about 200ms", ok, wait)
	}
	// 10 s later every bucket is full again, the busy one too: the next
	// write sweeps them all, and only its own tenant's entry is made.
	now = now.Add(10 * time.Second)
	if _, ok := w.take(busy); !ok {
		t.Fatal("the busy tenant is refused after its budget filled again")
	}
	if n := w.len(); n != 1 {
		t.Errorf("%d buckets after every tenant's budget filled again, want 1 (the one writing)", n)
	}
}
