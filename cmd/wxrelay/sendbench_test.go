package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
)

// BenchmarkSend measures what the relay adds to a customer-service send.
// In one run it starts a real `wxrelay serve` (SQLite, the REST gateway and
// every interceptor, the token keeper) calling wxsim, a process of its own,
// over loopback HTTP, onboards a tenant, and then takes turns at rounds of
// the same text sends made three ways at the same concurrency:
//
//   - relay: POST /v1/tenants/{id}/messages:send with the tenant's api_key;
//   - compat: POST /wxapi/cgi-bin/message/custom/send with a relay token
//     from /wxapi/cgi-bin/token, as a WeChat SDK pointed at the relay
//     sends (the compatible API's rate limit off);
//   - proxy: POST /cgi-bin/message/custom/send to `wxsim proxy`, a minimal
//     token-injecting reverse proxy (net/http and httputil.ReverseProxy,
//     one fixed token added to the query, kept-alive connections to
//     wxsim) in a process of its own: what a mini-program's owner would
//     run instead of the relay. Both make two HTTP exchanges per send on
//     the same cores, so their ratio measures the relay's own work (an
//     earlier baseline, sending straight to wxsim, made one exchange and
//     capped the ratio near 0.5 before the relay did anything).
//
// It reports the p50 and p99 latency of each, the latency the relay adds
// (relay or compat minus proxy; the compat- metrics) at both, the
// throughput of each, their ratio, and the
// CPU time (user+sys, from /proc) each process spent per send in the
// closed-loop rounds. Every user the sends go to has pushed a message
// first, and gets at most the 5 answers that allows, so the relay's
// reply-window check passes as in real use. Run it once, not as a timed
// loop:
//
//	go test ./cmd/wxrelay -run '^$' -bench Send -benchtime 1x
//
// Those closed-loop rounds saturate the two cores that client, relay (or
// proxy) and wxsim share, so their latency is mostly queueing for a core.
// The latency a send gains by going through the relay is measured apart,
// in an open loop at a fixed rate that leaves the cores room (1,000
// sends/s, as the push benchmark's fixed rate): rounds of each way,
// alternating, every send started on schedule whatever the answers do, its
// latency counted from its scheduled time so that queueing still shows.
//
// WXRELAY_BENCH_SEND_CONCURRENCY (default 8), WXRELAY_BENCH_SEND_ROUNDS
// (default 5 of each) and WXRELAY_BENCH_SEND_PER_ROUND (default 2000)
// change the closed loop, WXRELAY_BENCH_SEND_RATE (default 1000 sends/s)
// and WXRELAY_BENCH_SEND_RATE_ROUNDS (default 3 of each, 3 s each) the open
// one. Set WXRELAY_DEBUG_ADDR to profile the relay meanwhile.
//
// So that a stall of sends can be told apart, it also reports the relay's
// write turns logged as held over 100 ms (store.DB.serialize), the sends
// over 50 ms, and the CPU steal and iowait of the whole machine meanwhile.
func BenchmarkSend(b *testing.B) {
	conc := benchEnvInt(b, "WXRELAY_BENCH_SEND_CONCURRENCY", 8)
	rounds := benchEnvInt(b, "WXRELAY_BENCH_SEND_ROUNDS", 5)
	perRound := benchEnvInt(b, "WXRELAY_BENCH_SEND_PER_ROUND", 2000)
	rate := benchEnvInt(b, "WXRELAY_BENCH_SEND_RATE", 1000)
	rateRounds := benchEnvInt(b, "WXRELAY_BENCH_SEND_RATE_ROUNDS", 3)
	const rateRound = 3 * time.Second
	perRateRound := int(float64(rate) * rateRound.Seconds())

	// The users' pushes become events for the tenant's webhook, a local
	// receiver; their first delivery is an hour out, so that delivery does
	// not share the measured minutes.
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	b.Cleanup(hook.Close)
	dir := b.TempDir()
	const appid, secret = "wx0123456789abcdef", "be4c45ec2e7be4c45ec2e7be4c45ec2e"
	// wxsim runs as a process of its own, as WeChat is another host: with
	// the simulator inside this benchmark process, direct sends never left
	// it, while every relay send crossed between processes four times, and
	// the comparison measured the two processes' scheduling on the shared
	// cores more than the relay (docs/benchmarks.md, "Sending").
	wxsimBin := buildWxsim(b, dir)
	simURL := "http://" + startWxsim(b, wxsimBin, "serve", "--addr", "127.0.0.1:0", "--app", appid+":"+secret)
	// The compatible API's per-tenant rate limit is off: the benchmark is
	// one tenant sending as fast as it can.
	p := startServe(b, dir, "WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true", "WXRELAY_RETRY_SCHEDULE=1h", "WXRELAY_WECHAT_API="+simURL, "WXRELAY_WXAPI_RATE=0")
	admin := adminTokenIn(b, dir)
	var created struct {
		Tenant struct{ ID string } `json:"tenant"`
		APIKey string              `json:"api_key"`
	}
	body := `{"appid":"` + appid + `","app_secret":"` + secret + `","token":"PushToken1","encrypt_mode":"ENCRYPT_MODE_PLAINTEXT",
		"data_format":"DATA_FORMAT_JSON","webhook_url":"` + hook.URL + `/events"}`
	if code := p.api(b, "POST", "/v1/tenants", admin, body, &created); code != 200 {
		b.Fatalf("create tenant: %d", code)
	}

	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 2 * conc, MaxConnsPerHost: 2 * conc},
	}
	relayURL := "http://" + p.http + "/v1/tenants/" + created.Tenant.ID + "/messages:send"
	// Each send answers a user who has written first, as in real use: a
	// user's message opens WeChat's reply window for 5 sends (protocol
	// §7), which the relay checks and counts on every send. So every
	// user the relay sends to has pushed one message, and gets at most 5
	// answers; the direct sends go to the same users in the same order.
	// The REST and compatible sends both count against the users' windows.
	relaySends := 1 + 2*(conc*20+rounds*perRound+rateRounds*perRateRound)
	users := (relaySends + repliesPerUser - 1) / repliesPerUser
	parallel(b, users, conc, func(i int) error { return pushUser(p, created.Tenant.ID, benchUser(i), int64(i)) })

	var relaySeq, proxySeq atomic.Int64
	next := func(seq *atomic.Int64) string { return benchUser(int(seq.Add(1)-1) / repliesPerUser) }
	relay := func() error {
		req, _ := http.NewRequest("POST", relayURL, bytes.NewReader(sendBody(next(&relaySeq))))
		req.Header.Set("Authorization", "Bearer "+created.APIKey)
		req.Header.Set("Content-Type", "application/json")
		return expect(client, req, "{}")
	}
	// The first relay send fetches the tenant's stable token; the direct
	// sends then use the very same token, as WeChat's normal mode hands
	// every caller the current one.
	if err := relay(); err != nil {
		b.Fatalf("first send through the relay: %v\n%s", err, p.stderr)
	}
	tok := stableToken(b, client, simURL, appid, secret)
	proxyAddr := startWxsim(b, wxsimBin, "proxy", "--addr", "127.0.0.1:0", "--upstream", simURL, "--token", tok)
	proxyURL := "http://" + proxyAddr + "/cgi-bin/message/custom/send"
	proxied := func() error {
		req, _ := http.NewRequest("POST", proxyURL, bytes.NewReader(sendBody(next(&proxySeq))))
		req.Header.Set("Content-Type", "application/json")
		return expect(client, req, `{"errcode":0,"errmsg":"ok"}`)
	}
	// The compatible API, as an SDK calls it: a relay token from
	// /wxapi/cgi-bin/token, then WeChat's own send path under /wxapi.
	var relayTok struct {
		AccessToken string `json:"access_token"`
	}
	if err := getJSON(client, "http://"+p.http+"/wxapi/cgi-bin/token?grant_type=client_credential&appid="+appid+"&secret="+created.APIKey, &relayTok); err != nil || relayTok.AccessToken == "" {
		b.Fatalf("relay token from the compatible API: %v", err)
	}
	compatURL := "http://" + p.http + "/wxapi/cgi-bin/message/custom/send?access_token=" + relayTok.AccessToken
	compat := func() error {
		req, _ := http.NewRequest("POST", compatURL, bytes.NewReader(sendBody(next(&relaySeq))))
		req.Header.Set("Content-Type", "application/json")
		return expect(client, req, `{"errcode":0,"errmsg":"ok"}`)
	}
	legs := []*sendLeg{
		{name: "relay", send: relay, pid: p.cmd.Process.Pid},
		{name: "compat", send: compat, pid: p.cmd.Process.Pid},
		{name: "proxy", send: proxied, pid: wxsimPIDs[proxyAddr]},
	}
	rl, cl, dl := legs[0], legs[1], legs[2]

	// Warm every path's connections and code, then take turns, each
	// round starting with the next leg, so that none always follows
	// another.
	for _, l := range legs {
		runRound(b, l.name, l.send, conc, conc*20)
	}
	steal0, iowait0 := machineTicks(b)
	b.ResetTimer()
	for i := range rounds {
		for j := range legs {
			l := legs[(i+j)%len(legs)]
			cpu0 := cpuTime(b, l.pid)
			lat, took := runRound(b, l.name, l.send, conc, perRound)
			l.closed, l.took, l.cpu = append(l.closed, lat...), l.took+took, l.cpu+cpuTime(b, l.pid)-cpu0
		}
	}
	// The open loop, taking turns likewise.
	for i := range rateRounds {
		for j := range legs {
			l := legs[(i+j)%len(legs)]
			l.open = append(l.open, runRate(b, l.send, rate, perRateRound)...)
		}
	}
	b.StopTimer()
	steal1, iowait1 := machineTicks(b)

	for _, l := range legs {
		slices.Sort(l.closed)
		slices.Sort(l.open)
	}
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	for _, l := range legs {
		b.ReportMetric(ms(pct(l.closed, 50)), l.name+"-p50-ms")
		b.ReportMetric(ms(pct(l.closed, 99)), l.name+"-p99-ms")
		b.ReportMetric(l.rate(), l.name+"-sends/s")
		b.ReportMetric(l.cpuPerSend(), l.name+"-cpu-us/send")
	}
	for _, l := range []*sendLeg{rl, cl} {
		prefix := ""
		if l == cl {
			prefix = "compat-"
		}
		b.ReportMetric(ms(pct(l.closed, 50)-pct(dl.closed, 50)), prefix+"added-p50-ms")
		b.ReportMetric(ms(pct(l.closed, 99)-pct(dl.closed, 99)), prefix+"added-p99-ms")
		b.ReportMetric(l.rate()/dl.rate(), prefix+"ratio")
		b.ReportMetric(ms(pct(l.open, 50)-pct(dl.open, 50)), prefix+"added-p50-ms@rate")
		b.ReportMetric(ms(pct(l.open, 99)-pct(dl.open, 99)), prefix+"added-p99-ms@rate")
	}
	b.ReportMetric(0, "ns/op")
	// A stall of sends (a p99 far above p50) is explained, or not, by the
	// write turns the relay logged as held long over the whole run: each
	// one held every send's reply-window reservation waiting.
	turns, longest, by := slowWriteTurns(p.stderr.Bytes())
	b.ReportMetric(float64(turns), "slow-write-turns")
	b.ReportMetric(float64(longest), "longest-write-turn-ms")
	b.ReportMetric(float64(slowSends(rl.closed, 50*time.Millisecond)+slowSends(rl.open, 50*time.Millisecond)+
		slowSends(cl.closed, 50*time.Millisecond)+slowSends(cl.open, 50*time.Millisecond)), "relay-sends-over-50ms")
	// And the machine's part: time the hypervisor gave these cores to
	// another guest (steal), and time they idled waiting for the disk.
	b.ReportMetric(float64(steal1-steal0)*10, "machine-steal-ms")
	b.ReportMetric(float64(iowait1-iowait0)*10, "machine-iowait-ms")
	if turns > 0 {
		b.Logf("slow write turns: %d, the longest %d ms, held by %s", turns, longest, by)
	}
	b.Logf("concurrency %d, %d rounds of %d sends each way, taking turns", conc, rounds, perRound)
	for _, l := range legs {
		b.Logf("%-6s p50 %.3f ms  p99 %.3f ms  %.0f sends/s  %.0f µs CPU/send", l.name+":", ms(pct(l.closed, 50)), ms(pct(l.closed, 99)), l.rate(), l.cpuPerSend())
	}
	for _, l := range []*sendLeg{rl, cl} {
		b.Logf("%s against proxy: added p50 %.3f ms  p99 %.3f ms; throughput ratio %.3f (target >= 0.6)",
			l.name, ms(pct(l.closed, 50)-pct(dl.closed, 50)), ms(pct(l.closed, 99)-pct(dl.closed, 99)), l.rate()/dl.rate())
	}
	b.Logf("open loop at %d sends/s, %d rounds of %v each way, taking turns", rate, rateRounds, rateRound)
	for _, l := range legs {
		b.Logf("%-6s p50 %.3f ms  p99 %.3f ms", l.name+":", ms(pct(l.open, 50)), ms(pct(l.open, 99)))
	}
	for _, l := range []*sendLeg{rl, cl} {
		b.Logf("%s against proxy: added p50 %.3f ms  p99 %.3f ms (target p50 <= 0.5 ms)", l.name, ms(pct(l.open, 50)-pct(dl.open, 50)), ms(pct(l.open, 99)-pct(dl.open, 99)))
	}
	if want := 3 * (rounds*perRound + rateRounds*perRateRound); sentTo(b, simURL, "/cgi-bin/message/custom/send") < want {
		b.Errorf("wxsim received fewer than the %d sends made", want)
	}
}

