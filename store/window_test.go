package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/relay/message"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

// trigger returns an event of openid of the given type, created at create
// and received at receive.
func trigger(tid tenant.ID, key, openid, typ string, create, receive time.Time) *relay.Event {
	e := newEvent(tid, key)
	e.OpenID, e.Type, e.CreateTime, e.ReceiveTime = openid, typ, create, receive
	return e
}

// reserve reserves a slot at now with the rules of relay/message.
func reserve(t *testing.T, ws *store.WindowStore, tid tenant.ID, openid string, now time.Time) (message.Slot, bool) {
	t.Helper()
	s, ok, err := ws.ReserveReplySlot(context.Background(), tid, openid,
		now.Add(-message.MessageWindow-message.WindowGrace), now.Add(-message.EnterWindow-message.WindowGrace))
	if err != nil {
		t.Fatalf("ReserveReplySlot: %v", err)
	}
	return s, ok
}

func window(t *testing.T, ws *store.WindowStore, tid tenant.ID, openid string) message.Window {
	t.Helper()
	w, err := ws.ReplyWindow(context.Background(), tid, openid)
	if err != nil {
		t.Fatalf("ReplyWindow: %v", err)
	}
	return w
}

func TestWindowStore_RecordsTriggersAtIngest(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		es, ws := store.NewEventStore(db), store.NewWindowStore(db)
		a, b := mustCreateTenant(t, db, "tn_a"), mustCreateTenant(t, db, "tn_b")
		t0 := time.Now().UTC().Truncate(time.Second)

		if w := window(t, ws, a, "o1"); w != (message.Window{}) {
			t.Fatalf("before any push: %+v, want zero", w)
		}
		// Received 2 s after it was created (the relay's clock ahead of
		// WeChat's): the receive time counts. An event of no window, and
		// one of another tenant, in the same batch.
		mustAppend(t, es,
			trigger(a, "m1", "o1", "message.text", t0, t0.Add(2*time.Second)),
			trigger(a, "e1", "o1", "event.subscribe_msg_popup_event", t0, t0.Add(3*time.Second)),
			trigger(b, "x1", "o2", "message.image", t0, t0))
		w := window(t, ws, a, "o1")
		want := message.Window{MessageAt: t0.Add(2 * time.Second), Since: t0.Add(2 * time.Second)}
		if w != want {
			t.Fatalf("window = %+v, want %+v", w, want)
		}
		// Created after it was received (the relay's clock behind):
		// CreateTime counts.
		mustAppend(t, es, trigger(a, "s1", "o1", message.EventEnterSession, t0.Add(10*time.Second), t0.Add(9*time.Second)))
		if w := window(t, ws, a, "o1"); !w.EnterAt.Equal(t0.Add(10*time.Second)) || !w.MessageAt.Equal(want.MessageAt) {
			t.Fatalf("after entry: %+v, want enter at %v", w, t0.Add(10*time.Second))
		}
		// Tenants are apart.
		if w := window(t, ws, b, "o1"); !w.MessageAt.IsZero() {
			t.Errorf("tenant b's o1 = %+v: tenant a's window leaked", w)
		}
		if w := window(t, ws, b, "o2"); !w.MessageAt.Equal(t0) || !w.Since.Equal(t0) {
			t.Errorf("tenant b's o2 = %+v", w)
		}
	})
}

