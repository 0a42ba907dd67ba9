package store_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/alert"
	"github.com/wxrelay/wxrelay/relay/health"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

// bodyOf encodes a transition as the test's alert body, so that what was
// queued can be read back.
func bodyOf(tr alert.Transition) ([]byte, error) { return json.Marshal(tr) }

func reconcile(t *testing.T, hs *store.HealthStore, tid tenant.ID, current map[health.Kind]time.Time, now time.Time) int {
	t.Helper()
	n, err := hs.Reconcile(context.Background(), tid, current, now, bodyOf)
	if err != nil {
		t.Fatalf("Reconcile(%s, %v): %v", tid, current, err)
	}
	return n
}

func dueTransitions(t *testing.T, hs *store.HealthStore, now time.Time) ([]alert.Alert, []alert.Transition) {
	t.Helper()
	due, err := hs.DueAlerts(context.Background(), now, 100)
	if err != nil {
		t.Fatal(err)
	}
	trs := make([]alert.Transition, len(due))
	for i, a := range due {
		if err := json.Unmarshal(a.Body, &trs[i]); err != nil {
			t.Fatal(err)
		}
		if trs[i].ID != a.ID {
			t.Errorf("alert %d: body made with id %q, queued as %q", a.Seq, trs[i].ID, a.ID)
		}
	}
	return due, trs
}

// TestAlertStore_Transitions: a reason is alerted once when it comes into
// force and once when it ends, cleared before raised, whatever the number
// of runs in between; the queue delivers oldest first, retries when told
// and forgets what was delivered or abandoned once pruned.
func TestAlertStore_Transitions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		hs := store.NewHealthStore(db)
		now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
		since := now.Add(-3 * time.Minute)

		if n := reconcile(t, hs, "tn_a", nil, now); n != 0 {
			t.Fatalf("a healthy tenant made %d transitions, want 0", n)
		}
		two := map[health.Kind]time.Time{health.WebhookFailing: since, health.DeliveryBacklog: since.Add(time.Minute)}
		if n := reconcile(t, hs, "tn_a", two, now); n != 2 {
			t.Fatalf("raising two reasons made %d transitions, want 2", n)
		}
		// The same reasons again (a later run, a restart, another replica)
		// are no transition, even with a since-time computed anew.
		for i := range 3 {
			again := map[health.Kind]time.Time{health.WebhookFailing: since.Add(time.Duration(i) * time.Second), health.DeliveryBacklog: since}
			if n := reconcile(t, hs, "tn_a", again, now.Add(time.Duration(i+1)*15*time.Second)); n != 0 {
				t.Fatalf("run %d with the same reasons made %d transitions, want 0", i, n)
			}
		}
		later := now.Add(time.Minute)
		// The webhook recovers; the backlog stays; the token fails.
		if n := reconcile(t, hs, "tn_a", map[health.Kind]time.Time{health.DeliveryBacklog: since, health.TokenError: later}, later); n != 2 {
			t.Fatalf("one cleared and one raised made %d transitions, want 2", n)
		}
		tenants, err := hs.AlertedTenants(ctx)
		if err != nil || len(tenants) != 1 || tenants[0] != "tn_a" {
			t.Fatalf("alerted tenants = %v, %v; want [tn_a]", tenants, err)
		}

		due, trs := dueTransitions(t, hs, later)
		if len(due) != 4 {
			t.Fatalf("%d alerts due, want 4: %+v", len(due), trs)
		}
		want := []struct {
			kind   health.Kind
			raised bool
		}{{health.WebhookFailing, true}, {health.DeliveryBacklog, true}, {health.WebhookFailing, false}, {health.TokenError, true}}
		for i, w := range want {
			if trs[i].Kind != w.kind || trs[i].Raised != w.raised {
				t.Errorf("alert %d is %s raised=%v, want %s raised=%v", i, trs[i].Kind, trs[i].Raised, w.kind, w.raised)
			}
		}
		if !trs[2].Since.Equal(since) {
			t.Errorf("the cleared alert's since = %s, want the raised one's %s", trs[2].Since, since)
		}
		ids := map[string]bool{}
		for _, a := range due {
			ids[a.ID] = true
		}
		if len(ids) != 4 {
			t.Errorf("alert ids are not unique: %v", ids)
		}

		// The first fails and is due again in 30 s; the second is
		// delivered; the third abandoned.
		if err := hs.AlertFailed(ctx, due[0].Seq, later.Add(30*time.Second), "the alert webhook answered 503", later); err != nil {
			t.Fatal(err)
		}
		if err := hs.AlertDelivered(ctx, due[1].Seq, later); err != nil {
			t.Fatal(err)
		}
		if err := hs.AlertFailed(ctx, due[2].Seq, time.Time{}, "post: connection refused", later); err != nil {
			t.Fatal(err)
		}
		if now, _ := dueTransitions(t, hs, later); len(now) != 0 {
			t.Fatalf("due while the oldest waits for its retry: %+v; want none (the queue keeps its order)", now)
		}
		again, _ := dueTransitions(t, hs, later.Add(30*time.Second))
		if len(again) != 2 || again[0].Seq != due[0].Seq || again[0].Attempts != 1 || again[0].ID != due[0].ID {
			t.Fatalf("due at the retry: %+v; want the first again (same id, 1 attempt) then the fourth", again)
		}

		// Pruning takes the delivered and the abandoned, only once old.
		if n, err := hs.PruneAlerts(ctx, now); err != nil || n != 0 {
			t.Fatalf("prune before their time removed %d, %v; want 0", n, err)
		}
		if n, err := hs.PruneAlerts(ctx, later.Add(time.Second)); err != nil || n != 2 {
			t.Fatalf("prune removed %d, %v; want the delivered and the abandoned (2)", n, err)
		}
		if left, _ := dueTransitions(t, hs, later.Add(time.Hour)); len(left) != 2 {
			t.Fatalf("%d alerts left to deliver, want 2", len(left))
		}

		// All reasons end: the tenant is no longer alerted.
		if n := reconcile(t, hs, "tn_a", nil, later.Add(time.Minute)); n != 2 {
			t.Fatalf("clearing the last two reasons made %d transitions, want 2", n)
		}
		if tenants, err := hs.AlertedTenants(ctx); err != nil || len(tenants) != 0 {
			t.Fatalf("alerted tenants = %v, %v; want none", tenants, err)
		}
	})
}

// TestAlertStore_ConcurrentWriters: replicas reconciling the same change
// at once alert it once between them.
func TestAlertStore_ConcurrentWriters(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
		raised := map[health.Kind]time.Time{health.WebhookFailing: now}
		for round, current := range []map[health.Kind]time.Time{raised, nil} {
			var wg sync.WaitGroup
			made := make([]int, 8)
			for i := range made {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Each writer its own store, as a replica would have.
					n, err := store.NewHealthStore(db).Reconcile(context.Background(), "tn_c", current, now, bodyOf)
					if err != nil {
						t.Error(err)
					}
					made[i] = n
				}()
			}
			wg.Wait()
			total := 0
			for _, n := range made {
				total += n
			}
			if total != 1 {
				t.Errorf("round %d: 8 writers made %d transitions between them (%v), want 1", round, total, made)
			}
		}
		if due, _ := dueTransitions(t, store.NewHealthStore(db), now); len(due) != 2 {
			t.Errorf("%d alerts queued, want 2 (raised, cleared)", len(due))
		}
	})
}
