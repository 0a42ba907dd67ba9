package token_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/relay/token/tokentest"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

// BenchmarkKeeper10k runs the token keeper for 10,000 tenants onboarded
// at the same moment, over more than two token lifetimes (7200 s each) of
// a fake clock shared by the keeper and wxsim: RefreshDue is called once a
// simulated minute, as serve's job does (a run still going when the next
// is due delays it, as gocron's singleton mode does), against a real
// SQLite store and wxsim over loopback HTTP. Its pacing (Options.Sleep)
// moves the fake clock, so wxsim records every fetch at the simulated
// moment it was made. It reports the peak fetches in any one second and
// any one minute, how the refreshes of the second lifetime spread over
// it, whether any tenant was ever left with an expired token, the keeper's
// own heap (live heap with the Keeper minus without it) and the process's
// resident memory (VmRSS: wxsim, SQLite and the test included). The
// database is a SQLite file on /dev/shm when there is one.
//
//	go test ./relay/token -run '^$' -bench Keeper10k -benchtime 1x
//
// WXRELAY_BENCH_TENANTS (default 10000) and WXRELAY_BENCH_HOURS (default
// 4.5, simulated) change the size, WXRELAY_BENCH_RATE the keeper's Rate
// (1e9 shows RefreshDue without pacing).
func BenchmarkKeeper10k(b *testing.B) {
	n := 10000
	if v := os.Getenv("WXRELAY_BENCH_TENANTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	hours := 4.5
	if v := os.Getenv("WXRELAY_BENCH_HOURS"); v != "" {
		hours, _ = strconv.ParseFloat(v, 64)
	}
	if n <= 0 || hours <= 0 {
		b.Fatal("WXRELAY_BENCH_TENANTS and WXRELAY_BENCH_HOURS must be positive")
	}

	// The database lives in memory (tmpfs) when it can: this measures the
	// keeper's schedule, and an fsync per lease and per saved token would
	// only make simulating hours take longer.
	dir := b.TempDir()
	if shm, err := os.MkdirTemp("/dev/shm", "wxrelay-keeper-bench"); err == nil {
		dir = shm
		b.Cleanup(func() { os.RemoveAll(shm) })
	}
	db := storetest.MustOpen(b, filepath.Join(dir, "wxrelay.db"))
	clock := clockwork.NewFakeClockAt(start)
	sim := wxsim.New(wxsim.Options{Now: clock.Now})
	ts := httptest.NewServer(sim)
	b.Cleanup(ts.Close)
	e := &env{sim: sim, clock: clock, db: db}
	t0 := time.Now()
	ids := make([]tenant.ID, n)
	for i := range n {
		appid := fmt.Sprintf("wx%016x", i)
		sim.AddApp(appid, secret)
		ids[i] = e.mustCreateTenant(b, fmt.Sprintf("tn_%05d", i), appid, secret)
	}
	b.Logf("%d tenants created in %s", n, time.Since(t0).Round(time.Millisecond))

	wx := &wechat.Client{BaseURL: ts.URL, HTTP: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	w := &pacedWeChat{WeChat: wx, Pacer: &tokentest.Pacer{Clock: clock}}
	var rate float64 // the default
	if v := os.Getenv("WXRELAY_BENCH_RATE"); v != "" {
		rate, _ = strconv.ParseFloat(v, 64)
	}
	k := token.NewKeeper(store.NewTokenStore(db), w, getter{s: store.NewTenantStore(db)},
		token.Options{Owner: "bench", Now: clock.Now, Sleep: w.Sleep, Rate: rate})
	ctx := context.Background()

	b.ResetTimer()
	t0 = time.Now()
	end := start.Add(time.Duration(hours * float64(time.Hour)))
	failed := 0
	runs, longest := tokentest.EveryMinute(clock, end, func() {
		w.BeginRun()
		if err := k.RefreshDue(ctx); err != nil {
			failed++
			b.Logf("RefreshDue at %s: %v", clock.Now().Sub(start), err)
		}
	})
	b.StopTimer()
	wall := time.Since(t0)

	// Every tenant holds a token that is still good.
	expired := 0
	for _, id := range ids {
		st, err := k.Status(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if !st.ExpiresAt.After(clock.Now()) {
			expired++
		}
	}
	heapWith := tokentest.LiveHeap()
	runtime.KeepAlive(k)
	k = nil
	keeperHeap := heapWith - tokentest.LiveHeap()

	perSecond, perMinute := map[int64]int{}, map[int64]int{}
	fetches := 0
	for _, c := range sim.Calls() {
		if c.Path != "/cgi-bin/stable_token" || c.Errcode != 0 {
			continue
		}
		fetches++
		perSecond[c.Time.Unix()]++
		perMinute[c.Time.Unix()/60]++
	}
	peakSecond, peakMinute := tokentest.MaxValue(perSecond), tokentest.MaxValue(perMinute)

	// From 1 h 30 min on, when the onboarding burst's tokens come due:
	// refreshes per minute, and the minutes that had any.
	var steady []int
	var busy int
	var busyFirst, busyLast time.Duration
	for m := start.Add(90*time.Minute).Unix() / 60; m < end.Unix()/60; m++ {
		steady = append(steady, perMinute[m])
		if perMinute[m] > 0 {
			at := time.Unix(m*60, 0).Sub(start)
			if busy == 0 {
				busyFirst = at
			}
			busy, busyLast = busy+1, at
		}
	}
	slices.Sort(steady)

	b.ReportMetric(float64(peakSecond), "peak-fetches/s")
	b.ReportMetric(float64(peakMinute), "peak-fetches/min")
	b.ReportMetric(float64(keeperHeap)/(1<<20), "keeper-heap-MiB")
	b.ReportMetric(float64(tokentest.RSS())/(1<<20), "process-RSS-MiB")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d tenants, %.1f simulated hours in %s: %d RefreshDue runs (longest %s), %d fetches",
		n, hours, wall.Round(time.Millisecond), runs, longest.Round(time.Second), fetches)
	b.Logf("peak fetches: %d in one second, %d in one minute", peakSecond, peakMinute)
	if len(steady) > 0 {
		b.Logf("refreshes per minute from 1h30 on: min %d, median %d, p99 %d, max %d over %d minutes; %d minutes had any, the first at %s, the last at %s",
			steady[0], steady[len(steady)/2], steady[len(steady)*99/100], steady[len(steady)-1], len(steady), busy, busyFirst, busyLast)
	}
	b.Logf("keeper heap %.1f MiB (%d B per tenant); process RSS %.0f MiB",
		float64(keeperHeap)/(1<<20), keeperHeap/uint64(n), float64(tokentest.RSS())/(1<<20))
	if expired > 0 || failed > 0 {
		b.Errorf("%d tenants ended with an expired token; %d RefreshDue runs failed", expired, failed)
	}
}
