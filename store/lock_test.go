package store_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-co-op/gocron/v2"

	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
)

// clock is a settable clock shared by the lockers of one test, standing in
// for replicas whose clocks agree.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func mustLock(t *testing.T, l *store.JobLocker, key string) gocron.Lock {
	t.Helper()
	k, err := l.Lock(context.Background(), key)
	if err != nil {
		t.Fatalf("%s: Lock(%q) = %v, want the lock", l.Owner(), key, err)
	}
	return k
}

func mustNotLock(t *testing.T, l *store.JobLocker, key string) {
	t.Helper()
	k, err := l.Lock(context.Background(), key)
	if err == nil {
		k.Unlock(context.Background())
		t.Fatalf("%s: Lock(%q) succeeded, want ErrJobLocked", l.Owner(), key)
	}
	if !errors.Is(err, store.ErrJobLocked) {
		t.Fatalf("%s: Lock(%q) = %v, want ErrJobLocked", l.Owner(), key, err)
	}
}

func TestJobLocker_OneHolderAtATime(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		c := newClock()
		a := store.NewJobLocker(db, store.JobLockerOptions{Owner: "a", Now: c.Now})
		b := store.NewJobLocker(db, store.JobLockerOptions{Owner: "b", Now: c.Now})

		ka := mustLock(t, a, "prune-events")
		mustNotLock(t, b, "prune-events")
		// Other jobs' locks are separate.
		mustLock(t, b, "refresh-access-tokens").Unlock(context.Background())

		if err := ka.Unlock(context.Background()); err != nil {
			t.Fatal(err)
		}
		kb := mustLock(t, b, "prune-events")
		mustNotLock(t, a, "prune-events")
		kb.Unlock(context.Background())
	})
}

// TestJobLocker_HolderDies leaves a lock unrenewed, as a holder killed
// mid-run does: it frees itself when the lease runs out, and the dead
// holder's late unlock cannot take it back from the next one.
func TestJobLocker_HolderDies(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		c := newClock()
		opts := func(owner string) store.JobLockerOptions {
			// Renewals would come every 10 s of real time: none in this test.
			return store.JobLockerOptions{Owner: owner, Lease: 30 * time.Second, Now: c.Now}
		}
		a, b, x := store.NewJobLocker(db, opts("a")), store.NewJobLocker(db, opts("b")), store.NewJobLocker(db, opts("x"))

		dead := mustLock(t, a, "prune-events")
		c.Advance(29 * time.Second)
		mustNotLock(t, b, "prune-events")
		c.Advance(time.Second)
		kb := mustLock(t, b, "prune-events")

		dead.Unlock(context.Background()) // a wakes up late
		mustNotLock(t, x, "prune-events")
		kb.Unlock(context.Background())
		mustLock(t, x, "prune-events").Unlock(context.Background())
	})
}

// TestJobLocker_Hold keeps an exclusive job's lock with the replica that
// ran it for its period, which lets it run once per period among replicas.
func TestJobLocker_Hold(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		c := newClock()
		hold := map[string]time.Duration{"prune-events": time.Hour}
		a := store.NewJobLocker(db, store.JobLockerOptions{Owner: "a", Hold: hold, Now: c.Now})
		b := store.NewJobLocker(db, store.JobLockerOptions{Owner: "b", Hold: hold, Now: c.Now})

		c.Advance(time.Second)
		ka := mustLock(t, a, "prune-events")
		c.Advance(2 * time.Minute) // the run
		ka.Unlock(context.Background())

		c.Advance(30 * time.Minute)
		mustNotLock(t, b, "prune-events")
		// The holder may run it again before its hold ends, as its own
		// schedule, a little fast, may have it.
		c.Advance(27 * time.Minute)
		mustLock(t, a, "prune-events").Unlock(context.Background())
		mustNotLock(t, b, "prune-events")

		// A hold ends an hour after the run began; then anyone may.
		c.Advance(time.Hour)
		kb := mustLock(t, b, "prune-events")
		kb.Unlock(context.Background())

		// Release gives up the holds, as a replica stopping does.
		mustNotLock(t, a, "prune-events")
		if err := b.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
		mustLock(t, a, "prune-events").Unlock(context.Background())
	})
}

// TestJobLocker_Renews keeps a long run's lock past its lease.
func TestJobLocker_Renews(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		a := store.NewJobLocker(db, store.JobLockerOptions{Owner: "a", Lease: 300 * time.Millisecond})
		b := store.NewJobLocker(db, store.JobLockerOptions{Owner: "b", Lease: 300 * time.Millisecond})
		ka := mustLock(t, a, "prune-events")
		time.Sleep(time.Second) // three leases; renewed every 100 ms
		mustNotLock(t, b, "prune-events")
		ka.Unlock(context.Background())
		mustLock(t, b, "prune-events").Unlock(context.Background())
	})
}

// TestJobLocker_Race has replicas reach for one lock at the same moment,
// the first time its row is written: one gets it.
func TestJobLocker_Race(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		const replicas = 8
		var won atomic.Int32
		var held atomic.Pointer[gocron.Lock]
		defer func() {
			if k := held.Load(); k != nil {
				(*k).Unlock(context.Background())
			}
		}()
		var wg sync.WaitGroup
		errs := make([]error, replicas)
		for i := range replicas {
			l := store.NewJobLocker(db, store.JobLockerOptions{})
			wg.Go(func() {
				k, err := l.Lock(context.Background(), "refresh-access-tokens")
				switch {
				case err == nil:
					won.Add(1)
					held.Store(&k)
				case !errors.Is(err, store.ErrJobLocked):
					errs[i] = err
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if n := won.Load(); n != 1 {
			t.Errorf("%d of %d replicas got the lock, want 1", n, replicas)
		}
	})
}
