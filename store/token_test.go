package store_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

var tokenNow = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func mustAcquire(t *testing.T, s *store.TokenStore, tid tenant.ID, owner string, now time.Time) {
	t.Helper()
	ok, err := s.AcquireTokenLease(context.Background(), tid, owner, now, now.Add(time.Minute))
	if err != nil || !ok {
		t.Fatalf("AcquireTokenLease(%s, %s) = %v, %v; want true, nil", tid, owner, ok, err)
	}
}

func TestTokenStore_SaveAndFind(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx, s := context.Background(), store.NewTokenStore(db)
		a, b := mustCreateTenant(t, db, "tok_a"), mustCreateTenant(t, db, "tok_b")

		if _, err := s.FindToken(ctx, a); !errors.Is(err, token.ErrNotFound) {
			t.Fatalf("FindToken before any save: err = %v, want token.ErrNotFound", err)
		}
		mustAcquire(t, s, a, "p1", tokenNow)
		st, err := s.FindToken(ctx, a)
		if err != nil {
			t.Fatalf("FindToken after acquire: %v", err)
		}
		if st.Token != "" || !st.DueAt.Equal(tokenNow) {
			t.Errorf("fresh row = %+v, want no token, due now", st)
		}

		want := &token.State{
			AppID: "wx0123456789abcdef", Endpoint: tenant.TokenClassic,
			Token:     "ACCESS-TOKEN-plaintext-0123456789",
			ExpiresAt: tokenNow.Add(2 * time.Hour), RefreshedAt: tokenNow,
			DueAt:         tokenNow.Add(110 * time.Minute),
			TenantVersion: 3, Failures: 2, LastError: "invalid appsecret", LastErrcode: 40125,
			LastErrorAt: tokenNow.Add(-time.Minute),
			ForcedDay:   "2026-11-28", ForcedCount: 4, ForcedAt: tokenNow.Add(-time.Hour),
		}
		if err := s.SaveToken(ctx, a, "p1", want); err != nil {
			t.Fatalf("SaveToken: %v", err)
		}
		got, err := s.FindToken(ctx, a)
		if err != nil {
			t.Fatalf("FindToken: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("FindToken = %+v\nwant       %+v", got, want)
		}
		// Saving released the lease; a save without it is refused.
		if err := s.SaveToken(ctx, a, "p1", want); !errors.Is(err, token.ErrLeaseLost) {
			t.Errorf("SaveToken without the lease: err = %v, want token.ErrLeaseLost", err)
		}
		// Another tenant's row is its own.
		if _, err := s.FindToken(ctx, b); !errors.Is(err, token.ErrNotFound) {
			t.Errorf("FindToken(other tenant) err = %v, want token.ErrNotFound", err)
		}
		// Deleting the tenant deletes its token.
		if err := deleteAndPurge(ctx, db, a); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FindToken(ctx, a); !errors.Is(err, token.ErrNotFound) {
			t.Errorf("FindToken after tenant delete: err = %v, want token.ErrNotFound", err)
		}
		if _, err := s.AcquireTokenLease(ctx, a, "p1", tokenNow, tokenNow.Add(time.Minute)); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("AcquireTokenLease(deleted tenant) err = %v, want tenant.ErrNotFound", err)
		}
	})
}

func TestTokenStore_Lease(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx, s := context.Background(), store.NewTokenStore(db)
		a := mustCreateTenant(t, db, "lease_a")

		acquire := func(owner string, now time.Time) bool {
			t.Helper()
			ok, err := s.AcquireTokenLease(ctx, a, owner, now, now.Add(time.Minute))
			if err != nil {
				t.Fatalf("AcquireTokenLease(%s): %v", owner, err)
			}
			return ok
		}
		for _, tt := range []struct {
			name  string
			owner string
			now   time.Time
			want  bool
		}{
			{"free", "p1", tokenNow, true},
			{"held by another", "p2", tokenNow.Add(30 * time.Second), false},
			{"held by the same owner", "p1", tokenNow.Add(30 * time.Second), true}, // extends to +90 s
			{"still held", "p2", tokenNow.Add(80 * time.Second), false},
			{"expired", "p2", tokenNow.Add(90 * time.Second), true},
			{"taken over", "p1", tokenNow.Add(100 * time.Second), false},
		} {
			if got := acquire(tt.owner, tt.now); got != tt.want {
				t.Errorf("%s: AcquireTokenLease(%s) = %v, want %v", tt.name, tt.owner, got, tt.want)
			}
		}
		// Releasing someone else's lease does nothing; one's own frees it.
		if err := s.ReleaseTokenLease(ctx, a, "p1"); err != nil {
			t.Fatal(err)
		}
		if acquire("p3", tokenNow.Add(100*time.Second)) {
			t.Error("p1's release freed p2's lease")
		}
		if err := s.ReleaseTokenLease(ctx, a, "p2"); err != nil {
			t.Fatal(err)
		}
		if !acquire("p3", tokenNow.Add(100*time.Second)) {
			t.Error("lease not free after its owner released it")
		}
	})
}

