package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkServeMemory10k measures the resident memory (VmRSS) of a real
// `wxrelay serve` on SQLite as it takes on 10,000 tenants: just started,
// once the tenants are created through the REST API, and once each has
// sent a message, so that the token keeper holds all 10,000 access tokens
// (fetched on demand from wxsim) and the tenant cache has seen them all.
//
//	go test ./cmd/wxrelay -run '^$' -bench ServeMemory10k -benchtime 1x
//
// WXRELAY_BENCH_TENANTS changes the count.
func BenchmarkServeMemory10k(b *testing.B) {
	n := benchEnvInt(b, "WXRELAY_BENCH_TENANTS", 10000)
	const conc = 8
	dir := b.TempDir()
	p := startServe(b, dir)
	admin := adminTokenIn(b, dir)
	time.Sleep(time.Second) // let start-up settle
	empty := rssOf(b, p.cmd.Process.Pid)

	type made struct{ id, key string }
	tenants := make([]made, n)
	parallel(b, n, conc, func(i int) error {
		appid := fmt.Sprintf("wx%016x", i)
		p.sim.AddApp(appid, "be4c45ec2e7be4c45ec2e7be4c45ec2e")
		id, key, err := createPlainTenant(p, admin, appid, "be4c45ec2e7be4c45ec2e7be4c45ec2e", i)
		tenants[i] = made{id, key}
		return err
	})
	withTenants := rssOf(b, p.cmd.Process.Pid)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conc}}
	parallel(b, n, conc, func(i int) error {
		req, _ := http.NewRequest("POST", "http://"+p.http+"/v1/tenants/"+tenants[i].id+"/messages:send",
			strings.NewReader(string(sendBody("o_user"))))
		req.Header.Set("Authorization", "Bearer "+tenants[i].key)
		return expect(client, req, "{}")
	})
	withTokens := rssOf(b, p.cmd.Process.Pid)

	mib := func(v uint64) float64 { return float64(v) / (1 << 20) }
	b.ReportMetric(mib(empty), "empty-RSS-MiB")
	b.ReportMetric(mib(withTenants), "tenants-RSS-MiB")
	b.ReportMetric(mib(withTokens), "tokens-RSS-MiB")
	b.ReportMetric(0, "ns/op")
	b.Logf("wxrelay serve VmRSS: %.1f MiB at start, %.1f MiB with %d tenants, %.1f MiB once each has sent (token held): %d B per tenant",
		mib(empty), mib(withTenants), n, mib(withTokens), int64(withTokens-empty)/int64(n))
}

// parallel runs f(0..n-1) on conc goroutines; the first error fails b.
func parallel(b *testing.B, n, conc int, f func(i int) error) {
	b.Helper()
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}

// rssOf is process pid's resident set size, from /proc/PID/status.
func rssOf(b *testing.B, pid int) uint64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatalf("resident memory: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("VmRSS line %q: %v", sc.Text(), err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmRSS in /proc status")
	return 0
}

// createPlainTenant creates plaintext tenant i with appid and secret on p, and
// returns its id and API key. Not p.api: benchmarks call it off their own
// goroutine, where b.Fatal must not be called.
func createPlainTenant(p *process, admin, appid, secret string, i int) (id, apiKey string, err error) {
	var created struct {
		Tenant struct{ ID string } `json:"tenant"`
		APIKey string              `json:"api_key"`
	}
	body := `{"appid":"` + appid + `","app_secret":"` + secret + `","token":"PushToken1","encrypt_mode":"ENCRYPT_MODE_PLAINTEXT",
		"data_format":"DATA_FORMAT_JSON","webhook_url":"https://hooks.example.com/t` + strconv.Itoa(i) + `"}`
	req, _ := http.NewRequest("POST", "http://"+p.http+"/v1/tenants", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || resp.StatusCode != 200 {
		return "", "", fmt.Errorf("create tenant %d: %d %v", i, resp.StatusCode, err)
	}
	return created.Tenant.ID, created.APIKey, nil
}
