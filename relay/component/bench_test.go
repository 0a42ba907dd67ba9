package component_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/wxrelay/wxrelay/relay/component"
	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/relay/token/tokentest"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

// pacedAuthorizers is the WeChat of the benchmark's keepers: it counts
// the authorizer token fetches answered for its Pacer, which moves the
// fake clock as RefreshDue's pacing sleeps.
type pacedAuthorizers struct {
	*wechat.Client
	*tokentest.Pacer
}

func (w *pacedAuthorizers) AuthorizerToken(ctx context.Context, ctok, comp, authorizer, refresh string) (wechat.Authorization, error) {
	defer w.Started()
	return w.Client.AuthorizerToken(ctx, ctok, comp, authorizer, refresh)
}

// BenchmarkAuthorizers10k runs the token keepers of component mode for
// 10,000 mini programs that authorized one component at the same moment
// (an agency moving onto the relay), over 4.5 hours of a fake clock shared
// with wxsim, as BenchmarkKeeper10k in relay/token does for tenants with
// AppSecrets: the tenants' keeper fetching authorizer tokens through the
// component (api_authorizer_token, with each authorization's refresh
// token), and the component's keeper its token from the last ticket, each
// RefreshDue once a simulated minute, as serve's jobs do, against a real
// SQLite store and wxsim over loopback HTTP. A new ticket comes every 10
// minutes and WeChat rotates nothing. It reports the peak authorizer
// token fetches in a second and a minute, the fetches per authorizer in
// the second token lifetime (1 h 30 to 3 h 30: one is the ideal), the
// component token fetches, whether any authorizer was left with an
// expired token, the keepers' heap and the process's resident memory.
//
//	go test ./relay/component -run '^$' -bench Authorizers10k -benchtime 1x
//
// WXRELAY_BENCH_AUTHORIZERS (default 10000) and WXRELAY_BENCH_HOURS
// (default 4.5, simulated) change the size.
func BenchmarkAuthorizers10k(b *testing.B) {
	n := benchInt(b, "WXRELAY_BENCH_AUTHORIZERS", 10000)
	hours, _ := strconv.ParseFloat(cmpEnv("WXRELAY_BENCH_HOURS", "4.5"), 64)
	dir := b.TempDir()
	if shm, err := os.MkdirTemp("/dev/shm", "wxrelay-authorizers-bench"); err == nil {
		dir = shm
		b.Cleanup(func() { os.RemoveAll(shm) })
	}
	db := storetest.MustOpen(b, filepath.Join(dir, "wxrelay.db"))
	start := time.Date(2026, 6, 1, 2, 0, 0, 0, time.UTC)
	clock := clockwork.NewFakeClockAt(start)
	sim := wxsim.New(wxsim.Options{Now: clock.Now})
	b.Cleanup(sim.Close)
	ts := httptest.NewServer(sim)
	b.Cleanup(ts.Close)
	ctx := context.Background()

	cs := store.NewComponentStore(db)
	comp, err := tenant.NewComponentService(cs, nil).Create(ctx, &tenant.Component{AppID: compAppID,
		Secrets: tenant.ComponentSecrets{Secret: "c5ec2e7c5ec2e7c5ec2e7c5ec2e7c5ec", Token: compToken, EncodingAESKey: compKey}})
	if err != nil {
		b.Fatal(err)
	}
	if err := sim.AddComponent(wxsim.ComponentOptions{AppID: compAppID, Secret: "c5ec2e7c5ec2e7c5ec2e7c5ec2e7c5ec", Token: compToken, EncodingAESKey: compKey, TicketEvery: -1}); err != nil {
		b.Fatal(err)
	}
	newTicket := func() {
		v, err := sim.PushTicket(compAppID)
		if err == nil {
			err = cs.SaveTicket(ctx, comp.ID, tenant.Ticket{Value: v, ReceiveTime: clock.Now()})
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	newTicket()

	wx := &pacedAuthorizers{Client: &wechat.Client{BaseURL: ts.URL, HTTP: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}, Pacer: &tokentest.Pacer{Clock: clock}}
	compKeeper := component.NewTokenKeeper(store.NewComponentTokenStore(db), component.NewTokenSource(cs, wx.Client, clock.Now),
		token.Options{Owner: "bench", Now: clock.Now})
	ts2 := store.NewTenantStore(db)
	auth, err := tenant.NewAuthenticator(make([]byte, 32), ts2, nil)
	if err != nil {
		b.Fatal(err)
	}
	svc := tenant.NewService(ts2, auth, true, nil)
	authorizer := component.NewAuthorizer(cs, compKeeper, wx.Client, nil, clock.Now)
	t0 := time.Now()
	ctok, err := compKeeper.Token(ctx, comp.ID)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		appid := fmt.Sprintf("wx%016x", i)
		if _, _, err := svc.Create(ctx, &tenant.Tenant{ComponentID: comp.ID, AppID: appid, WebhookURL: "https://example.com/h"}); err != nil {
			b.Fatal(err)
		}
		pre, _, err := wx.PreAuthCode(ctx, ctok, compAppID)
		if err != nil {
			b.Fatal(err)
		}
		code, err := sim.Scan(compAppID, pre, appid, []int{17, 19})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := authorizer.Authorize(ctx, comp, code, clock.Now()); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d tenants authorized in %s", n, time.Since(t0).Round(time.Millisecond))

	keeper := token.NewKeeper(store.NewTokenStore(db), nil, tenant.NewCache(svc, 0, nil), token.Options{Owner: "bench", Now: clock.Now,
		Sleep: wx.Sleep, Authorizers: component.NewAuthorizerTokens(cs, compKeeper, wx, nil)})
	sentBefore := len(sim.Calls())

	b.ResetTimer()
	t0 = time.Now()
	end := start.Add(time.Duration(hours * float64(time.Hour)))
	failed := 0
	lastTicket := clock.Now()
	runs, longest := tokentest.EveryMinute(clock, end, func() {
		if clock.Now().Sub(lastTicket) >= 10*time.Minute {
			newTicket()
			lastTicket = clock.Now()
		}
		if err := compKeeper.RefreshDue(ctx); err != nil {
			failed++
		}
		wx.BeginRun()
		if err := keeper.RefreshDue(ctx); err != nil {
			failed++
			b.Logf("RefreshDue at %s: %v", clock.Now().Sub(start), err)
		}
	})
	b.StopTimer()
	wall := time.Since(t0)

	expired := 0
	for i := range n {
		tid, err := ts2.ComponentTenantID(ctx, comp.ID, fmt.Sprintf("wx%016x", i))
		if err != nil {
			b.Fatal(err)
		}
		st, err := keeper.Status(ctx, tid)
		if err != nil {
			b.Fatal(err)
		}
		if !st.ExpiresAt.After(clock.Now()) {
			expired++
		}
	}
	heapWith := tokentest.LiveHeap()
	runtime.KeepAlive(keeper)
	runtime.KeepAlive(compKeeper)
	keeper, compKeeper = nil, nil
	keepersHeap := heapWith - tokentest.LiveHeap()

	perSecond, perMinute := map[int64]int{}, map[int64]int{}
	fetches, componentFetches, second := 0, 0, 0
	for _, c := range sim.Calls()[sentBefore:] {
		switch {
		case c.Path == "/cgi-bin/component/api_component_token" && c.Errcode == 0:
			componentFetches++
		case c.Path == "/cgi-bin/component/api_authorizer_token" && c.Errcode == 0:
			fetches++
			perSecond[c.Time.Unix()]++
			perMinute[c.Time.Unix()/60]++
			if at := c.Time.Sub(start); at >= 90*time.Minute && at < 210*time.Minute {
				second++
			}
		}
	}
	peakSecond, peakMinute := tokentest.MaxValue(perSecond), tokentest.MaxValue(perMinute)
	perAuthorizer := float64(second) / float64(n)
	b.ReportMetric(float64(peakSecond), "peak-fetches/s")
	b.ReportMetric(float64(peakMinute), "peak-fetches/min")
	b.ReportMetric(perAuthorizer, "fetches/authorizer/2h")
	b.ReportMetric(float64(componentFetches), "component-fetches")
	b.ReportMetric(float64(keepersHeap)/(1<<20), "keepers-heap-MiB")
	b.ReportMetric(float64(tokentest.RSS())/(1<<20), "process-RSS-MiB")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d authorizers, %.1f simulated hours in %s: %d runs (longest %s), %d authorizer token fetches (peak %d/s, %d/min), %.2f per authorizer from 1h30 to 3h30, %d component token fetches",
		n, hours, wall.Round(time.Millisecond), runs, longest.Round(time.Second), fetches, peakSecond, peakMinute, perAuthorizer, componentFetches)
	b.Logf("keepers' heap %.1f MiB (%d B per authorizer); process RSS %.0f MiB", float64(keepersHeap)/(1<<20), keepersHeap/uint64(n), float64(tokentest.RSS())/(1<<20))
	if expired > 0 || failed > 0 {
		b.Errorf("%d authorizers ended with an expired token; %d RefreshDue runs failed", expired, failed)
	}
}

func benchInt(b *testing.B, name string, def int) int {
	v, err := strconv.Atoi(cmpEnv(name, strconv.Itoa(def)))
	if err != nil || v <= 0 {
		b.Fatalf("%s must be a positive integer", name)
	}
	return v
}

func cmpEnv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
