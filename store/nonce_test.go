package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

func TestNonceStore(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := store.NewNonceStore(db)
		tid := mustCreateTenant(t, db, "tn_a")
		other := mustCreateTenant(t, db, "tn_b")
		now := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
		until := now.Add(10 * time.Minute)
		claim := func(tid tenant.ID, sig, body string, at time.Time) bool {
			t.Helper()
			ok, err := s.ClaimNonce(ctx, tid, sig, []byte(body), at, at.Add(10*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !claim(tid, "sig1", "body A", now) {
			t.Fatal("a new signature was refused")
		}
		if !claim(tid, "sig1", "body A", now.Add(time.Second)) {
			t.Error("the same signature with the same body (WeChat's retry) was refused")
		}
		if claim(tid, "sig1", "body B", now.Add(time.Second)) {
			t.Error("the same signature with another body (a replay) was accepted")
		}
		if !claim(other, "sig1", "body B", now) {
			t.Error("another tenant's use of the signature was refused")
		}
		if !claim(tid, "sig1", "body B", until.Add(time.Second)) {
			t.Error("an expired signature was not claimable afresh")
		}
		if claim(tid, "sig1", "body A", until.Add(2*time.Second)) {
			t.Error("after its renewal the signature took the old body again")
		}
		if _, err := s.ClaimNonce(ctx, "tn_gone", "sig", []byte("x"), now, until); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("claim for an unknown tenant: %v, want ErrNotFound", err)
		}
		n, err := s.PruneNonces(ctx, until.Add(time.Minute), 100)
		if err != nil || n != 1 { // other's sig1 expired; tid's was renewed
			t.Errorf("PruneNonces = %d, %v; want 1", n, err)
		}
	})
}
