package component_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/component"
	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/tenant"
)

func (e *env) keeper(owner string) *token.KeeperOf[tenant.ComponentID] {
	src := component.NewTokenSource(e.cs, &wechat.Client{BaseURL: e.wxURL}, nil)
	return component.NewTokenKeeper(store.NewComponentTokenStore(e.db), src, token.Options{Owner: owner})
}

// A component's token: none without a ticket; then fetched once with the
// ticket wxsim pushed, however many callers on however many replicas
// (keepers sharing the database) ask at once; replaced when a call finds
// it dead; and WeChat's refusal (61004) is in its status.
func TestComponentToken(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.keeper("replica-a"), e.keeper("replica-b")
	if _, err := a.Token(ctx, e.comp.ID); !errors.Is(err, component.ErrNoTicket) {
		t.Fatalf("a token before any ticket: %v, want ErrNoTicket", err)
	}
	if _, err := e.sim.PushTicket(compAppID); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	got := make([]string, 20)
	errs := make([]error, 20)
	for i := range got {
		k := a
		if i%2 == 1 {
			k = b
		}
		wg.Go(func() { got[i], errs[i] = k.Token(ctx, e.comp.ID) })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil || got[i] == "" || got[i] != got[0] {
			t.Fatalf("caller %d: %q, %v; want the one token %q", i, got[i], errs[i], got[0])
		}
	}
	if n := e.sim.TokenCounts(compAppID).Component; n != 1 {
		t.Errorf("component tokens fetched: %d, want 1 for 20 callers on two keepers", n)
	}

	// A call found it dead: one new token, for both replicas.
	fresh, err := b.Refresh(ctx, e.comp.ID, got[0])
	if err != nil || fresh == got[0] {
		t.Fatalf("Refresh = %q, %v; want a new token", fresh, err)
	}
	if again, err := a.Refresh(ctx, e.comp.ID, got[0]); err != nil || again != fresh {
		t.Errorf("the other replica's Refresh of the same dead token = %q, %v; want %q without a fetch", again, err, fresh)
	}
	if n := e.sim.TokenCounts(compAppID).Component; n != 2 {
		t.Errorf("component tokens fetched: %d, want 2", n)
	}

	e.sim.SetComponentFault(compAppID, 61004)
	if _, err := a.Refresh(ctx, e.comp.ID, fresh); wechat.Errcode(err) != 61004 {
		t.Errorf("Refresh with the IP not whitelisted: %v, want errcode 61004", err)
	}
	st, err := a.Status(ctx, e.comp.ID)
	if err != nil || st.LastErrcode != 61004 || st.Failures != 1 {
		t.Errorf("status after 61004 = %+v, %v", st, err)
	}
}

// Ticket pushes that paused are asked for again, once an hour at most: a
// component whose last ticket came 25 minutes ago gets a new one through
// api_start_push_ticket, and is not asked about again at the next run.
func TestTicketRestarter(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	svc := tenant.NewComponentService(e.cs, nil)
	old := time.Now().Add(-25 * time.Minute)
	if err := e.cs.SaveTicket(ctx, e.comp.ID, tenant.Ticket{Value: "ticket@@@old", ReceiveTime: old}); err != nil {
		t.Fatal(err)
	}
	e.sim.StopTickets(compAppID, true) // paused at WeChat; start_push_ticket resumes them
	r := component.NewTicketRestarter(svc, &wechat.Client{BaseURL: e.wxURL}, nil, nil)
	starts := func() int {
		n := 0
		for _, c := range e.sim.Calls() {
			if c.Path == "/cgi-bin/component/api_start_push_ticket" && c.Errcode == 0 {
				n++
			}
		}
		return n
	}
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, _ := e.cs.FindComponent(ctx, e.comp.ID)
		if c.Ticket.ReceiveTime.After(old.Add(time.Minute)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new ticket after the restart; WeChat saw %d start_push_ticket calls", starts())
		}
	}
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if n := starts(); n != 1 {
		t.Errorf("%d start_push_ticket calls, want 1: the second run found a fresh ticket", n)
	}
}
