package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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

	"github.com/wxrelay/wxrelay/relay/wechat/wxsim/load"
	"github.com/wxrelay/wxrelay/store/storetest"
)

// BenchmarkReplicas measures wxrelay processes end to end on SQLite, on
// PostgreSQL with one replica, and on PostgreSQL with two replicas taking
// half the pushes each, one after the other in one run, so that the three
// can be compared (docs/bench/replicas.sh starts a PostgreSQL for it):
//
//   - latency: distinct safe-mode JSON pushes at a fixed rate (default 200
//     pushes/s, WXRELAY_BENCH_RATE) for WXRELAY_BENCH_SECONDS (default 10),
//     open loop; the answer latency, and push → webhook: from handing each
//     push to a sender to its first arrival at a loopback webhook.
//   - throughput: a closed loop at concurrency 64 (split between the
//     replicas) for as long, with delivery running as in production: the
//     pushes answered per second, and the events delivered per second from
//     the loop's start to the last one's arrival.
//
// Every answer is durable on both engines: SQLite commits with
// synchronous=FULL, PostgreSQL with its defaults (fsync, synchronous_commit
// on). The PostgreSQL cases skip without WXRELAY_TEST_POSTGRES. Run with
// -benchtime 1x: each case measures once, whatever b.N.
func BenchmarkReplicas(b *testing.B) {
	rate := benchEnvInt(b, "WXRELAY_BENCH_RATE", 200)
	secs := benchEnvInt(b, "WXRELAY_BENCH_SECONDS", 10)
	for _, c := range []struct {
		name     string
		pg       bool
		replicas int
	}{{"sqlite", false, 1}, {"pg-1", true, 1}, {"pg-2", true, 2}} {
		b.Run(c.name, func(b *testing.B) {
			env := []string{"WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true", "WXRELAY_LOG_LEVEL=warn"}
			if c.pg {
				key := make([]byte, 32)
				rand.Read(key)
				env = append(env, "WXRELAY_DB="+storetest.PostgresDSN(b), "WXRELAY_SECRET_KEY="+base64.StdEncoding.EncodeToString(key))
			} else {
				env = append(env, "WXRELAY_DB="+filepath.Join(b.TempDir(), "wxrelay.db"))
			}
			sink := &arrivals{}
			hook := httptest.NewServer(sink)
			defer hook.Close()
			ps := startReplicas(b, c.replicas, env...)
			tenant := benchTenant(b, ps[0], env, hook.URL)

			// Latency at a fixed rate.
			sent := &sync.Map{}
			open := runSplit(b, ps, tenant, sent, load.Options{Rate: float64(rate) / float64(len(ps)), Duration: time.Duration(secs) * time.Second, Concurrency: 64 / len(ps)}, rate*secs/len(ps)+100)
			if open.Failed+open.NotSent > 0 {
				b.Fatalf("open loop: %d pushes failed, %d not sent: %v", open.Failed, open.NotSent, open.ErrorSamples)
			}
			sink.wait(b, open.OK, 60*time.Second)
			e2e := sink.latencies(sent)
			if len(e2e) != open.OK {
				b.Fatalf("%d of %d pushes answered reached the webhook", len(e2e), open.OK)
			}

			// Throughput, closed loop, deliveries running.
			start := time.Now()
			closed := runSplit(b, ps, tenant, nil, load.Options{Duration: time.Duration(secs) * time.Second, Concurrency: 64 / len(ps)}, 12000*secs/len(ps))
			if closed.Failed > 0 {
				b.Fatalf("closed loop: %d pushes failed: %v", closed.Failed, closed.ErrorSamples)
			}
			last := sink.wait(b, open.OK+closed.OK, 5*time.Minute)

			q := func(p float64) float64 { return float64(e2e[int(p*float64(len(e2e)-1))].Microseconds()) / 1000 }
			b.ReportMetric(open.Latency.P50.Seconds()*1000, "answer_p50_ms")
			b.ReportMetric(open.Latency.P99.Seconds()*1000, "answer_p99_ms")
			b.ReportMetric(q(0.5), "e2e_p50_ms")
			b.ReportMetric(q(0.99), "e2e_p99_ms")
			b.ReportMetric(q(1), "e2e_max_ms")
			b.ReportMetric(closed.Rate, "pushes/s")
			b.ReportMetric(float64(closed.OK)/last.Sub(start).Seconds(), "delivered/s")
			for i, p := range ps {
				// The relays log at warn: anything they said is news.
				if lines := strings.Split(strings.TrimSpace(p.log.String()), "\n"); lines[0] != "" {
					b.Logf("replica %d logged %d lines, the first: %s", i, len(lines), lines[0])
				}
			}
			if closed.Unprepared > 0 {
				b.Logf("%d pushes of the closed loop were encrypted during it", closed.Unprepared)
			}
		})
	}
}

