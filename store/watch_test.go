package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

// watchLog records what WatchTenants reports.
type watchLog struct {
	forgot chan tenant.ID
	resets chan struct{}
}

func watch(t *testing.T, db *store.DB) *watchLog {
	w := &watchLog{forgot: make(chan tenant.ID, 100), resets: make(chan struct{}, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		db.WatchTenants(ctx, func(id tenant.ID) { w.forgot <- id }, func() { w.resets <- struct{}{} })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func (w *watchLog) wantReset(t *testing.T, why string) {
	t.Helper()
	select {
	case <-w.resets:
	case <-time.After(15 * time.Second):
		t.Fatalf("no ForgetAll %s", why)
	}
}

func (w *watchLog) wantForgot(t *testing.T, id tenant.ID) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case got := <-w.forgot:
			if got == id {
				return
			}
		case <-deadline:
			t.Fatalf("no notice of tenant %s within 5 s", id)
		}
	}
}

// One replica hears of another's changes and deletions, and after losing
// its listening connection forgets everything and hears again.
func TestWatchTenants_AcrossReplicas(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	here, there := storetest.MustOpen(t, dsn), storetest.MustOpen(t, dsn)
	w := watch(t, here)
	w.wantReset(t, "when the watch starts")

	s := store.NewTenantStore(there)
	tn := newTenant("tn_watch1", "wx00000000000000b1")
	mustCreate(t, s, tn)
	tn.DisplayName = "renamed"
	if err := s.Update(context.Background(), tn); err != nil {
		t.Fatal(err)
	}
	w.wantForgot(t, tn.ID)

	// The connection is cut, as a failover or a network drop would.
	if _, err := there.Bun().ExecContext(context.Background(),
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"); err != nil {
		t.Fatal(err)
	}
	w.wantReset(t, "after the listening connection was lost")
	if err := s.Delete(context.Background(), tn.ID); err != nil {
		t.Fatal(err)
	}
	w.wantForgot(t, tn.ID)
}

// SQLite has no other process to hear from: its watch returns at once.
func TestWatchTenants_SQLiteReturns(t *testing.T) {
	db := storetest.New(t)
	done := make(chan struct{})
	go func() { db.WatchTenants(context.Background(), func(tenant.ID) {}, func() {}); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("WatchTenants on SQLite did not return")
	}
}
