package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
	"github.com/wxrelay/wxrelay/relay/wechat/wxsim/load"
	"github.com/wxrelay/wxrelay/store/storetest"
)

// BenchmarkComponentScale measures real `wxrelay serve` processes serving
// one third-party platform with many authorizers: tenants created through
// the REST API, each then authorized by its merchant on wxsim's consent
// page (pre-auth code from the relay's consent link, WeChat's authorized
// event to the authorization-event URL), and users' pushes to the
// component's message URL spread over every authorizer. It reports how
// long the relay took to keep every authorization after the last consent
// (authorize-s), the tenant-health tick (which reads the authorizations),
// the push p99 at WXRELAY_BENCH_RATE (default 1,000/s) through the message
// URL, and the replicas' resident memory. Two cases, as BenchmarkScale:
// sqlite, one relay; pg-2, two replicas on one PostgreSQL (skipped without
// WXRELAY_TEST_POSTGRES). WXRELAY_BENCH_AUTHORIZERS (default 10,000) sets
// the size. The refresh of the authorizers' tokens over hours is
// BenchmarkAuthorizers10k's, in relay/component.
//
//	go test ./cmd/wxrelay -run '^$' -bench ComponentScale -benchtime 1x -timeout 40m
func BenchmarkComponentScale(b *testing.B) {
	rate := benchEnvInt(b, "WXRELAY_BENCH_RATE", 1000)
	n := benchEnvInt(b, "WXRELAY_BENCH_AUTHORIZERS", 10_000)
	for _, c := range []struct {
		name     string
		pg       bool
		replicas int
	}{{"sqlite", false, 1}, {"pg-2", true, 2}} {
		b.Run(c.name, func(b *testing.B) {
			key := make([]byte, 32)
			rand.Read(key)
			sim := wxsim.New(wxsim.Options{})
			b.Cleanup(sim.Close)
			wx := httptest.NewServer(sim)
			b.Cleanup(wx.Close)
			env := []string{"WXRELAY_HEALTH_INTERVAL=5s", "WXRELAY_LOG_LEVEL=warn", "WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true",
				"WXRELAY_SECRET_KEY=" + base64.StdEncoding.EncodeToString(key), "WXRELAY_WECHAT_API=" + wx.URL}
			if c.pg {
				env = append(env, "WXRELAY_DB="+storetest.PostgresDSN(b))
			} else {
				env = append(env, "WXRELAY_DB="+filepath.Join(b.TempDir(), "wxrelay.db"))
			}
			componentScaleCase(b, sim, env, c.replicas, n, rate)
		})
	}
}

