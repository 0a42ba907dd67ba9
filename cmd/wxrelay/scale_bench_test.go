package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat/wxsim/load"
	"github.com/wxrelay/wxrelay/store/storetest"
)

// BenchmarkScale measures real `wxrelay serve` processes holding many
// tenants, onboarded through the REST API: resident memory, how long a
// replica takes to start again, how long a tenant-health tick takes
// (wxrelay_job_duration_seconds), the p99 of paging through every tenant
// 100 at a time, and another tenant's push p99 at WXRELAY_BENCH_RATE
// (default 1,000/s) while the health ticks run back to back (every 5 s,
// each longer than that at 100,000 tenants). Two cases:
//
//   - sqlite: one relay, WXRELAY_BENCH_TENANTS tenants (default 100,000);
//
//   - pg-2: two replicas on one PostgreSQL, WXRELAY_BENCH_PG_TENANTS
//     tenants (default 10,000), onboarded and paged through both, the
//     pushes split between them. It skips without WXRELAY_TEST_POSTGRES.
//
//     go test ./cmd/wxrelay -run '^$' -bench Scale -benchtime 1x -timeout 30m
func BenchmarkScale(b *testing.B) {
	rate := benchEnvInt(b, "WXRELAY_BENCH_RATE", 1000)
	for _, c := range []struct {
		name     string
		pg       bool
		replicas int
		tenants  int
	}{
		{"sqlite", false, 1, benchEnvInt(b, "WXRELAY_BENCH_TENANTS", 100_000)},
		{"pg-2", true, 2, benchEnvInt(b, "WXRELAY_BENCH_PG_TENANTS", 10_000)},
	} {
		b.Run(c.name, func(b *testing.B) {
			key := make([]byte, 32)
			rand.Read(key)
			env := []string{"WXRELAY_HEALTH_INTERVAL=5s", "WXRELAY_LOG_LEVEL=warn", "WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true",
				"WXRELAY_SECRET_KEY=" + base64.StdEncoding.EncodeToString(key)}
			if c.pg {
				env = append(env, "WXRELAY_DB="+storetest.PostgresDSN(b))
			} else {
				env = append(env, "WXRELAY_DB="+filepath.Join(b.TempDir(), "wxrelay.db"))
			}
			scaleCase(b, env, c.replicas, c.tenants, rate)
		})
	}
}

func scaleCase(b *testing.B, env []string, replicas, n, rate int) {
	const conc = 8
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer hook.Close()
	ps := startReplicas(b, replicas, env...)
	admin := adminTokenFor(b, b.TempDir(), env)
	start := time.Now()
	parallel(b, n, conc, func(i int) error {
		_, _, err := createPlainTenant(ps[i%len(ps)].process, admin, fmt.Sprintf("wx%016x", i), "s", i)
		return err
	})
	onboard := time.Since(start)
	pushed := benchTenant(b, ps[0], env, hook.URL)
	for _, p := range ps {
		p.stop(b, syscall.SIGTERM)
	}

	// Start again on the same database: how long until ready.
	start = time.Now()
	ps = startReplicas(b, replicas, env...)
	startup := time.Since(start)
	// Wait for two health ticks on each: at 100,000 tenants one takes
	// seconds.
	var tick time.Duration
	for _, p := range ps {
		for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(time.Second) {
			var runs int
			if tick, runs = jobMean(b, p.process, "tenant-health"); runs >= 2 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("fewer than two tenant-health runs in 5 minutes")
			}
		}
	}
	var rss uint64
	for _, p := range ps {
		rss = max(rss, rssOf(b, p.cmd.Process.Pid))
	}

	// Another tenant's pushes, while the ticks go on.
	secs := 10
	pushes := runSplit(b, ps, pushed, nil, load.Options{Rate: float64(rate) / float64(len(ps)), Duration: time.Duration(secs) * time.Second, Concurrency: 64 / len(ps)}, rate*secs/len(ps)+100)
	if pushes.Failed+pushes.NotSent > 0 {
		b.Errorf("%d pushes failed, %d not sent: %v", pushes.Failed, pushes.NotSent, pushes.ErrorSamples)
	}

	// Page through every tenant, the pages spread over the replicas.
	var pages []time.Duration
	token := ""
	for i := 0; ; i++ {
		t0 := time.Now()
		var out struct {
			Tenants []struct{ ID string } `json:"tenants"`
			Next    string                `json:"next_page_token"`
		}
		if code := ps[i%len(ps)].api(b, "GET", "/v1/tenants?page_size=100&page_token="+token, admin, "", &out); code != 200 {
			b.Fatalf("list tenants: %d", code)
		}
		pages = append(pages, time.Since(t0))
		if token = out.Next; token == "" {
			break
		}
	}
	slices.Sort(pages)
	p99 := pages[len(pages)*99/100]
	for i, p := range ps {
		// The relays log at warn; the tenants' token refreshes fail by
		// design (wxsim knows none of their appids).
		for _, line := range strings.Split(p.log.String(), "\n") {
			if line != "" && !strings.Contains(line, "refresh") {
				b.Logf("replica %d logged: %s", i, line)
				break
			}
		}
	}

	mib := float64(rss) / (1 << 20)
	b.ReportMetric(mib, "RSS-MiB")
	b.ReportMetric(startup.Seconds(), "startup-s")
	b.ReportMetric(tick.Seconds()*1000, "health-tick-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "list-page-p99-ms")
	b.ReportMetric(ms(pushes.Latency.P99), "push-p99-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d tenants on %d replica(s) (onboarded in %v): RSS %.1f MiB after restart, start-up %v, tenant-health tick %v, %d list pages p99 %v, %d/s pushes p99 %v",
		n, replicas, onboard.Round(time.Second), mib, startup.Round(time.Millisecond), tick.Round(time.Millisecond), len(pages), p99, rate, pushes.Latency.P99)
}

// jobMean is the mean duration of job's runs on p, and their number, from
// its metrics.
func jobMean(b *testing.B, p *process, job string) (time.Duration, int) {
	b.Helper()
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var sum, count float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		for name, v := range map[string]*float64{"wxrelay_job_duration_seconds_sum": &sum, "wxrelay_job_duration_seconds_count": &count} {
			if strings.HasPrefix(line, name+`{job="`+job+`"}`) {
				*v, _ = strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
			}
		}
	}
	if count == 0 {
		return 0, 0
	}
	return time.Duration(sum / count * float64(time.Second)), int(count)
}
