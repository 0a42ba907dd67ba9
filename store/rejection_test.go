package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/rejection"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

func TestRejectionStore(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ts := store.NewTenantStore(db)
		mustCreate(t, ts, newTenant("tn_one", "wx0123456789abcdef"))
		mustCreate(t, ts, newTenant("tn_two", "wx00000000000000ff"))
		s := store.NewRejectionStore(db)
		at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
		count := func(tid string, cause rejection.Cause, n int64, first, last time.Duration) rejection.Count {
			return rejection.Count{Tenant: tenant.ID(tid), Cause: cause, N: n, First: at.Add(first), Last: at.Add(last)}
		}
		// A flush of a replica's tally: a tenant that does not exist is
		// left out, not an error.
		err := s.AddPushRejections(ctx, []rejection.Count{
			count("tn_one", rejection.BadSignature, 3, 0, 5*time.Second),
			count("tn_one", rejection.StaleTimestamp, 1, time.Second, time.Second),
			count("tn_two", rejection.BadCiphertext, 2, 0, 2*time.Second),
			count("tn_gone", rejection.BadSignature, 9, 0, 0),
		})
		if err != nil {
			t.Fatalf("AddPushRejections: %v", err)
		}
		// Another flush within the window adds to the run.
		if err := s.AddPushRejections(ctx, []rejection.Count{count("tn_one", rejection.BadSignature, 2, 10*time.Second, 12*time.Second)}); err != nil {
			t.Fatal(err)
		}
		got, err := s.PushRejections(ctx, "tn_one", at.Add(-time.Hour))
		if err != nil || len(got) != 2 {
			t.Fatalf("PushRejections(tn_one) = %+v, %v; want 2 runs", got, err)
		}
		if c := got[0]; c.Cause != rejection.BadSignature || c.N != 5 || !c.First.Equal(at) || !c.Last.Equal(at.Add(12*time.Second)) {
			t.Errorf("bad_signature run = %+v, want 5 from %v to +12s", c, at)
		}
		if c := got[1]; c.Cause != rejection.StaleTimestamp || c.N != 1 {
			t.Errorf("second run = %+v, want stale_timestamp 1 (causes in their order)", c)
		}
		// A flush from a replica that is late keeps the latest time.
		if err := s.AddPushRejections(ctx, []rejection.Count{count("tn_one", rejection.StaleTimestamp, 1, -time.Second, -time.Second)}); err != nil {
			t.Fatal(err)
		}
		got, _ = s.PushRejections(ctx, "tn_one", at.Add(-time.Hour))
		if c := got[1]; c.N != 2 || !c.Last.Equal(at.Add(time.Second)) {
			t.Errorf("late flush made %+v, want 2 with the latest still +1s", c)
		}

		// After a quiet window, a refusal begins a new run.
		later := rejection.Window + time.Minute
		if err := s.AddPushRejections(ctx, []rejection.Count{count("tn_one", rejection.BadSignature, 1, 12*time.Second+later, 12*time.Second+later)}); err != nil {
			t.Fatal(err)
		}
		got, _ = s.PushRejections(ctx, "tn_one", at.Add(later))
		if len(got) != 1 || got[0].N != 1 || !got[0].First.Equal(at.Add(12*time.Second+later)) {
			t.Errorf("after a quiet window: %+v, want a new bad_signature run of 1 (stale_timestamp's ended before since)", got)
		}
		if two, _ := s.PushRejections(ctx, "tn_two", at.Add(-time.Hour)); len(two) != 1 || two[0].N != 2 {
			t.Errorf("tn_two's runs = %+v, want bad_ciphertext 2, untouched by tn_one's", two)
		}

		n, err := s.PrunePushRejections(ctx, at.Add(time.Minute))
		if err != nil || n != 2 { // tn_one's stale_timestamp and tn_two's
			t.Fatalf("PrunePushRejections = %d, %v; want 2", n, err)
		}
		if err := deleteAndPurge(ctx, db, "tn_one"); err != nil {
			t.Fatal(err)
		}
		if left, _ := s.PushRejections(ctx, "tn_one", time.Time{}); len(left) != 0 {
			t.Errorf("a deleted tenant's runs remain: %+v", left)
		}
	})
}
