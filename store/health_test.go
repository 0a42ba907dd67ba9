package store_test

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/relay/calllog"
	"github.com/wxrelay/wxrelay/relay/health"
	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

// TestHealthStore_Facts: the webhook's run of failures (ended by a
// success), the backlog and its oldest event, the latest push and the
// recent sends' reply-window refusals, each for its tenant only.
func TestHealthStore_Facts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ts := store.NewTenantStore(db)
		mustCreate(t, ts, newTenant("tn_h", "wx0123456789abcdef"))
		mustCreate(t, ts, newTenant("tn_other", "wx00000000000000ff"))
		hs := store.NewHealthStore(db)
		now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

		if f, err := hs.HealthFacts(ctx, "tn_h", now); err != nil || !reflect.DeepEqual(f, health.Facts{}) {
			t.Fatalf("facts of a new tenant = %+v, %v; want none", f, err)
		}

		events, ds := store.NewEventStore(db), store.NewDeliveryStore(db)
		var evs []*relay.Event
		for i, key := range []string{"k1", "k2", "k3", "k4"} {
			e := dueEvent("tn_h", key, "o1", now.Add(time.Duration(i-40)*time.Minute))
			evs = append(evs, e)
		}
		if _, err := events.AppendEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		if _, err := events.AppendEvents(ctx, []*relay.Event{dueEvent("tn_other", "x", "o9", now.Add(-time.Minute))}); err != nil {
			t.Fatal(err)
		}
		// k1 delivered, then k2, k3 and k4 each fail once: a run of 3.
		// Each is claimed as it falls due, before the next is.
		job := mustClaimOne(t, ds, "w", evs[0].ReceiveTime, evs[0])
		mustRecord(t, ds, delivered(job, "w", evs[0].ReceiveTime))
		for _, e := range evs[1:] {
			at := e.ReceiveTime
			job := mustClaimOne(t, ds, "w", at, e)
			mustRecord(t, ds, retried(job, "w", at, now.Add(time.Hour), 1))
		}
		calls := store.NewCallStore(db)
		var recs []calllog.Call
		for i := range 8 {
			code := 0
			if i < 3 {
				code = 45047
			}
			recs = append(recs, calllog.Call{TenantID: "tn_h", Time: now.Add(-time.Minute), Method: "POST", Path: "/p", PathClass: "send", HTTPStatus: 200, Errcode: code, HasErrcode: true})
		}
		recs = append(recs, calllog.Call{TenantID: "tn_h", Time: now.Add(-time.Hour), Method: "POST", Path: "/p", PathClass: "send", HTTPStatus: 200, Errcode: 45015, HasErrcode: true})
		if err := calls.AppendCalls(ctx, recs); err != nil {
			t.Fatal(err)
		}

		f, err := hs.HealthFacts(ctx, "tn_h", now)
		if err != nil {
			t.Fatal(err)
		}
		want := health.Facts{
			ConsecutiveFailures: 3, FailingSince: evs[1].ReceiveTime, LastHTTPStatus: 503, LastErrorClass: relay.ErrorHTTPStatus, LastError: "503 Service Unavailable",
			Pending: 3, OldestPending: evs[1].ReceiveTime, LastPush: evs[3].ReceiveTime, Sends: 8, Refusals: 3,
		}
		if !f.FailingSince.Equal(want.FailingSince) || !f.OldestPending.Equal(want.OldestPending) || !f.LastPush.Equal(want.LastPush) {
			t.Errorf("times: failing since %v, oldest pending %v, last push %v; want %v, %v, %v", f.FailingSince, f.OldestPending, f.LastPush, want.FailingSince, want.OldestPending, want.LastPush)
		}
		f.FailingSince, f.OldestPending, f.LastPush = want.FailingSince, want.OldestPending, want.LastPush
		if !reflect.DeepEqual(f, want) {
			t.Errorf("facts = %+v\nwant    %+v", f, want)
		}

		// A page read together says the same, with the keeper's failures.
		tokens := store.NewTokenStore(db)
		mustAcquire(t, tokens, "tn_h", "p1", now)
		failing := &token.State{AppID: "wx0123456789abcdef", DueAt: now.Add(time.Minute), Failures: 2,
			LastError: "invalid appsecret", LastErrcode: 40125, LastErrorAt: now.Add(-time.Minute)}
		if err := tokens.SaveToken(ctx, "tn_h", "p1", failing); err != nil {
			t.Fatal(err)
		}
		// A component's tenant, authorized without the customer-service
		// permission set.
		cs := store.NewComponentStore(db)
		comp := newComponent("cp_hhhhhhhhhhhhhhhh", "wx134c8103faa5a59e")
		if err := cs.CreateComponent(ctx, comp); err != nil {
			t.Fatal(err)
		}
		ct := newTenant("tn_comp", "wxba5fad812f8e6fb9")
		ct.ComponentID, ct.Secrets = comp.ID, tenant.Secrets{}
		mustCreate(t, ts, ct)
		if err := cs.SaveAuthorization(ctx, &tenant.Authorization{ComponentID: comp.ID, AuthorizerAppID: ct.AppID,
			FuncInfo: []int{17}, RefreshToken: "r@@@1", AuthorizeTime: now.Add(-time.Hour), UpdateTime: now}); err != nil {
			t.Fatal(err)
		}
		if f, err := hs.HealthFacts(ctx, ct.ID, now); err != nil || f.Authorization.State != tenant.AuthorizationAuthorized ||
			!slices.Equal(f.Authorization.FuncInfo, []int{17}) || !f.Authorization.AuthorizeTime.Equal(now.Add(-time.Hour)) {
			t.Errorf("a component tenant's authorization facts = %+v, %v", f.Authorization, err)
		}

		ids := []tenant.ID{"tn_h", "tn_other", "tn_never", ct.ID}
		page, err := hs.HealthFactsOf(ctx, ids, now)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			one, err := hs.HealthFacts(ctx, id, now)
			if err != nil {
				t.Fatal(err)
			}
			if id == "tn_h" {
				one.TokenFailures, one.TokenErrcode, one.TokenError, one.TokenErrorAt = 2, 40125, "invalid appsecret", now.Add(-time.Minute)
			}
			got, ok := page[id]
			if !ok || !sameFacts(got, one) {
				t.Errorf("%s: the page's facts = %+v (%v)\none by one     %+v", id, got, ok, one)
			}
		}
		if len(page) != len(ids) {
			t.Errorf("the page has %d tenants' facts, want %d", len(page), len(ids))
		}
	})
}

