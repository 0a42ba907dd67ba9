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

func TestOperatorAndAuditStores(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		os := store.NewOperatorStore(db)
		now := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
		alice := &tenant.Operator{ID: "op_alice", Name: "Alice", Role: tenant.RoleAdmin, KeyHash: []byte("hash-a"), CreateTime: now, CreatedBy: tenant.AdminTokenActor}
		if err := os.CreateOperator(ctx, alice); err != nil {
			t.Fatal(err)
		}
		dup := &tenant.Operator{ID: "op_other", Name: "alice", Role: tenant.RoleAdmin, KeyHash: []byte("x"), CreateTime: now, CreatedBy: "Alice"}
		if err := os.CreateOperator(ctx, dup); !errors.Is(err, tenant.ErrConflict) {
			t.Errorf("a second operator named alice (another case): %v, want ErrConflict", err)
		}
		if err := os.CreateOperator(ctx, &tenant.Operator{ID: "op_bob", Name: "bob", Role: tenant.RoleViewer, KeyHash: []byte("hash-b"), CreateTime: now, CreatedBy: "Alice"}); err != nil {
			t.Fatal(err)
		}
		list, err := os.Operators(ctx)
		if err != nil || len(list) != 2 || list[0].Name != "Alice" || list[1].CreatedBy != "Alice" || list[0].KeyHash != nil ||
			list[0].Role != tenant.RoleAdmin || list[1].Role != tenant.RoleViewer {
			t.Errorf("Operators = %+v, %v; want Alice (admin) then bob (viewer), without key hashes", list, err)
		}
		bob, err := os.Operator(ctx, "op_bob")
		if err != nil || bob.Name != "bob" || string(bob.KeyHash) != "hash-b" || bob.Role != tenant.RoleViewer {
			t.Errorf("Operator = %+v %v", bob, err)
		}
		if o, err := os.SetOperatorKey(ctx, "op_bob", []byte("hash-b2")); err != nil || o.Name != "bob" || o.CreatedBy != "Alice" || o.Role != tenant.RoleViewer {
			t.Errorf("SetOperatorKey = %+v, %v", o, err)
		}
		if bob, _ := os.Operator(ctx, "op_bob"); string(bob.KeyHash) != "hash-b2" {
			t.Errorf("after SetOperatorKey the hash is %q", bob.KeyHash)
		}
		if err := os.CreateOperator(ctx, &tenant.Operator{ID: "op_carol", Name: "carol", Role: "owner", KeyHash: []byte("c"), CreateTime: now, CreatedBy: "Alice"}); err == nil {
			t.Errorf("an operator with role owner was stored; the schema takes admin and viewer")
		}
		if _, err := os.SetOperatorKey(ctx, "op_nobody", []byte("x")); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("SetOperatorKey of nobody: %v, want ErrNotFound", err)
		}
		if err := os.DeleteOperator(ctx, "op_bob"); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Operator(ctx, "op_bob"); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("a removed operator's key: %v, want ErrNotFound", err)
		}
		if err := os.DeleteOperator(ctx, "op_bob"); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("removing twice: %v, want ErrNotFound", err)
		}

		as := store.NewAuditStore(db)
		var seqs []int64
		for i, m := range []string{"CreateTenant", "UpdateTenant", "DeleteTenant"} {
			e := tenant.AuditEntry{Time: now.Add(time.Duration(i) * time.Hour), Actor: "Alice", Method: m, Target: "", Code: tenant.AuditStarted}
			seq, err := as.AppendAudit(ctx, e)
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, seq)
		}
		if seqs[0] <= 0 || seqs[1] <= seqs[0] || seqs[2] <= seqs[1] {
			t.Fatalf("AppendAudit returned seqs %v, want increasing", seqs)
		}
		// The first two end; the third stays STARTED (its relay stopped).
		if err := as.FinishAudit(ctx, seqs[0], "tn_x", "appid wx0123456789abcdef", "OK"); err != nil {
			t.Fatal(err)
		}
		if err := as.FinishAudit(ctx, seqs[1], "tn_x", "fields: display_name", "INVALID_ARGUMENT"); err != nil {
			t.Fatal(err)
		}
		if err := as.FinishAudit(ctx, seqs[2]+100, "tn_x", "", "OK"); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("FinishAudit of no entry: %v, want ErrNotFound", err)
		}
		page, err := as.AuditEntries(ctx, 0, 2)
		if err != nil || len(page) != 2 || page[0].Method != "DeleteTenant" || page[1].Method != "UpdateTenant" {
			t.Fatalf("AuditEntries = %+v, %v; want the newest two", page, err)
		}
		if page[0].Code != tenant.AuditStarted || page[1].Code != "INVALID_ARGUMENT" || page[1].Target != "tn_x" || page[1].Detail != "fields: display_name" {
			t.Errorf("after FinishAudit: %+v", page)
		}
		rest, _ := as.AuditEntries(ctx, page[1].Seq, 10)
		if len(rest) != 1 || rest[0].Method != "CreateTenant" || !rest[0].Time.Equal(now) || rest[0].Code != "OK" || rest[0].Detail != "appid wx0123456789abcdef" {
			t.Errorf("the next page = %+v", rest)
		}
		if n, err := as.PruneAudit(ctx, now.Add(90*time.Minute)); err != nil || n != 2 {
			t.Errorf("PruneAudit = %d, %v; want 2", n, err)
		}
	})
}
