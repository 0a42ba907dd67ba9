package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

// lifecycleEvents returns tenant tid's events, oldest first, with their
// webhook bodies.
func lifecycleEvents(t *testing.T, es *store.EventStore, tid tenant.ID) []*relay.Event {
	t.Helper()
	stored, err := es.FindEvents(context.Background(), tid, relay.EventFilter{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []*relay.Event
	for _, s := range slices.Backward(stored) {
		out = append(out, mustFindEvent(t, es, tid, s.ID))
	}
	return out
}

// A change of an authorization reaches the bound tenant's webhook as one
// lifecycle event, committed with the change: granted, its permission
// sets changed, revoked; the same grant saved twice (the consent page's
// redirect and WeChat's event, on two replicas at once) is one event;
// an authorization of an appid with no tenant is kept and queues none.
func TestAuthorizationLifecycleEvents(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		cs, ts, es := store.NewComponentStore(db), store.NewTenantStore(db), store.NewEventStore(db)
		comp := newComponent("cp_aaaaaaaaaaaaaaaa", "wx134c8103faa5a59e")
		if err := cs.CreateComponent(ctx, comp); err != nil {
			t.Fatal(err)
		}
		bound := func(id, appid string) tenant.ID {
			tn := newTenant(id, appid)
			tn.ComponentID, tn.Secrets = comp.ID, tenant.Secrets{}
			mustCreate(t, ts, tn)
			return tn.ID
		}
		const appA, appB, appC = "wxba5fad812f8e6fb9", "wxba5fad812f8e6fb8", "wxba5fad812f8e6fb7"
		tid := bound("tn_lifecycle_a", appA)
		at := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
		grant := func(appid string, funcs []int, n int) *tenant.Authorization {
			return &tenant.Authorization{ComponentID: comp.ID, AuthorizerAppID: appid, State: tenant.AuthorizationAuthorized,
				FuncInfo: funcs, RefreshToken: "refreshtoken@@@" + appid, AuthorizeTime: at, UpdateTime: at.Add(time.Duration(n) * time.Second)}
		}
		steps := []struct {
			name  string
			do    func() error
			types []string
		}{
			{"granted", func() error { return cs.SaveAuthorization(ctx, grant(appA, []int{17, 19}, 1)) },
				[]string{relay.TypeAuthorized}},
			{"the same grant again", func() error { return cs.SaveAuthorization(ctx, grant(appA, []int{19, 17}, 2)) },
				[]string{relay.TypeAuthorized}},
			{"permission sets changed", func() error { return cs.SaveAuthorization(ctx, grant(appA, []int{17}, 3)) },
				[]string{relay.TypeAuthorized, relay.TypeUpdated}},
			{"revoked", func() error { return cs.RevokeAuthorization(ctx, comp.ID, appA, at.Add(time.Hour)) },
				[]string{relay.TypeAuthorized, relay.TypeUpdated, relay.TypeRevoked}},
			{"revoked again", func() error { return cs.RevokeAuthorization(ctx, comp.ID, appA, at.Add(2*time.Hour)) },
				[]string{relay.TypeAuthorized, relay.TypeUpdated, relay.TypeRevoked}},
			{"granted anew", func() error { return cs.SaveAuthorization(ctx, grant(appA, []int{17}, 4)) },
				[]string{relay.TypeAuthorized, relay.TypeUpdated, relay.TypeRevoked, relay.TypeAuthorized}},
		}
		for _, st := range steps {
			if err := st.do(); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			var types []string
			for _, e := range lifecycleEvents(t, es, tid) {
				types = append(types, e.Type)
			}
			if !slices.Equal(types, st.types) {
				t.Fatalf("after %s: the tenant's events are %v, want %v", st.name, types, st.types)
			}
		}

		// What the webhook receives.
		evs := lifecycleEvents(t, es, tid)
		var body struct {
			Type     string `json:"type"`
			TenantID string `json:"tenant_id"`
			AppID    string `json:"appid"`
			Data     struct {
				ComponentID string `json:"component_id"`
				State       string `json:"state"`
				FuncInfo    []int  `json:"func_info"`
				RevokeTime  string `json:"revoke_time"`
			} `json:"data"`
		}
		if err := json.Unmarshal(evs[0].Payload, &body); err != nil {
			t.Fatal(err)
		}
		if body.Type != relay.TypeAuthorized || body.TenantID != string(tid) || body.AppID != appA ||
			body.Data.ComponentID != string(comp.ID) || body.Data.State != "AUTHORIZATION_AUTHORIZED" || !slices.Equal(body.Data.FuncInfo, []int{17, 19}) {
			t.Errorf("authorized event body = %s", evs[0].Payload)
		}
		json.Unmarshal(evs[2].Payload, &body)
		if body.Data.State != "AUTHORIZATION_REVOKED" || body.Data.RevokeTime != at.Add(time.Hour).Format(time.RFC3339) {
			t.Errorf("revoked event body = %s", evs[2].Payload)
		}
		for _, e := range evs {
			if e.State != relay.StatePending || e.OpenID != "" {
				t.Errorf("event %s: state %v, openid %q", e.Type, e.State, e.OpenID)
			}
		}

		// No tenant for the appid: kept, and nothing queued.
		if err := cs.SaveAuthorization(ctx, grant(appB, []int{17}, 5)); err != nil {
			t.Fatal(err)
		}
		if a, err := cs.FindAuthorization(ctx, comp.ID, appB); err != nil || a.State != tenant.AuthorizationAuthorized {
			t.Errorf("authorization without a tenant = %+v, %v", a, err)
		}
		n, _ := db.Bun().NewSelect().Table("events").Where("dedup_key LIKE 'authorization.%'").Count(ctx)
		if n != 4 {
			t.Errorf("%d lifecycle events stored in all, want the bound tenant's 4", n)
		}

		// Two replicas saving one grant at once: one event.
		tidC := bound("tn_lifecycle_c", appC)
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() { errs[i] = cs.SaveAuthorization(ctx, grant(appC, []int{17}, 10+i)) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := lifecycleEvents(t, es, tidC); len(got) != 1 || got[0].Type != relay.TypeAuthorized {
			t.Errorf("8 concurrent saves of one grant queued %d events, want one authorized", len(got))
		}

		// A component that is gone.
		if err := cs.RevokeAuthorization(ctx, "cp_zzzzzzzzzzzzzzzz", appA, at); err == nil {
			t.Error("revoking for an unknown component succeeded")
		}
	})
}

// TestAuthorizerPage: a component's authorizers are listed a page at a
// time in appid order, each with the tenant bound to its appid (not one
// being deleted, nor another component's).
func TestAuthorizerPage(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		cs, ts := store.NewComponentStore(db), store.NewTenantStore(db)
		comp, other := newComponent("cp_pagepagepagepag1", "wx134c8103faa5a591"), newComponent("cp_pagepagepagepag2", "wx134c8103faa5a592")
		for _, c := range []*tenant.Component{comp, other} {
			if err := cs.CreateComponent(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		at := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
		var appids []string
		for i := range 7 {
			appid := fmt.Sprintf("wxa0000000000000%02d", i)
			appids = append(appids, appid)
			if err := cs.SaveAuthorization(ctx, &tenant.Authorization{ComponentID: comp.ID, AuthorizerAppID: appid, State: tenant.AuthorizationAuthorized,
				FuncInfo: []int{17, i}, RefreshToken: "refreshtoken@@@" + appid, AuthorizeTime: at, UpdateTime: at}); err != nil {
				t.Fatal(err)
			}
		}
		if err := cs.RevokeAuthorization(ctx, comp.ID, appids[3], at.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		bind := func(id string, c *tenant.Component, appid string) {
			tn := newTenant(id, appid)
			tn.ComponentID, tn.Secrets = c.ID, tenant.Secrets{}
			mustCreate(t, ts, tn)
		}
		bind("tn_pagebound1", comp, strings.ToUpper(appids[1][:2])+appids[1][2:]) // appids compare without case
		bind("tn_pagebound4", comp, appids[4])
		if err := ts.Delete(ctx, "tn_pagebound4"); err != nil { // being deleted: no longer bound
			t.Fatal(err)
		}

		var got []string
		after, pages := "", 0
		for {
			page, err := cs.AuthorizerPage(ctx, comp.ID, after, 3)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, e := range page {
				got = append(got, fmt.Sprintf("%s %v %v %s", e.AppID, e.State, e.FuncInfo, e.TenantID))
			}
			if len(page) < 3 {
				break
			}
			after = page[len(page)-1].AppID
		}
		var want []string
		for i, appid := range appids {
			state, tid := tenant.AuthorizationAuthorized, ""
			if i == 3 {
				state = tenant.AuthorizationRevoked
			}
			if i == 1 {
				tid = "tn_pagebound1"
			}
			want = append(want, fmt.Sprintf("%s %v %v %s", appid, state, []int{17, i}, tid))
		}
		if !slices.Equal(got, want) || pages != 3 {
			t.Errorf("in %d pages of 3:\n%s\nwant in 3 pages:\n%s", pages, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if page, err := cs.AuthorizerPage(ctx, other.ID, "", 3); err != nil || len(page) != 0 {
			t.Errorf("another component's authorizers: %v, %v; want none", page, err)
		}
	})
}