// sameFacts compares facts with their times as instants.
func sameFacts(a, b health.Facts) bool {
	for _, p := range [][2]*time.Time{{&a.FailingSince, &b.FailingSince}, {&a.OldestPending, &b.OldestPending}, {&a.LastPush, &b.LastPush}, {&a.TokenErrorAt, &b.TokenErrorAt},
		{&a.Authorization.AuthorizeTime, &b.Authorization.AuthorizeTime}, {&a.Authorization.RevokeTime, &b.Authorization.RevokeTime}} {
		if !p[0].Equal(*p[1]) {
			return false
		}
		*p[0] = *p[1]
	}
	return reflect.DeepEqual(a, b)
}

// TestEventStore_AttemptsPerMinute: a tenant's delivered and failed
// attempts counted by the minute they were made, within the window, and
// no other tenant's.
func TestEventStore_AttemptsPerMinute(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ts := store.NewTenantStore(db)
		mustCreate(t, ts, newTenant("tn_m", "wx0123456789abcdef"))
		mustCreate(t, ts, newTenant("tn_n", "wx00000000000000ff"))
		events, ds := store.NewEventStore(db), store.NewDeliveryStore(db)
		t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
		// Attempts at 12:00:10 ok, 12:00:50 failed, 12:01:59.9 failed,
		// 12:03:00 ok, and one of tn_n at 12:00:30.
		for i, a := range []struct {
			tid tenant.ID
			at  time.Time
			ok  bool
		}{
			{"tn_m", t0.Add(10 * time.Second), true},
			{"tn_m", t0.Add(50 * time.Second), false},
			{"tn_m", t0.Add(119900 * time.Millisecond), false},
			{"tn_m", t0.Add(3 * time.Minute), true},
			{"tn_n", t0.Add(30 * time.Second), true},
		} {
			e := dueEvent(a.tid, "m"+string(rune('a'+i)), "o", a.at)
			if _, err := events.AppendEvents(ctx, []*relay.Event{e}); err != nil {
				t.Fatal(err)
			}
			job := mustClaimOne(t, ds, "w", a.at, e)
			if a.ok {
				mustRecord(t, ds, delivered(job, "w", a.at))
			} else {
				mustRecord(t, ds, retried(job, "w", a.at, a.at.Add(time.Hour), 1))
			}
		}
		got, err := events.AttemptsPerMinute(ctx, "tn_m", t0, t0.Add(3*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		want := []relay.MinuteCount{{Minute: t0, Delivered: 1, Failed: 1}, {Minute: t0.Add(time.Minute), Failed: 1}}
		if len(got) != len(want) {
			t.Fatalf("per minute = %+v, want %+v", got, want)
		}
		for i := range want {
			if !got[i].Minute.Equal(want[i].Minute) || got[i].Delivered != want[i].Delivered || got[i].Failed != want[i].Failed {
				t.Errorf("minute %d = %+v, want %+v", i, got[i], want[i])
			}
		}
	})
}
