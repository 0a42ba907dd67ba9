package store_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/message"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

func TestIdempotencyStore(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := store.NewIdempotencyStore(db)
		tid := mustCreateTenant(t, db, "t1")
		other := mustCreateTenant(t, db, "t2")
		now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
		ttl := message.IdempotencyTTL

		if prev, err := s.ReserveIdempotencyKey(ctx, tid, "k", "fp1", now, ttl); err != nil || prev != nil {
			t.Fatalf("first reserve: %v, %v", prev, err)
		}
		prev, err := s.ReserveIdempotencyKey(ctx, tid, "k", "fp2", now.Add(time.Second), ttl)
		if !errors.Is(err, message.ErrKeyTaken) || prev.Fingerprint != "fp1" || prev.Done {
			t.Fatalf("pending repeat: %+v, %v", prev, err)
		}
		if _, err := s.ReserveIdempotencyKey(ctx, other, "k", "fp2", now, ttl); err != nil {
			t.Fatalf("other tenant: %v", err)
		}
		o := message.Outcome{Code: 9, Errcode: 45015, Errmsg: "out of time", Status: []byte{1, 2, 3}}
		if err := s.FinishIdempotencyKey(ctx, tid, "k", o, now.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		prev, err = s.ReserveIdempotencyKey(ctx, tid, "k", "fp1", now.Add(time.Hour), ttl)
		if !errors.Is(err, message.ErrKeyTaken) || !prev.Done || prev.Outcome.Errcode != 45015 || prev.Outcome.Code != 9 ||
			prev.Outcome.Errmsg != "out of time" || string(prev.Outcome.Status) != "\x01\x02\x03" {
			t.Fatalf("done repeat: %+v, %v", prev, err)
		}
		// A finished key is not released.
		if err := s.ReleaseIdempotencyKey(ctx, tid, "k"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReserveIdempotencyKey(ctx, tid, "k", "fp1", now.Add(time.Hour), ttl); !errors.Is(err, message.ErrKeyTaken) {
			t.Fatalf("after release of a done key: %v", err)
		}
		// A pending key is.
		if err := s.ReleaseIdempotencyKey(ctx, other, "k"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReserveIdempotencyKey(ctx, other, "k", "fp3", now, ttl); err != nil {
			t.Fatalf("after release: %v", err)
		}
		// Expired: free again.
		if _, err := s.ReserveIdempotencyKey(ctx, tid, "k", "fp9", now.Add(ttl), ttl); err != nil {
			t.Fatalf("after expiry: %v", err)
		}
		if _, err := s.ReserveIdempotencyKey(ctx, "nope", "k", "fp", now, ttl); !errors.Is(err, tenant.ErrNotFound) {
			t.Fatalf("unknown tenant: %v", err)
		}
	})
}

func TestIdempotencyStore_Concurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := store.NewIdempotencyStore(db)
		tid := mustCreateTenant(t, db, "t1")
		now := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for range 10 {
			wg.Go(func() {
				_, err := s.ReserveIdempotencyKey(ctx, tid, "k", "fp", now, time.Hour)
				switch {
				case err == nil:
					mu.Lock()
					won++
					mu.Unlock()
				case !errors.Is(err, message.ErrKeyTaken):
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if won != 1 {
			t.Errorf("%d reservations won, want 1", won)
		}
	})
}

// TestIdempotencyStore_PruneIsTheJobs: a reservation leaves other keys,
// expired or not, where they are (it scanned and deleted its tenant's
// expired keys under the write turn at every send); an expired key is
// reserved afresh; PruneIdempotencyKeys deletes the expired ones.
func TestIdempotencyStore_PruneIsTheJobs(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := store.NewIdempotencyStore(db)
		tid := mustCreateTenant(t, db, "tn_a")
		ttl := time.Hour
		t1 := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
		for _, k := range []string{"old1", "old2"} {
			if _, err := s.ReserveIdempotencyKey(ctx, tid, k, "fp", t1, ttl); err != nil {
				t.Fatal(err)
			}
		}
		count := func() int64 {
			n, err := db.Bun().NewSelect().Table("idempotency_keys").Count(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		later := t1.Add(2 * time.Hour)
		if _, err := s.ReserveIdempotencyKey(ctx, tid, "new", "fp", later, ttl); err != nil {
			t.Fatal(err)
		}
		if n := count(); n != 3 {
			t.Errorf("%d keys after a reservation, want 3: it must not prune", n)
		}
		// An expired key is free again, whatever its fingerprint was.
		if r, err := s.ReserveIdempotencyKey(ctx, tid, "old1", "another", later, ttl); err != nil || r != nil {
			t.Errorf("reserving an expired key: %+v, %v; want it taken afresh", r, err)
		}
		if r, err := s.ReserveIdempotencyKey(ctx, tid, "old1", "another", later, ttl); !errors.Is(err, message.ErrKeyTaken) || r == nil || r.Fingerprint != "another" {
			t.Errorf("the retaken key again: %+v, %v; want it taken, with the new fingerprint", r, err)
		}
		n, err := s.PruneIdempotencyKeys(ctx, later.Add(-ttl), 100)
		if err != nil || n != 1 {
			t.Errorf("PruneIdempotencyKeys = %d, %v; want old2 pruned", n, err)
		}
		if n := count(); n != 2 {
			t.Errorf("%d keys after the prune, want 2", n)
		}
	})
}

// BenchmarkReserveIdempotencyKey reserves new keys for a tenant that holds
// WXRELAY_BENCH_KEYS live keys already (default 200,000), on SQLite:
//
//	go test ./store -run '^$' -bench ReserveIdempotencyKey -benchtime 200x
func BenchmarkReserveIdempotencyKey(b *testing.B) {
	n := 200_000
	if v, err := strconv.Atoi(os.Getenv("WXRELAY_BENCH_KEYS")); err == nil && v >= 0 {
		n = v
	}
	db := storetest.New(b)
	ctx := context.Background()
	tid := mustCreateTenant(b, db, "tn_a")
	now := time.Now().UTC()
	if _, err := db.Bun().NewRaw(`WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM k WHERE i < ?)
INSERT INTO idempotency_keys (tenant_id, idem_key, fingerprint, state, grpc_code, errcode, errmsg, created_at)
SELECT ?, 'k' || i, 'fp', 'done', 0, 0, '', ? FROM k`, n, string(tid), now).Exec(ctx); err != nil {
		b.Fatal(err)
	}
	s := store.NewIdempotencyStore(db)
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.ReserveIdempotencyKey(ctx, tid, "new"+strconv.Itoa(i), "fp", now, message.IdempotencyTTL); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/reservation")
}
