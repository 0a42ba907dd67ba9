package health_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wxrelay/wxrelay/relay/component"
	"github.com/wxrelay/wxrelay/relay/health"
	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

func TestEvaluateComponent(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	old := &tenant.Component{ID: "cp_aaaaaaaaaaaaaaaa", CreateTime: now.Add(-48 * time.Hour)}
	fresh := &tenant.Component{ID: "cp_aaaaaaaaaaaaaaaa", CreateTime: now.Add(-10 * time.Minute)}
	for _, c := range []struct {
		name  string
		comp  *tenant.Component
		f     health.ComponentFacts
		state health.State
		kinds []health.Kind
		since time.Time
	}{
		{"a ticket 10 minutes ago", old, health.ComponentFacts{LastTicket: now.Add(-10 * time.Minute)}, health.StateOK, nil, time.Time{}},
		{"just registered, no ticket yet", fresh, health.ComponentFacts{}, health.StateDegraded, []health.Kind{health.ComponentTicketStale}, fresh.CreateTime},
		{"never a ticket", old, health.ComponentFacts{}, health.StateFailing, []health.Kind{health.ComponentTicketMissing}, old.CreateTime.Add(30 * time.Minute)},
		{"tickets paused 40 minutes", old, health.ComponentFacts{LastTicket: now.Add(-40 * time.Minute)}, health.StateDegraded,
			[]health.Kind{health.ComponentTicketStale}, now.Add(-10 * time.Minute)},
		{"tickets stopped 13 hours", old, health.ComponentFacts{LastTicket: now.Add(-13 * time.Hour), TokenFailures: 4, TokenError: "no ticket"},
			health.StateFailing, []health.Kind{health.ComponentTicketMissing}, now.Add(-time.Hour)},
		{"IP not whitelisted", old, health.ComponentFacts{LastTicket: now.Add(-time.Minute), TokenFailures: 1, TokenErrcode: 61004, TokenErrorAt: now},
			health.StateFailing, []health.Kind{health.ComponentTokenError}, now},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := health.EvaluateComponent(c.comp, c.f, now)
			if h.State != c.state || len(h.Reasons) != len(c.kinds) {
				t.Fatalf("state %v with %+v, want %v with %v", h.State, h.Reasons, c.state, c.kinds)
			}
			for i, k := range c.kinds {
				if r := h.Reasons[i]; r.Kind != k || r.Message == "" || !r.Since.Equal(c.since) {
					t.Errorf("reason %d = %+v, want %s since %v", i, r, k, c.since)
				}
			}
		})
	}
}

// TestComponentChecker: CheckAll computes every component's health from
// its last ticket and its token's fetches (WeChat refusing them, played
// by wxsim: 61004), serves the gauges, reports a change, and forgets a
// deleted component.
func TestComponentChecker(t *testing.T) {
	db := storetest.New(t)
	ctx := context.Background()
	cs := store.NewComponentStore(db)
	svc := tenant.NewComponentService(cs, nil)
	key := strings.Repeat("A", 43)
	a, err := svc.Create(ctx, &tenant.Component{AppID: "wx134c8103faa5a59e", Secrets: tenant.ComponentSecrets{Secret: "5ec2e75ec2e75ec2e75ec2e75ec2e75e", Token: "AAAAA", EncodingAESKey: key}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := svc.Create(ctx, &tenant.Component{AppID: "wx134c8103faa5a59f", Secrets: tenant.ComponentSecrets{Secret: "5ec2e75ec2e75ec2e75ec2e75ec2e75e", Token: "AAAAA", EncodingAESKey: key}})
	if err != nil {
		t.Fatal(err)
	}
	sim := wxsim.New(wxsim.Options{})
	t.Cleanup(sim.Close)
	wx := httptest.NewServer(sim)
	t.Cleanup(wx.Close)
	if err := sim.AddComponent(wxsim.ComponentOptions{AppID: b.AppID, Secret: "5ec2e75ec2e75ec2e75ec2e75ec2e75e", Token: "AAAAA", EncodingAESKey: key, TicketEvery: -1}); err != nil {
		t.Fatal(err)
	}
	sim.SetComponentFault(b.AppID, 61004)
	ticketAt := time.Now().UTC().Truncate(time.Second).Add(-40 * time.Minute)
	if err := cs.SaveTicket(ctx, b.ID, tenant.Ticket{Value: "ticket@@@b", ReceiveTime: ticketAt}); err != nil {
		t.Fatal(err)
	}
	keeper := component.NewTokenKeeper(store.NewComponentTokenStore(db), component.NewTokenSource(cs, &wechat.Client{BaseURL: wx.URL}, nil), token.Options{})
	if _, err := keeper.Token(ctx, b.ID); wechat.Errcode(err) != 61004 {
		t.Fatalf("component token with the IP fault: %v", err)
	}

	now := ticketAt.Add(40 * time.Minute)
	c := health.NewComponentChecker(keeper, func() time.Time { return now })
	var changes []string
	c.OnChange(func(_, new health.Health) { changes = append(changes, string(new.Component)+":"+new.State.String()) })
	if err := c.CheckAll(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if h, _ := c.Latest(a.ID); h.State != health.StateDegraded || !h.Has(health.ComponentTicketStale) {
		t.Errorf("a, just registered: %+v", h)
	}
	if h, _ := c.Latest(b.ID); h.State != health.StateFailing || !h.Has(health.ComponentTicketStale) || !h.Has(health.ComponentTokenError) {
		t.Errorf("b, tickets paused and the IP refused: %+v", h)
	}
	want := `
# HELP wxrelay_component_ticket_age_seconds Age of the component's last good component_verify_ticket (WeChat pushes one every 10 minutes; it is valid 12 hours); -1 when none came.
# TYPE wxrelay_component_ticket_age_seconds gauge
wxrelay_component_ticket_age_seconds{component="` + string(a.ID) + `"} -1
wxrelay_component_ticket_age_seconds{component="` + string(b.ID) + `"} 2400
# HELP wxrelay_component_token_errcode WeChat's errcode of the component's last failed token fetch while fetches fail (61004 IP not whitelisted, 61005/61006 ticket, 45009 quota); 0 when they work.
# TYPE wxrelay_component_token_errcode gauge
wxrelay_component_token_errcode{component="` + string(a.ID) + `"} 0
wxrelay_component_token_errcode{component="` + string(b.ID) + `"} 61004
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "wxrelay_component_ticket_age_seconds", "wxrelay_component_token_errcode"); err != nil {
		t.Error(err)
	}

	// Tickets stopped for 13 hours: no valid ticket.
	now = ticketAt.Add(13 * time.Hour)
	if err := c.CheckAll(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if h, _ := c.Latest(b.ID); h.State != health.StateFailing || !h.Has(health.ComponentTicketMissing) {
		t.Errorf("b, 13 hours without a ticket: %+v", h)
	}
	if len(changes) != 2 {
		t.Errorf("changes reported: %v, want a's and b's", changes)
	}
	if err := svc.Delete(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckAll(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Latest(a.ID); ok {
		t.Error("a deleted component's health is kept")
	}
}