func componentScaleCase(b *testing.B, sim *wxsim.Server, env []string, replicas, n, rate int) {
	const compAppID = "wx134c8103faa5a59e"
	compKey := strings.Repeat("A", 43)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer hook.Close()
	ps := startReplicas(b, replicas, env...)
	admin := adminTokenFor(b, b.TempDir(), env)
	cp := registerComponent(b, ps[0].process, admin)
	if err := sim.AddComponent(wxsim.ComponentOptions{AppID: compAppID, Secret: "c5ec2e7c5ec2e7c5ec2e7c5ec2e7c5ec", Token: "AAAAA", EncodingAESKey: compKey,
		TicketEvery: -1, AuthEventURL: "http://" + ps[0].http + "/wxc/" + cp + "/events"}); err != nil {
		b.Fatal(err)
	}
	if _, err := sim.PushTicket(compAppID); err != nil {
		b.Fatal(err)
	}

	appid := func(i int) string { return fmt.Sprintf("wxc%015x", i) }
	start := time.Now()
	parallel(b, n, 8, func(i int) error {
		p := ps[i%len(ps)].process
		var tn struct {
			Tenant struct{ ID string } `json:"tenant"`
		}
		body := `{"component_id":"` + cp + `","appid":"` + appid(i) + `","webhook_url":"` + hook.URL + `"}`
		if code := p.api(b, "POST", "/v1/tenants", admin, body, &tn); code != 200 {
			return fmt.Errorf("create tenant %d: %d", i, code)
		}
		var link struct {
			URL string `json:"url"`
		}
		if code := p.api(b, "POST", "/v1/tenants/"+tn.Tenant.ID+":authorizationUrl", admin, `{}`, &link); code != 200 {
			return fmt.Errorf("consent link %d: %d", i, code)
		}
		u, err := url.Parse(link.URL)
		if err != nil {
			return err
		}
		_, err = sim.Scan(compAppID, u.Query().Get("pre_auth_code"), appid(i), []int{17, 19})
		return err
	})
	consented := time.Now()
	b.Logf("%d tenants created and consented in %v", n, consented.Sub(start).Round(time.Second))
	for deadline := time.Now().Add(15 * time.Minute); ; time.Sleep(time.Second) {
		var listed struct {
			Authorizers []struct {
				State string `json:"state"`
			} `json:"authorizers"`
		}
		ps[0].api(b, "GET", "/v1/components/"+cp+"/authorizers", admin, "", &listed)
		if len(listed.Authorizers) >= n {
			break
		}
		failed := 0
		for _, p := range sim.Pushes() {
			if p.Status != 200 {
				failed++
			}
		}
		if failed > 0 || time.Now().After(deadline) {
			b.Fatalf("%d of %d authorizations kept; %d of WeChat's pushes failed", len(listed.Authorizers), n, failed)
		}
	}
	authorize := time.Since(consented)

	var tick time.Duration
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(time.Second) {
		var runs int
		if tick, runs = jobMean(b, ps[0].process, "tenant-health"); runs >= 2 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("fewer than two tenant-health runs in 5 minutes")
		}
	}

	// Users' pushes over every authorizer, through the message URL.
	secs := 10
	per := rate*secs/len(ps) + 100
	// WXRELAY_BENCH_PUSH_APPIDS narrows the pushes to that many
	// authorizers (default all), to tell the cost of cold lookups apart.
	spread := min(benchEnvInt(b, "WXRELAY_BENCH_PUSH_APPIDS", n), n)
	cipher, err := wechat.NewCipher(compKey, compAppID)
	if err != nil {
		b.Fatal(err)
	}
	pusher := wechat.Pusher{Token: "AAAAA", Mode: wechat.ModeSafe, Cipher: cipher}
	results := make([]*load.Result, len(ps))
	var wg sync.WaitGroup
	for r, p := range ps {
		src := &pushList{}
		for i := range per {
			k := r*per + i
			msg := wechat.TextMessage(wechat.FormatXML, wechat.Header{ToUserName: "gh_3c884a361561", FromUserName: fmt.Sprintf("oUser%06d", k), CreateTime: time.Now().Unix()},
				"where is my order?", int64(1e15)+int64(k))
			req, err := pusher.Push(msg, time.Now().Unix(), fmt.Sprint(k))
			if err != nil {
				b.Fatal(err)
			}
			src.pushes = append(src.pushes, load.Push{Path: "/" + appid(k%spread), RawQuery: req.RawQuery(), Body: req.Body, ContentType: req.ContentType})
		}
		wg.Go(func() {
			results[r], err = load.Run(context.Background(), load.Target{URL: "http://" + p.http + "/wxc/" + cp, Source: src},
				load.Options{Rate: float64(rate) / float64(len(ps)), Duration: time.Duration(secs) * time.Second, Concurrency: 64 / len(ps)})
		})
	}
	wg.Wait()
	if err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	failed := 0
	for _, r := range results {
		lat = append(lat, r.Latency.P99)
		failed += r.Failed + r.NotSent
		if len(r.ErrorSamples) > 0 {
			b.Logf("errors: %v", r.ErrorSamples)
		}
	}
	p99 := lat[0]
	for _, l := range lat {
		p99 = max(p99, l)
	}
	var rss uint64
	for _, p := range ps {
		rss = max(rss, rssOf(b, p.cmd.Process.Pid))
	}
	if failed > 0 {
		b.Errorf("%d pushes failed or not sent", failed)
	}
	mib := float64(rss) / (1 << 20)
	b.ReportMetric(authorize.Seconds(), "authorize-s")
	b.ReportMetric(tick.Seconds()*1000, "health-tick-ms")
	b.ReportMetric(ms(p99), "push-p99-ms")
	b.ReportMetric(mib, "RSS-MiB")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d authorizers of one component on %d replica(s): every authorization kept %v after the last consent, tenant-health tick %v, %d/s pushes through the message URL p99 %v (the worst replica's), RSS %.1f MiB",
		n, len(ps), authorize.Round(time.Millisecond), tick.Round(time.Millisecond), rate, p99, mib)
}

// pushList hands out prepared pushes, each once.
type pushList struct {
	pushes []load.Push
	next   atomic.Int64
}

func (l *pushList) Next() (load.Push, error) {
	i := l.next.Add(1) - 1
	if int(i) >= len(l.pushes) {
		return load.Push{}, fmt.Errorf("pushList: all %d pushes handed out", len(l.pushes))
	}
	return l.pushes[i], nil
}
