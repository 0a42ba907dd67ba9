package store_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

// TestTenantStore_APIKeyHash: the key hash read alone is the tenant's
// current one, follows an update (a rotation) at once, and is ErrNotFound
// for a tenant that is gone or never was.
func TestTenantStore_APIKeyHash(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := store.NewTenantStore(db)
		ctx := context.Background()
		tn := newTenant("tn_keyed", "wx7100000000000000")
		tn.APIKeyHash = bytes.Repeat([]byte{0xa1}, 32)
		mustCreate(t, s, tn)
		mustCreate(t, s, newTenant("tn_other", "wx7100000000000001"))

		check := func(want []byte) {
			t.Helper()
			for range 2 { // the second call runs the prepared statement again
				got, err := s.APIKeyHash(ctx, "tn_keyed")
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("APIKeyHash = %x, %v; want %x", got, err, want)
				}
			}
		}
		check(tn.APIKeyHash)

		rotated := mustFind(t, s, "tn_keyed")
		rotated.APIKeyHash = bytes.Repeat([]byte{0xb2}, 32)
		if err := s.Update(ctx, rotated); err != nil {
			t.Fatal(err)
		}
		check(rotated.APIKeyHash)

		if err := s.Delete(ctx, "tn_keyed"); err != nil {
			t.Fatal(err)
		}
		for _, id := range []tenant.ID{"tn_keyed", "tn_never"} {
			if _, err := s.APIKeyHash(ctx, id); !errors.Is(err, tenant.ErrNotFound) {
				t.Errorf("APIKeyHash(%s) error = %v, want %v", id, err, tenant.ErrNotFound)
			}
		}
	})
}
