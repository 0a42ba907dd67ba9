package main

import (
	"bufio"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkScale measures a real `wxrelay serve` on SQLite holding many
// tenants (WXRELAY_BENCH_TENANTS, default 100,000), onboarded through the
// REST API: its resident memory, how long it takes to start again, how
// long a tenant-health tick takes (wxrelay_job_duration_seconds), and the
// p99 of paging through every tenant 100 at a time.
//
//	go test ./cmd/wxrelay -run '^$' -bench Scale -benchtime 1x -timeout 30m
func BenchmarkScale(b *testing.B) {
	n := benchEnvInt(b, "WXRELAY_BENCH_TENANTS", 100_000)
	const conc = 8
	dir := b.TempDir()
	env := []string{"WXRELAY_HEALTH_INTERVAL=5s", "WXRELAY_LOG_LEVEL=warn"}
	p := startServe(b, dir, env...)
	admin := adminTokenIn(b, dir)
	start := time.Now()
	parallel(b, n, conc, func(i int) error {
		_, _, err := createPlainTenant(p, admin, fmt.Sprintf("wx%016x", i), "s", i)
		return err
	})
	onboard := time.Since(start)
	p.stop(b, syscall.SIGTERM)

	// Start again on the same database: how long until ready.
	start = time.Now()
	p = startServe(b, dir, env...)
	startup := time.Since(start)
	// Wait for two health ticks: at 100,000 tenants one takes seconds.
	var tick time.Duration
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(time.Second) {
		var runs int
		if tick, runs = jobMean(b, p, "tenant-health"); runs >= 2 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("fewer than two tenant-health runs in 5 minutes")
		}
	}
	rss := rssOf(b, p.cmd.Process.Pid)

	// Page through every tenant.
	var pages []time.Duration
	token := ""
	for {
		t0 := time.Now()
		var out struct {
			Tenants []struct{ ID string } `json:"tenants"`
			Next    string                `json:"next_page_token"`
		}
		if code := p.api(b, "GET", "/v1/tenants?page_size=100&page_token="+token, admin, "", &out); code != 200 {
			b.Fatalf("list tenants: %d", code)
		}
		pages = append(pages, time.Since(t0))
		if token = out.Next; token == "" {
			break
		}
	}
	slices.Sort(pages)
	p99 := pages[len(pages)*99/100]

	mib := float64(rss) / (1 << 20)
	b.ReportMetric(mib, "RSS-MiB")
	b.ReportMetric(startup.Seconds(), "startup-s")
	b.ReportMetric(tick.Seconds()*1000, "health-tick-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "list-page-p99-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d tenants (onboarded in %v): RSS %.1f MiB after restart, start-up %v, tenant-health tick %v, %d list pages p99 %v",
		n, onboard.Round(time.Second), mib, startup.Round(time.Millisecond), tick.Round(time.Millisecond), len(pages), p99)
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