// benchTenant onboards a safe-mode JSON tenant through p and returns it
// for the load generator, its push path in URL.
type benchTenantInfo struct {
	load.Tenant
	path string // /wx/{id}
}

func benchTenant(b *testing.B, p replica, env []string, webhook string) benchTenantInfo {
	b.Helper()
	tok := exec.Command(binary, "admin-token")
	tok.Env = append(os.Environ(), env...)
	out, err := tok.Output()
	if err != nil {
		b.Fatalf("admin-token: %v", err)
	}
	t := load.Tenant{Token: "BenchToken1", AppID: "wx0123456789abcdef", EncodingAESKey: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
		ToUserName: "gh_bench", FromUserName: "o_bench"}
	body := fmt.Sprintf(`{"appid":%q,"app_secret":"5ec2e75ec2e75ec2e75ec2e75ec2e75e","token":%q,"encoding_aes_key":%q,"encrypt_mode":"ENCRYPT_MODE_SAFE","data_format":"DATA_FORMAT_JSON","webhook_url":%q}`,
		t.AppID, t.Token, t.EncodingAESKey, webhook)
	req, _ := http.NewRequest("POST", "http://"+p.http+"/v1/tenants", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(out)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var created struct {
		Tenant struct{ ID string } `json:"tenant"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &created); err != nil || resp.StatusCode != 200 {
		b.Fatalf("create tenant: %d %s", resp.StatusCode, raw)
	}
	return benchTenantInfo{Tenant: t, path: "/wx/" + created.Tenant.ID}
}

// runSplit runs one load per replica at once, each with o and its own
// prepared pushes, and merges their results. If sent is not nil, it
// records when each push (by MsgId) was handed to a sender.
func runSplit(b *testing.B, ps []replica, t benchTenantInfo, sent *sync.Map, o load.Options, prepare int) *load.Result {
	b.Helper()
	srcs := make([]load.Source, len(ps))
	for i := range ps {
		g, err := load.NewGenerator(t.Tenant)
		if err != nil {
			b.Fatal(err)
		}
		pool, err := load.Prepare(context.Background(), g, prepare)
		if err != nil {
			b.Fatal(err)
		}
		srcs[i] = pool
		if sent != nil {
			srcs[i] = stamped{pool, sent}
		}
	}
	results := make([]*load.Result, len(ps))
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() {
			results[i], errs[i] = load.Run(context.Background(), load.Target{URL: "http://" + p.http + t.path, Source: srcs[i]}, o)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	m := load.Merge(results...)
	// Merge adds up the elapsed times of rounds run one after another;
	// these ran side by side.
	m.Rate = 0
	for _, r := range results {
		m.Rate += r.Rate
	}
	return m
}

// stamped is a load.Source that notes when each push leaves it.
type stamped struct {
	src  load.Source
	sent *sync.Map // MsgId → time.Time
}

func (s stamped) Next() (load.Push, error) {
	p, err := s.src.Next()
	if err == nil {
		s.sent.Store(p.MsgID, time.Now())
	}
	return p, err
}

// arrivals is the webhook: it notes when each event (by MsgId) first
// arrives, without checking signatures (the tests do that).
type arrivals struct {
	at    sync.Map // MsgId → time.Time
	count atomic.Int64
	last  atomic.Int64 // UnixNano of the latest first arrival
}

var msgIDField = []byte(`"MsgId":`)

func (a *arrivals) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	body, _ := io.ReadAll(r.Body)
	if i := bytes.Index(body, msgIDField); i >= 0 {
		rest := bytes.TrimLeft(body[i+len(msgIDField):], ` "`)
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if id, err := strconv.ParseInt(string(rest[:j]), 10, 64); err == nil {
			if _, dup := a.at.LoadOrStore(id, now); !dup {
				a.count.Add(1)
				a.last.Store(now.UnixNano())
			}
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// wait returns once n distinct events have arrived, with the time the
// last of them did.
func (a *arrivals) wait(b *testing.B, n int, limit time.Duration) time.Time {
	b.Helper()
	deadline := time.Now().Add(limit)
	for a.count.Load() < int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d events reached the webhook within %s", a.count.Load(), n, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Unix(0, a.last.Load())
}

// latencies returns, sorted, the time from sending to first arrival of
// every push in sent that arrived.
func (a *arrivals) latencies(sent *sync.Map) []time.Duration {
	var out []time.Duration
	sent.Range(func(k, v any) bool {
		if at, ok := a.at.Load(k); ok {
			out = append(out, at.(time.Time).Sub(v.(time.Time)))
		}
		return true
	})
	slices.Sort(out)
	return out
}
