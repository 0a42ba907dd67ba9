package store_test

import (
	"context"
	"errors"
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