func TestWindowStore_ReserveQuotaResetRelease(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		es, ws := store.NewEventStore(db), store.NewWindowStore(db)
		tid := mustCreateTenant(t, db, "tn_a")
		t0 := time.Now().UTC().Truncate(time.Second)

		if _, ok := reserve(t, ws, tid, "o1", t0); ok {
			t.Fatal("reserved for a user never seen")
		}
		mustAppend(t, es, trigger(tid, "m1", "o1", "message.text", t0, t0))
		var slots []message.Slot
		for i := range message.MessageQuota {
			s, ok := reserve(t, ws, tid, "o1", t0.Add(time.Hour))
			if !ok {
				t.Fatalf("send %d refused", i+1)
			}
			slots = append(slots, s)
		}
		if _, ok := reserve(t, ws, tid, "o1", t0.Add(time.Hour)); ok {
			t.Fatalf("send %d reserved: over the quota", message.MessageQuota+1)
		}
		if w := window(t, ws, tid, "o1"); w.MessageSends != message.MessageQuota {
			t.Fatalf("refused reservation counted: %+v", w)
		}
		// A slot given back may be taken again.
		if err := ws.ReleaseReplySlot(ctx, tid, slots[0]); err != nil {
			t.Fatal(err)
		}
		if _, ok := reserve(t, ws, tid, "o1", t0.Add(time.Hour)); !ok {
			t.Fatal("a slot given back was not free")
		}
		// Closed by time, whatever the count.
		if err := ws.ReleaseReplySlot(ctx, tid, slots[1]); err != nil {
			t.Fatal(err)
		}
		if _, ok := reserve(t, ws, tid, "o1", t0.Add(message.MessageWindow+message.WindowGrace)); ok {
			t.Fatal("reserved after the window")
		}

		// A new message resets the quota; a slot of the old one given back
		// then leaves the new count alone.
		t1 := t0.Add(time.Hour)
		mustAppend(t, es, trigger(tid, "m2", "o1", "message.text", t1, t1))
		if w := window(t, ws, tid, "o1"); w.MessageSends != 0 || !w.MessageAt.Equal(t1) {
			t.Fatalf("after a new message: %+v, want count 0 from %v", w, t1)
		}
		s, ok := reserve(t, ws, tid, "o1", t1)
		if !ok {
			t.Fatal("new window refused")
		}
		if err := ws.ReleaseReplySlot(ctx, tid, slots[2]); err != nil {
			t.Fatal(err)
		}
		if w := window(t, ws, tid, "o1"); w.MessageSends != 1 {
			t.Fatalf("old slot given back to the new window: %+v", w)
		}
		if err := ws.ReleaseReplySlot(ctx, tid, s); err != nil {
			t.Fatal(err)
		}
		if w := window(t, ws, tid, "o1"); w.MessageSends != 0 {
			t.Fatalf("slot not given back: %+v", w)
		}

		// An older push delivered late moves nothing.
		mustAppend(t, es, trigger(tid, "m0", "o1", "message.text", t0.Add(-time.Hour), t0.Add(-time.Hour)))
		reserve(t, ws, tid, "o1", t1)
		if w := window(t, ws, tid, "o1"); !w.MessageAt.Equal(t1) || w.MessageSends != 1 {
			t.Fatalf("a late older push changed the window: %+v", w)
		}
		// A retry of a stored push (same dedup key, received later) neither.
		mustAppend(t, es, trigger(tid, "m2", "o1", "message.text", t1, t1.Add(time.Minute)))
		if w := window(t, ws, tid, "o1"); !w.MessageAt.Equal(t1) || w.MessageSends != 1 {
			t.Fatalf("a retry changed the window: %+v", w)
		}

		// The session entry: 2 within a minute.
		mustAppend(t, es, trigger(tid, "s1", "o2", message.EventEnterSession, t1, t1))
		for i := range message.EnterQuota {
			if _, ok := reserve(t, ws, tid, "o2", t1.Add(30*time.Second)); !ok {
				t.Fatalf("entry send %d refused", i+1)
			}
		}
		if _, ok := reserve(t, ws, tid, "o2", t1.Add(30*time.Second)); ok {
			t.Fatal("entry send 3 reserved")
		}
	})
}

// TestWindowStore_ConcurrentReserve races more reservations than the quota
// from many goroutines, on PostgreSQL from separate connections as replicas
// would: exactly the quota get through.
func TestWindowStore_ConcurrentReserve(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		es, ws := store.NewEventStore(db), store.NewWindowStore(db)
		tid := mustCreateTenant(t, db, "tn_a")
		now := time.Now().UTC()
		mustAppend(t, es, trigger(tid, "m1", "o1", "message.text", now, now))
		var ok atomic.Int32
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				_, got, err := ws.ReserveReplySlot(context.Background(), tid, "o1",
					now.Add(-message.MessageWindow), now.Add(-message.EnterWindow))
				if err != nil {
					t.Error(err)
				}
				if got {
					ok.Add(1)
				}
			})
		}
		wg.Wait()
		if ok.Load() != message.MessageQuota {
			t.Fatalf("%d reservations got through, want %d", ok.Load(), message.MessageQuota)
		}
	})
}

func TestWindowStore_PruneAndRestart(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		es, ws, ts := store.NewEventStore(db), store.NewWindowStore(db), store.NewTenantStore(db)
		tid := mustCreateTenant(t, db, "tn_a")
		t0 := time.Now().UTC().Truncate(time.Millisecond)
		mustAppend(t, es,
			trigger(tid, "old", "o_old", "message.text", t0, t0),
			trigger(tid, "new", "o_new", message.EventEnterSession, t0.Add(time.Hour), t0.Add(time.Hour)))
		n, err := ws.PruneReplyWindows(ctx, t0.Add(time.Minute), 100)
		if err != nil || n != 1 {
			t.Fatalf("prune = %d, %v; want 1", n, err)
		}
		if w := window(t, ws, tid, "o_old"); !w.MessageAt.IsZero() || !w.Since.Equal(t0) {
			t.Errorf("o_old after prune = %+v, want gone but since kept", w)
		}
		if w := window(t, ws, tid, "o_new"); w.EnterAt.IsZero() {
			t.Errorf("o_new pruned: %+v", w)
		}

		// Re-enabling a tenant restarts what the relay knows: it missed the
		// pushes refused meanwhile.
		tn, err := ts.FindByID(ctx, tid)
		if err != nil {
			t.Fatal(err)
		}
		tn.State = tenant.StateDisabled
		if err := ts.Update(ctx, tn); err != nil {
			t.Fatal(err)
		}
		if w := window(t, ws, tid, "o_new"); !w.Since.Equal(t0) {
			t.Fatalf("disabling moved since: %+v", w)
		}
		tn.State, tn.UpdateTime = tenant.StateActive, t0.Add(2*time.Hour)
		if err := ts.Update(ctx, tn); err != nil {
			t.Fatal(err)
		}
		if w := window(t, ws, tid, "o_new"); !w.Since.Equal(t0.Add(2 * time.Hour)) {
			t.Fatalf("since after re-enabling = %v, want %v", w.Since, t0.Add(2*time.Hour))
		}

		// Deleting the tenant deletes its windows.
		if err := deleteAndPurge(ctx, db, tid); err != nil {
			t.Fatal(err)
		}
		var left int
		if err := db.Bun().NewSelect().Table("reply_windows").ColumnExpr("count(*)").Scan(ctx, &left); err != nil || left != 0 {
			t.Fatalf("%d windows left after delete (%v)", left, err)
		}
	})
}