// TestTokenStore_LeaseRace: of many processes racing for a free lease,
// exactly one gets it.
func TestTokenStore_LeaseRace(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx, s := context.Background(), store.NewTokenStore(db)
		a := mustCreateTenant(t, db, "race_a")
		var (
			wg  sync.WaitGroup
			mu  sync.Mutex
			won []string
		)
		for i := range 20 {
			owner := string(rune('A' + i))
			wg.Go(func() {
				ok, err := s.AcquireTokenLease(ctx, a, owner, tokenNow, tokenNow.Add(time.Minute))
				if err != nil {
					t.Errorf("AcquireTokenLease(%s): %v", owner, err)
				}
				if ok {
					mu.Lock()
					won = append(won, owner)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(won) != 1 {
			t.Errorf("lease won by %v, want exactly one owner", won)
		}
	})
}

func TestTokenStore_DueTokens(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx, s := context.Background(), store.NewTokenStore(db)
		never := mustCreateTenant(t, db, "due_1never")
		due := mustCreateTenant(t, db, "due_2due")
		later := mustCreateTenant(t, db, "due_3later")
		leased := mustCreateTenant(t, db, "due_4leased")
		disabled := mustCreateTenant(t, db, "due_5disabled")

		save := func(tid tenant.ID, dueAt time.Time) {
			t.Helper()
			mustAcquire(t, s, tid, "p", tokenNow.Add(-time.Hour))
			if err := s.SaveToken(ctx, tid, "p", &token.State{AppID: "wx", Endpoint: tenant.TokenStable, Token: "T", DueAt: dueAt}); err != nil {
				t.Fatal(err)
			}
		}
		save(due, tokenNow.Add(-time.Second))
		save(later, tokenNow.Add(time.Minute))
		save(leased, tokenNow.Add(-time.Second))
		mustAcquire(t, s, leased, "other", tokenNow)

		ts := store.NewTenantStore(db)
		tn, err := ts.FindByID(ctx, disabled)
		if err != nil {
			t.Fatal(err)
		}
		tn.State = tenant.StateDisabled
		if err := ts.Update(ctx, tn); err != nil {
			t.Fatal(err)
		}

		got, err := s.DueTokens(ctx, tokenNow, 10)
		if err != nil {
			t.Fatal(err)
		}
		if want := []tenant.ID{never, due}; !slices.Equal(got, want) {
			t.Errorf("DueTokens = %v, want %v", got, want)
		}
		if got, err := s.DueTokens(ctx, tokenNow, 1); err != nil || len(got) != 1 {
			t.Errorf("DueTokens(limit 1) = %v, %v; want one tenant", got, err)
		}
		// Once the lease expires, the leased tenant is due too.
		got, err = s.DueTokens(ctx, tokenNow.Add(2*time.Minute), 10)
		if err != nil {
			t.Fatal(err)
		}
		if want := []tenant.ID{never, due, later, leased}; !slices.Equal(got, want) {
			t.Errorf("DueTokens(later) = %v, want %v", got, want)
		}

		// A component's tenant is due only while its mini program has
		// authorized the component.
		cs := store.NewComponentStore(db)
		comp := newComponent("cp_dddddddddddddddd", "wx134c8103faa5a59e")
		if err := cs.CreateComponent(ctx, comp); err != nil {
			t.Fatal(err)
		}
		ct := newTenant("due_6component", "wxba5fad812f8e6fb9")
		ct.ComponentID, ct.Secrets = comp.ID, tenant.Secrets{}
		mustCreate(t, ts, ct)
		dueNow := func() bool {
			t.Helper()
			got, err := s.DueTokens(ctx, tokenNow, 10)
			if err != nil {
				t.Fatal(err)
			}
			return slices.Contains(got, ct.ID)
		}
		if dueNow() {
			t.Error("a component's tenant is due before its mini program authorized the component")
		}
		if err := cs.SaveAuthorization(ctx, &tenant.Authorization{ComponentID: comp.ID, AuthorizerAppID: ct.AppID,
			FuncInfo: []int{19}, RefreshToken: "r@@@1", AuthorizeTime: tokenNow, UpdateTime: tokenNow}); err != nil {
			t.Fatal(err)
		}
		if !dueNow() {
			t.Error("an authorized component tenant without a token is not due")
		}
		if err := cs.RevokeAuthorization(ctx, comp.ID, ct.AppID, tokenNow); err != nil {
			t.Fatal(err)
		}
		if dueNow() {
			t.Error("a component's tenant is due after the revocation")
		}
	})
}
