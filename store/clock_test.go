package store_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/delivery"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
)

// openReplicas opens the database at dsn twice, as two replicas: one whose
// clock is right, and one whose clock runs skew ahead.
// The off replica's log goes to logs.
func openReplicas(t *testing.T, dsn string, skew time.Duration, logs *logRecorder) (right, off *store.DB) {
	t.Helper()
	cfg := storetest.Config(t, dsn)
	open := func(cfg store.Config) *store.DB {
		db, err := store.Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	right = open(cfg)
	cfg.Clock = func() time.Time { return time.Now().Add(skew) }
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	return right, open(cfg)
}

// A replica whose clock is a minute fast reads the database's clock, and
// so takes over neither a delivery lease, a token refresh lease nor a job
// lock that another replica holds: with its own clock it took over every
// in-flight delivery and delivered it twice.
func TestReplicaWithAWrongClockTakesNoLease(t *testing.T) {
	storetest.EachDSN(t, func(t *testing.T, dsn string) {
		const skew = time.Minute
		logs := &logRecorder{}
		right, fast := openReplicas(t, dsn, skew, logs)
		if d := fast.Now().Sub(right.Now()).Abs(); d > time.Second {
			t.Fatalf("the two replicas' database clocks differ by %v", d)
		}
		if off := fast.ClockOffset(); (off + skew).Abs() > time.Second {
			t.Errorf("the fast replica measured the database %v ahead of it, want about %v", off, -skew)
		}
		if !logs.contains("clock is off the database's") {
			t.Errorf("the fast replica did not warn of its clock: %v", logs.lines)
		}
		ctx := context.Background()

		// A delivery lease.
		tid := mustCreateTenant(t, right, "tn_clock")
		mustAppend(t, store.NewEventStore(right), newEvent(tid, "k1"))
		claim := func(db *store.DB, owner string, now time.Time) int {
			jobs, err := store.NewDeliveryStore(db).ClaimDue(ctx, delivery.Claim{Owner: owner, Now: now, LeaseUntil: now.Add(30 * time.Second), Limit: 10, PerTenant: 10})
			if err != nil {
				t.Fatalf("%s: ClaimDue: %v", owner, err)
			}
			return len(jobs)
		}
		if n := claim(right, "right", right.Now()); n != 1 {
			t.Fatalf("the right replica claimed %d events, want 1", n)
		}
		if n := claim(fast, "fast", fast.Now()); n != 0 {
			t.Errorf("the fast replica took over %d leased events on the database's clock", n)
		}
		// The scenario is real: on its own clock the fast replica would
		// have taken the event over.
		if n := claim(fast, "fast", time.Now().Add(skew)); n != 1 {
			t.Errorf("on its own clock the fast replica claimed %d events; the test no longer shows the defect", n)
		}

		// A token refresh lease.
		tokens := []*store.TokenStore{store.NewTokenStore(right), store.NewTokenStore(fast)}
		if ok, err := tokens[0].AcquireTokenLease(ctx, tid, "right", right.Now(), right.Now().Add(30*time.Second)); !ok || err != nil {
			t.Fatalf("the right replica's token lease: %v, %v", ok, err)
		}
		if ok, err := tokens[1].AcquireTokenLease(ctx, tid, "fast", fast.Now(), fast.Now().Add(30*time.Second)); ok || err != nil {
			t.Errorf("the fast replica took the token lease over: %v, %v", ok, err)
		}

		// A job lock: the lockers' clock is the database's unless told.
		held := mustLock(t, store.NewJobLocker(right, store.JobLockerOptions{Owner: "right", Lease: 30 * time.Second}), "tokens")
		defer held.Unlock(ctx)
		mustNotLock(t, store.NewJobLocker(fast, store.JobLockerOptions{Owner: "fast", Lease: 30 * time.Second}), "tokens")
	})
}
