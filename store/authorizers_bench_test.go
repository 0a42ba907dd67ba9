package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

// BenchmarkListAuthorizers lists an agency's 10,000 authorizers (2,000 of
// them bound to tenants) on SQLite three ways: as GET
// /v1/components/{id}/authorizers did before it was paged (every
// authorization read with its refresh token opened, then one query per
// appid for its tenant), all of them through AuthorizerPage in pages of
// 500, and the first page of 50 that the API answers by default.
// docs/benchmarks.md, "Listing a component's authorizers", runs each in a
// process of its own.
func BenchmarkListAuthorizers(b *testing.B) {
	const n, bound = 10_000, 2_000
	db := storetest.New(b)
	ctx := context.Background()
	cs, ts := store.NewComponentStore(db), store.NewTenantStore(db)
	comp := newComponent("cp_benchbenchbench1", "wx134c8103faa5a599")
	if err := cs.CreateComponent(ctx, comp); err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	for i := range n {
		appid := fmt.Sprintf("wxb0000000000%05d", i)
		if err := cs.SaveAuthorization(ctx, &tenant.Authorization{ComponentID: comp.ID, AuthorizerAppID: appid, State: tenant.AuthorizationAuthorized,
			FuncInfo: []int{17, 18, 19}, RefreshToken: "refreshtoken@@@" + appid, AuthorizeTime: at, UpdateTime: at}); err != nil {
			b.Fatal(err)
		}
		if i%(n/bound) == 0 {
			tn := newTenant(fmt.Sprintf("tn_bench%08d", i), appid)
			tn.ComponentID, tn.Secrets = comp.ID, tenant.Secrets{}
			if err := ts.Create(ctx, tn); err != nil {
				b.Fatal(err)
			}
		}
	}
	check := func(listed, withTenant int) {
		if listed != n && listed != 50 || withTenant == 0 {
			b.Fatalf("listed %d authorizers, %d with a tenant", listed, withTenant)
		}
	}
	b.Run("whole_list_query_per_appid", func(b *testing.B) {
		for b.Loop() {
			auths, err := cs.Authorizations(ctx, comp.ID)
			if err != nil {
				b.Fatal(err)
			}
			withTenant := 0
			for _, a := range auths {
				if _, err := ts.ComponentTenantID(ctx, comp.ID, a.AuthorizerAppID); err == nil {
					withTenant++
				} else if !errors.Is(err, tenant.ErrNotFound) {
					b.Fatal(err)
				}
			}
			check(len(auths), withTenant)
		}
	})
	b.Run("all_pages_of_500", func(b *testing.B) {
		for b.Loop() {
			listed, withTenant, after := 0, 0, ""
			for {
				page, err := cs.AuthorizerPage(ctx, comp.ID, after, 500)
				if err != nil {
					b.Fatal(err)
				}
				for _, e := range page {
					if e.TenantID != "" {
						withTenant++
					}
				}
				listed += len(page)
				if len(page) < 500 {
					break
				}
				after = page[len(page)-1].AppID
			}
			check(listed, withTenant)
		}
	})
	b.Run("first_page_of_50", func(b *testing.B) {
		for b.Loop() {
			page, err := cs.AuthorizerPage(ctx, comp.ID, "", 50)
			if err != nil {
				b.Fatal(err)
			}
			check(len(page), 1)
		}
	})
}
