package load_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/relay/wechat/wxsim/load"
)

var tenant = load.Tenant{
	Token:          "AAAAA",
	AppID:          "wxba5fad812f8e6fb9",
	EncodingAESKey: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	ToUserName:     "gh_97417a04a28d",
	FromUserName:   "o9AgO5Kd5ggOC-bXrbNODIiE3bGY",
}

func mustGenerator(t *testing.T) *load.Generator {
	t.Helper()
	g, err := load.NewGenerator(tenant)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func mustPrepare(t *testing.T, n int) *load.Pool {
	t.Helper()
	p, err := load.Prepare(context.Background(), mustGenerator(t), n)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// relay is a push endpoint that opens every push with relay/wechat's
// Receiver, configured like tenant in safe mode, and records the MsgIds.
type relay struct {
	*httptest.Server
	mu     sync.Mutex
	msgIDs map[string]int
	bad    []error
}

func newRelay(t *testing.T) *relay {
	t.Helper()
	c, err := wechat.NewCipher(tenant.EncodingAESKey, tenant.AppID)
	if err != nil {
		t.Fatal(err)
	}
	rcv := &wechat.Receiver{Token: tenant.Token, Mode: wechat.ModeSafe, Cipher: c, OriginalID: tenant.ToUserName}
	r := &relay{msgIDs: map[string]int{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		m, err := rcv.Receive(req.URL.Query(), body)
		if err == nil && (m.MsgType != "text" || m.Format != wechat.FormatJSON || req.Header.Get("Content-Type") != "application/json") {
			err = errors.New("not a JSON text message labelled application/json")
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.bad = append(r.bad, err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.msgIDs[m.MsgID]++
		io.WriteString(w, wechat.Success)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *relay) check(t *testing.T, wantDistinct int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		t.Errorf("%d pushes did not verify, the first: %v", len(r.bad), r.bad[0])
	}
	if len(r.msgIDs) != wantDistinct {
		t.Errorf("relay got %d distinct MsgIds, want %d", len(r.msgIDs), wantDistinct)
	}
	for id, n := range r.msgIDs {
		if n != 1 {
			t.Errorf("MsgId %s pushed %d times", id, n)
		}
	}
}

// checkResult checks what must hold of any run whose pushes all succeed.
func checkResult(t *testing.T, res *load.Result, wantSent int) {
	t.Helper()
	if res.Sent != wantSent || res.OK != wantSent || res.Failed != 0 || res.NotSent != 0 || len(res.Errors) != 0 {
		t.Errorf("sent %d, ok %d, failed %d, not sent %d, errors %v; want %d ok", res.Sent, res.OK, res.Failed, res.NotSent, res.Errors, wantSent)
	}
	l := res.Latency
	if !(0 < l.Min && l.Min <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max && l.Min <= l.Mean && l.Mean <= l.Max) {
		t.Errorf("latency %+v is not ordered", l)
	}
	if res.Rate <= 0 || res.Elapsed <= 0 {
		t.Errorf("rate %g over %v, want both positive", res.Rate, res.Elapsed)
	}
}

func TestGenerator(t *testing.T) {
	if _, err := load.NewGenerator(load.Tenant{Token: "t"}); err == nil || !strings.Contains(err.Error(), "AppID") {
		t.Errorf("NewGenerator without AppID = %v", err)
	}
	bad := tenant
	bad.EncodingAESKey = "short"
	if _, err := load.NewGenerator(bad); !errors.Is(err, wechat.ErrInvalidConfig) {
		t.Errorf("NewGenerator with a short key = %v, want ErrInvalidConfig", err)
	}

	g := mustGenerator(t)
	if g.Base() <= 1<<53 {
		t.Errorf("Base() = %d, want above 2^53", g.Base())
	}
	pool, err := load.Prepare(context.Background(), g, 50)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := wechat.NewCipher(tenant.EncodingAESKey, tenant.AppID)
	rcv := &wechat.Receiver{Token: tenant.Token, Mode: wechat.ModeSafe, Cipher: c, OriginalID: tenant.ToUserName}
	seen := map[int64]bool{}
	for i := range 52 { // two past the prepared ones
		p, err := pool.Next()
		if err != nil {
			t.Fatal(err)
		}
		q, err := url.ParseQuery(p.RawQuery)
		if err != nil {
			t.Fatal(err)
		}
		m, err := rcv.Receive(q, p.Body)
		if err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
		if m.MsgID != strconv.FormatInt(p.MsgID, 10) || seen[p.MsgID] || p.MsgID < g.Base() {
			t.Errorf("push %d: MsgId %s (field %d): want a new one from the base up", i, m.MsgID, p.MsgID)
		}
		seen[p.MsgID] = true
		if q.Get("openid") != tenant.FromUserName || q.Get("encrypt_type") != "aes" || m.FromUserName != tenant.FromUserName {
			t.Errorf("push %d: query %v", i, q)
		}
	}
	if pool.Len() != 50 || pool.Unprepared() != 2 {
		t.Errorf("Len %d, Unprepared %d; want 50, 2", pool.Len(), pool.Unprepared())
	}

	// Repeat cycles through the prepared pushes.
	small := mustPrepare(t, 3)
	rep := small.Repeat()
	var ids []int64
	for range 6 {
		p, _ := rep.Next()
		ids = append(ids, p.MsgID)
	}
	if ids[0] == ids[1] || ids[0] != ids[3] || ids[2] != ids[5] {
		t.Errorf("Repeat gave MsgIds %v, want a cycle of 3", ids)
	}
	if small.Unprepared() != 0 {
		t.Error("Repeat used up the pool")
	}
}

func TestPrepare_Cancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := load.Prepare(ctx, mustGenerator(t), 10); !errors.Is(err, context.Canceled) {
		t.Errorf("Prepare with a cancelled context = %v", err)
	}
}

func TestRun_ClosedLoopCount(t *testing.T) {
	r := newRelay(t)
	res, err := load.Run(context.Background(), load.Target{URL: r.URL + "/wx/t1", Source: mustPrepare(t, 300)},
		load.Options{Concurrency: 8, Count: 300})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, 300)
	r.check(t, 300)
	if res.Loop != "closed" || res.Concurrency != 8 || res.Unprepared != 0 || res.Target != r.URL+"/wx/t1" {
		t.Errorf("result %+v", res)
	}
}

func TestRun_ClosedLoopDuration(t *testing.T) {
	r := newRelay(t)
	pool := mustPrepare(t, 50) // likely too few: the rest are built on the spot
	res, err := load.Run(context.Background(), load.Target{URL: r.URL, Source: pool}, load.Options{Concurrency: 4, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent == 0 {
		t.Fatal("no pushes sent")
	}
	checkResult(t, res, res.Sent)
	r.check(t, res.Sent)
	if res.Elapsed < 200*time.Millisecond {
		t.Errorf("elapsed %v, want at least the duration", res.Elapsed)
	}
	if want := int64(max(res.Sent-50, 0)); res.Unprepared != want {
		t.Errorf("Unprepared = %d, want %d", res.Unprepared, want)
	}
}

func TestRun_OpenLoop(t *testing.T) {
	r := newRelay(t)
	const rate, count = 200.0, 100
	res, err := load.Run(context.Background(), load.Target{URL: r.URL, Source: mustPrepare(t, count)},
		load.Options{Concurrency: 16, Rate: rate, Count: count})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, count)
	r.check(t, count)
	// The last push is scheduled (count-1)/rate after the start, so the run
	// cannot be shorter, nor faster than count over that.
	minElapsed := time.Duration(float64(count-1) / rate * float64(time.Second))
	if res.Elapsed < minElapsed {
		t.Errorf("elapsed %v, want at least %v", res.Elapsed, minElapsed)
	}
	if maxRate := float64(count) / minElapsed.Seconds(); res.Rate > maxRate {
		t.Errorf("rate %.1f, want at most %.1f", res.Rate, maxRate)
	}
	if res.Loop != "open" || res.TargetRate != rate {
		t.Errorf("loop %q at %g", res.Loop, res.TargetRate)
	}
}

func TestRun_OpenLoopNotSent(t *testing.T) {
	// One worker, stuck 300 ms on the first push, while the schedule of
	// ten pushes ends after 100 ms and the drain after 200 ms: the other
	// nine are never sent.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, wechat.Success)
	}))
	defer srv.Close()
	res, err := load.Run(context.Background(), load.Target{URL: srv.URL, Source: mustPrepare(t, 10)},
		load.Options{Concurrency: 1, Rate: 100, Count: 10, Drain: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 1 || res.OK != 1 || res.NotSent != 9 {
		t.Errorf("sent %d, ok %d, not sent %d; want 1, 1, 9", res.Sent, res.OK, res.NotSent)
	}
	// Latency runs from the scheduled time, so it includes the handler's
	// 300 ms.
	if res.Latency.Max < 300*time.Millisecond {
		t.Errorf("max latency %v, want at least 300ms", res.Latency.Max)
	}
}

func TestRun_Errors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Error(w, "store down", http.StatusInternalServerError)
	}))
	defer srv.Close()
	res, err := load.Run(context.Background(), load.Target{URL: srv.URL, Source: mustPrepare(t, 20)}, load.Options{Concurrency: 2, Count: 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 20 || res.OK != 0 || res.Failed != 20 || res.Errors["http_500"] != 20 || res.Rate != 0 {
		t.Errorf("sent %d, ok %d, failed %d, errors %v, rate %g; want 20 http_500", res.Sent, res.OK, res.Failed, res.Errors, res.Rate)
	}
	if got := res.ErrorSamples["http_500"]; got != "answered 500 Internal Server Error" {
		t.Errorf("error sample %q", got)
	}

	// Nobody listening.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	res, err = load.Run(context.Background(), load.Target{URL: "http://" + ln.Addr().String(), Source: mustPrepare(t, 5)}, load.Options{Concurrency: 1, Count: 5})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 5 || len(res.Errors) != 1 || res.Latency.Max == 0 {
		t.Errorf("failed %d, errors %v, latency %+v; want 5 failures of one kind, timed", res.Failed, res.Errors, res.Latency)
	}
}