// runRound makes n sends with conc workers and returns each send's latency
// and the round's wall time. Any failed send fails the benchmark: a fast
// error is not a send.
func runRound(b *testing.B, name string, send func() error, conc, n int) ([]time.Duration, time.Duration) {
	b.Helper()
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || failed.Load() != nil {
					return
				}
				t0 := time.Now()
				if err := send(); err != nil {
					err = fmt.Errorf("%s send %d: %w", name, i, err)
					failed.CompareAndSwap(nil, &err)
					return
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	return lat, took
}

// runRate makes n sends at rate per second, each started at its scheduled
// time (a goroutine per send, so a slow answer never delays the next), and
// returns each send's latency from its scheduled time. Any failed send
// fails the benchmark.
func runRate(b *testing.B, send func() error, rate, n int) []time.Duration {
	b.Helper()
	lat := make([]time.Duration, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
		time.Sleep(time.Until(at))
		wg.Go(func() {
			if err := send(); err != nil {
				errs <- fmt.Errorf("send %d at a fixed rate: %w", i, err)
				return
			}
			lat[i] = time.Since(at)
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return lat
}

// repliesPerUser is how many sends one message from a user allows
// within 48 hours (protocol §7).
const repliesPerUser = 5

func benchUser(i int) string { return "o_bench_" + strconv.Itoa(i) }

// pushUser pushes a text message from openid to tenant tid's push URL, as
// WeChat would, and checks it was stored ("success").
func pushUser(p *process, tid, openid string, n int64) error {
	pusher := &wechat.Pusher{Token: "PushToken1", Mode: wechat.ModePlaintext}
	msg := wechat.TextMessage(wechat.FormatJSON, wechat.Header{ToUserName: "gh_bench", FromUserName: openid, CreateTime: time.Now().Unix()}, "where is my order?", 1e18+n)
	req, err := pusher.Push(msg, time.Now().Unix(), strconv.FormatInt(n, 10))
	if err != nil {
		return err
	}
	resp, err := http.Post("http://"+p.http+"/wx/"+tid+"?"+req.RawQuery(), req.ContentType, bytes.NewReader(req.Body))
	if err != nil {
		return err
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != "success" {
		return fmt.Errorf("push from %s: %d %s", openid, resp.StatusCode, got)
	}
	return nil
}

func sendBody(openid string) []byte {
	return []byte(`{"touser":"` + openid + `","msgtype":"text","text":{"content":"Thanks, your order ships today."}}`)
}

// expect does req and checks the answer is 200 with exactly want.
func expect(c *http.Client, req *http.Request, want string) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || string(bytes.TrimSpace(got)) != want {
		return fmt.Errorf("answer %d %s, want 200 %s", resp.StatusCode, got, want)
	}
	return nil
}

// stableToken fetches appid's current stable token from wxsim.
func stableToken(b *testing.B, c *http.Client, simURL, appid, secret string) string {
	b.Helper()
	body := `{"grant_type":"client_credential","appid":"` + appid + `","secret":"` + secret + `"}`
	req, _ := http.NewRequestWithContext(context.Background(), "POST", simURL+"/cgi-bin/stable_token", bytes.NewReader([]byte(body)))
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var a struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || a.AccessToken == "" {
		b.Fatalf("stable_token: %v %+v", err, a)
	}
	return a.AccessToken
}

func sentTo(b *testing.B, simURL, path string) int {
	resp, err := http.Get(simURL + "/wxsim/calls?path=" + url.QueryEscape(path))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct{ Calls []wxsim.Call }
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, c := range answer.Calls {
		if c.Errcode == 0 {
			n++
		}
	}
	return n
}

// buildWxsim builds the wxsim binary into dir.
func buildWxsim(b *testing.B, dir string) string {
	b.Helper()
	bin := filepath.Join(dir, "wxsim")
	if out, err := exec.Command("go", "build", "-o", bin, "../wxsim").CombinedOutput(); err != nil {
		b.Fatalf("build wxsim: %v\n%s", err, out)
	}
	return bin
}

// wxsimPIDs are the started wxsim processes by address, for cpuTime.
var wxsimPIDs = map[string]int{}

// startWxsim starts bin with args (a command listening on 127.0.0.1:0)
// and returns the address its start-up line reports.
func startWxsim(b *testing.B, bin string, args ...string) string {
	b.Helper()
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// The start-up line names the address: ... addr=127.0.0.1:PORT ...
	lines := bufio.NewScanner(stderr)
	for lines.Scan() {
		if _, rest, ok := strings.Cut(lines.Text(), " addr="); ok {
			addr, _, _ := strings.Cut(rest, " ")
			go io.Copy(io.Discard, stderr)
			wxsimPIDs[addr] = cmd.Process.Pid
			return addr
		}
	}
	b.Fatalf("wxsim %s did not report its address: %v", args[0], lines.Err())
	return ""
}

// cpuTime is the user+sys CPU time process pid has used, from
// /proc/PID/stat (in clock ticks of 10 ms).
func cpuTime(b *testing.B, pid int) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Skipf("no /proc to read CPU time from: %v", err)
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after its closing parenthesis. utime and stime are fields 14
	// and 15 of the line, 12 and 13 after it.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(utime+stime) * tick
}

// pct is the p-th percentile of sorted.
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

func benchEnvInt(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// slowWriteTurns counts the relay's "write turn held long" log lines
// (store.DB.serialize) in log and returns the longest and what held it.
func slowWriteTurns(log []byte) (n int, longestMS int64, by string) {
	for _, line := range bytes.Split(log, []byte("\n")) {
		if !bytes.Contains(line, []byte("write turn held long")) {
			continue
		}
		var rec struct {
			HeldMS int64  `json:"held_ms"`
			By     string `json:"by"`
		}
		if json.Unmarshal(line, &rec) != nil {
			continue
		}
		n++
		if rec.HeldMS > longestMS {
			longestMS, by = rec.HeldMS, rec.By
		}
	}
	return n, longestMS, by
}

// slowSends counts the latencies in lat over limit.
func slowSends(lat []time.Duration, limit time.Duration) int {
	n := 0
	for _, d := range lat {
		if d > limit {
			n++
		}
	}
	return n
}

// machineTicks reads the steal and iowait clock ticks (10 ms each) of all
// CPUs from /proc/stat's first line: cpu user nice system idle iowait irq
// softirq steal ...
func machineTicks(b *testing.B) (steal, iowait int64) {
	b.Helper()
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Skipf("no /proc/stat: %v", err)
	}
	line, _, _ := bytes.Cut(raw, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 {
		b.Fatalf("/proc/stat: unexpected first line %q", line)
	}
	iowait, _ = strconv.ParseInt(f[5], 10, 64)
	steal, _ = strconv.ParseInt(f[8], 10, 64)
	return steal, iowait
}

// sendLeg is one way of sending in BenchmarkSend, with what its rounds
// measured.
type sendLeg struct {
	name string
	send func() error
	pid  int // the process whose CPU time is its own

	closed, open []time.Duration
	took, cpu    time.Duration
}

func (l *sendLeg) rate() float64 { return float64(len(l.closed)) / l.took.Seconds() }

func (l *sendLeg) cpuPerSend() float64 { return float64(l.cpu) / 1e3 / float64(len(l.closed)) }

// getJSON GETs url and decodes its JSON answer into out.
func getJSON(c *http.Client, url string, out any) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}
