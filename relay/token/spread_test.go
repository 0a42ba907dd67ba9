package token_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/relay/token/tokentest"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/store"
)

// advance is a Keeper's Sleep on a fake clock: the wait passes at once,
// moving the clock on by it.
func advance(c *clockwork.FakeClock) func(context.Context, time.Duration) error {
	return func(ctx context.Context, d time.Duration) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.Advance(d)
		return nil
	}
}

// pacedWeChat counts the token fetches WeChat has answered for its
// Pacer, which moves the fake clock as RefreshDue's pacing sleeps.
type pacedWeChat struct {
	token.WeChat
	*tokentest.Pacer
}

func (w *pacedWeChat) Token(ctx context.Context, appid, secret string) (wechat.AccessToken, error) {
	defer w.Started()
	return w.WeChat.Token(ctx, appid, secret)
}

func (w *pacedWeChat) StableToken(ctx context.Context, appid, secret string, force bool) (wechat.AccessToken, error) {
	defer w.Started()
	return w.WeChat.StableToken(ctx, appid, secret, force)
}

// TestKeeper_RefreshDuePaces: tenants onboarded together are not fetched
// in one burst: RefreshDue starts at most Rate fetches a second, as wxsim
// sees them on the shared fake clock.
func TestKeeper_RefreshDuePaces(t *testing.T) {
	e := newEnv(t)
	const n, rate = 40, 10
	for i := range n {
		appid := fmt.Sprintf("wx%016x", 0xc0+i)
		e.sim.AddApp(appid, secret)
		e.mustCreateTenant(t, fmt.Sprintf("p%02d", i), appid, secret)
	}
	w := &pacedWeChat{WeChat: e.wx, Pacer: &tokentest.Pacer{Clock: e.clock}}
	k := token.NewKeeper(store.NewTokenStore(e.db), w, getter{s: store.NewTenantStore(e.db)},
		token.Options{Owner: "p1", Now: e.clock.Now, Sleep: w.Sleep, Rate: rate})
	w.BeginRun()
	if err := k.RefreshDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	perSecond := map[int64]int{}
	var first, last time.Time
	fetches := 0
	for _, c := range e.sim.Calls() {
		if c.Path != "/cgi-bin/stable_token" {
			continue
		}
		fetches++
		perSecond[c.Time.Unix()]++
		if first.IsZero() {
			first = c.Time
		}
		last = c.Time
	}
	if fetches != n+1 {
		t.Fatalf("fetches = %d, want %d", fetches, n+1)
	}
	for sec, got := range perSecond {
		if got > rate {
			t.Errorf("%d fetches in the second %s, want at most %d", got, time.Unix(sec, 0).UTC(), rate)
		}
	}
	if span, want := last.Sub(first), time.Duration(n)*time.Second/rate; span < want {
		t.Errorf("%d fetches within %s, want them spread over at least %s", fetches, span, want)
	}
}

// TestKeeper_RefreshDueStopsWhilePacing: a run cancelled while it waits
// for its next slot returns at once with the context's error.
func TestKeeper_RefreshDueStopsWhilePacing(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		appid := fmt.Sprintf("wx%016x", 0xd0+i)
		e.sim.AddApp(appid, secret)
		e.mustCreateTenant(t, fmt.Sprintf("q%02d", i), appid, secret)
	}
	ctx, cancel := context.WithCancel(context.Background())
	waits := 0
	k := token.NewKeeper(store.NewTokenStore(e.db), e.wx, getter{s: store.NewTenantStore(e.db)},
		token.Options{Owner: "p1", Now: e.clock.Now, Rate: 1, Sleep: func(ctx context.Context, d time.Duration) error {
			waits++
			cancel()
			return ctx.Err()
		}})
	err := k.RefreshDue(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("RefreshDue = %v, want context.Canceled", err)
	}
	if waits != 1 {
		t.Errorf("waited %d times, want 1", waits)
	}
	if got := e.tokenCalls(); got > 1 {
		t.Errorf("%d fetches after the cancel, want at most the first", got)
	}
}