func TestRun_Options(t *testing.T) {
	src := mustPrepare(t, 1)
	for _, tt := range []struct {
		name string
		t    load.Target
		o    load.Options
		want string
	}{
		{"no stop", load.Target{URL: "http://x", Source: src}, load.Options{}, "duration or a count"},
		{"negative rate", load.Target{URL: "http://x", Source: src}, load.Options{Count: 1, Rate: -1}, "negative rate"},
		{"no URL", load.Target{Source: src}, load.Options{Count: 1}, "URL"},
	} {
		if _, err := load.Run(context.Background(), tt.t, tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Run = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestRun_Cancel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(load.BareHandler))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	var res *load.Result
	var err error
	go func() {
		defer close(done)
		res, err = load.Run(ctx, load.Target{URL: srv.URL, Source: mustPrepare(t, 100).Repeat()}, load.Options{Concurrency: 2, Duration: time.Hour})
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop within 30 s of its context ending")
	}
	if err != nil || res.Failed != 0 {
		t.Errorf("Run = %v, %d failed; want the pushes so far, none cut off", err, res.Failed)
	}
}

func TestCompare(t *testing.T) {
	r := newRelay(t)
	bare, err := load.StartBare()
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	pool := mustPrepare(t, 2000)
	cmp, err := load.Compare(context.Background(),
		load.Target{URL: r.URL, Source: pool}, load.Target{URL: bare.URL, Source: pool.Repeat()},
		load.Options{Concurrency: 4, Duration: 100 * time.Millisecond}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(cmp.Rounds) != 2 || cmp.Relay.Target != r.URL || cmp.Bare.Target != bare.URL {
		t.Fatalf("comparison %+v", cmp)
	}
	checkResult(t, cmp.Relay, cmp.Relay.Sent)
	checkResult(t, cmp.Bare, cmp.Bare.Sent)
	r.check(t, cmp.Relay.Sent)
	if cmp.Ratio <= 0 || cmp.Ratio != cmp.Relay.Rate/cmp.Bare.Rate {
		t.Errorf("ratio %g, rates %g / %g", cmp.Ratio, cmp.Relay.Rate, cmp.Bare.Rate)
	}
	if cmp.Relay.Elapsed < 200*time.Millisecond {
		t.Errorf("relay elapsed %v over 2 rounds of 100ms", cmp.Relay.Elapsed)
	}
	for i, rd := range cmp.Rounds {
		if rd.RelayRate <= 0 || rd.BareRate <= 0 {
			t.Errorf("round %d: %+v", i, rd)
		}
	}

	var text strings.Builder
	cmp.WriteText(&text)
	for _, want := range []string{"round 2  relay ", "relay:\n  target   " + r.URL, "bare:\n  target   " + bare.URL, "relay/bare  "} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	if _, err := load.Compare(context.Background(), load.Target{}, load.Target{}, load.Options{}, 0); err == nil {
		t.Error("Compare with 0 rounds: no error")
	}
}

func TestBareServer(t *testing.T) {
	bare, err := load.StartBare()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(bare.URL+"?signature=x", "application/json", strings.NewReader(`{"Encrypt":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "success" {
		t.Errorf("bare answered %d %q", resp.StatusCode, body)
	}
	if err := bare.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if _, err := http.Post(bare.URL, "application/json", nil); err == nil {
		t.Error("bare still answers after Close")
	}
}

func TestResult_Text(t *testing.T) {
	r := newRelay(t)
	res, err := load.Run(context.Background(), load.Target{URL: r.URL, Source: mustPrepare(t, 10)}, load.Options{Concurrency: 2, Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	res.WriteText(&b)
	for _, want := range []string{"target   " + r.URL + " (closed loop, concurrency 2)\n", "pushes   10 sent, 10 ok, 0 failed in ", "rate     ", "latency  p50 ", " p99 ", " max "} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
}

func TestResult_JSON(t *testing.T) {
	r := newRelay(t)
	res, err := load.Run(context.Background(), load.Target{URL: r.URL, Source: mustPrepare(t, 10)}, load.Options{Concurrency: 2, Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Sent     int                `json:"sent"`
		OK       int                `json:"ok"`
		Rate     float64            `json:"rate"`
		ElapsedS float64            `json:"elapsed_s"`
		Latency  map[string]float64 `json:"latency"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Sent != 10 || got.OK != 10 || got.Rate <= 0 || got.ElapsedS <= 0 {
		t.Errorf("JSON %s", b)
	}
	for _, k := range []string{"min_ms", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"} {
		if got.Latency[k] <= 0 {
			t.Errorf("latency %s = %v in %s", k, got.Latency[k], b)
		}
	}
}

// TestDurableBare: every push answered success is in the file, whole, once
// the handler has answered; concurrent pushes share fsyncs.
func TestDurableBare(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pushes")
	d, err := load.NewDurableBare(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			resp, err := http.Post(srv.URL, "application/json", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "success" {
				t.Errorf("answer %q", b)
			}
		})
	}
	wg.Wait()
	srv.Close()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != 50 {
		t.Errorf("%d pushes in the file, want 50", n)
	}
}