func TestTenantStore_IgnoreReplyWindow(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx, ts := context.Background(), store.NewTenantStore(db)
		tid := mustCreateTenant(t, db, "tn_a")
		tn, err := ts.FindByID(ctx, tid)
		if err != nil || tn.IgnoreReplyWindow {
			t.Fatalf("new tenant: %v, ignore_reply_window %v; want off", err, tn.IgnoreReplyWindow)
		}
		tn.IgnoreReplyWindow = true
		if err := ts.Update(ctx, tn); err != nil {
			t.Fatal(err)
		}
		if got, err := ts.FindByID(ctx, tid); err != nil || !got.IgnoreReplyWindow {
			t.Fatalf("after update: %v, ignore_reply_window %v; want on", err, got.IgnoreReplyWindow)
		}
	})
}

// TestWindowStore_PrunedForEveryTenant: the hourly prune takes every
// tenant's stale windows, those of tenants that never send through the
// relay too (the send path pruned only its own tenant's).
func TestWindowStore_PrunedForEveryTenant(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		es, ws := store.NewEventStore(db), store.NewWindowStore(db)
		t0 := time.Now().UTC().Truncate(time.Millisecond)
		var tids []tenant.ID
		for i := range 3 {
			tid := mustCreateTenant(t, db, fmt.Sprintf("tn_%d", i))
			tids = append(tids, tid)
			mustAppend(t, es, trigger(tid, "k", "o1", "message.text", t0, t0),
				trigger(tid, "k2", "o2", "message.text", t0.Add(time.Hour), t0.Add(time.Hour)))
		}
		total := 0
		for {
			n, err := ws.PruneReplyWindows(ctx, t0.Add(time.Minute), 2) // in batches
			if err != nil {
				t.Fatal(err)
			}
			total += n
			if n < 2 {
				break
			}
		}
		if total != 3 {
			t.Errorf("pruned %d windows, want the 3 stale ones", total)
		}
		for _, tid := range tids {
			if w := window(t, ws, tid, "o1"); !w.MessageAt.IsZero() {
				t.Errorf("%s's stale window kept: %+v", tid, w)
			}
			if w := window(t, ws, tid, "o2"); w.MessageAt.IsZero() {
				t.Errorf("%s's fresh window pruned", tid)
			}
		}
	})
}

// TestWindowStore_NotWrittenWhenIgnored: the pushes of a tenant that
// ignores the reply-window check write no window; turning the check on
// restarts what the relay knows (since), as it missed those triggers.
func TestWindowStore_NotWrittenWhenIgnored(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		es, ws, ts := store.NewEventStore(db), store.NewWindowStore(db), store.NewTenantStore(db)
		tid := mustCreateTenant(t, db, "tn_a")
		t0 := time.Now().UTC().Truncate(time.Millisecond)
		first := trigger(tid, "k0", "o0", "message.text", t0, t0)
		mustAppend(t, es, first) // the check on: known from t0
		ignored := trigger(tid, "k1", "o1", "message.text", t0.Add(time.Second), t0.Add(time.Second))
		ignored.NoReplyWindow = true
		mustAppend(t, es, ignored)
		var n int
		if err := db.Bun().NewSelect().Table("reply_windows").ColumnExpr("count(*)").Where("openid = 'o1'").Scan(ctx, &n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d window rows written for a tenant ignoring the check", n)
		}
		tn, err := ts.FindByID(ctx, tid)
		if err != nil {
			t.Fatal(err)
		}
		tn.IgnoreReplyWindow = true
		if err := ts.Update(ctx, tn); err != nil {
			t.Fatal(err)
		}
		tn.IgnoreReplyWindow = false
		tn.UpdateTime = t0.Add(time.Minute)
		if err := ts.Update(ctx, tn); err != nil {
			t.Fatal(err)
		}
		if w := window(t, ws, tid, "o1"); !w.Since.After(t0.Add(time.Second)) {
			t.Errorf("since %v after the check was turned on again, want after the unrecorded push", w.Since)
		}
	})
}
