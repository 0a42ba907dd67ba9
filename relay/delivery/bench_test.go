package delivery_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/relay/delivery"
	"github.com/wxrelay/wxrelay/relay/ingress"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

// These benchmarks run once whatever b.N is (use -benchtime 1x) and
// report their figures as metrics. Recorded in docs/benchmarks.md.

// benchEnv is a tenant on a real SQLite database (synchronous=FULL) whose
// webhook is a receiver process on loopback answering 204
// (receiver_bench_test.go).
type benchEnv struct {
	db      *store.DB
	tenants *tenant.Service
	tn      *tenant.Tenant
	secret  string
	sink    *receiverProcess
}

func newBenchEnv(b *testing.B) *benchEnv {
	e := &benchEnv{db: storetest.New(b), sink: startReceiver(b)}
	key := make([]byte, 32)
	rand.Read(key)
	ts := store.NewTenantStore(e.db)
	auth, _ := tenant.NewAuthenticator(key, ts, nil)
	e.tenants = tenant.NewService(ts, auth, true, nil)
	var creds tenant.Credentials
	var err error
	e.tn, creds, err = e.tenants.Create(context.Background(), &tenant.Tenant{
		AppID: "wx00000000000000ab", WebhookURL: e.sink.URL, EncryptMode: tenant.EncryptSafe, DataFormat: tenant.FormatJSON,
		Secrets: tenant.Secrets{AppSecret: "5ec2e75ec2e75ec2e75ec2e75ec2e75e", Token: "BenchToken1", EncodingAESKey: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"},
	})
	if err != nil {
		b.Fatal(err)
	}
	e.secret = creds.WebhookSecret
	return e
}

// cpu is the CPU time used so far by this process and the receiver's.
func (e *benchEnv) cpu(b *testing.B) time.Duration {
	return processCPU() + time.Duration(e.sink.stats(b, false).CPUNanos)
}

func (e *benchEnv) dispatcher(b *testing.B, ds *store.DeliveryStore) (*delivery.Dispatcher, func()) {
	d, err := delivery.New(delivery.Options{
		Store: ds, Tenants: tenant.NewCache(e.tenants, time.Second, nil),
		Sender:    delivery.NewSender(delivery.SenderOptions{AllowPrivate: true, ConnsPerHost: 64}),
		PerTenant: 192, // one tenant here: let it use every worker (64) and the claim-ahead queue (128), as the bare client uses 64 goroutines
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	return d, func() { cancel(); <-done }
}

func backlogSize() int { return envPositive("WXRELAY_BENCH_BACKLOG", 100_000) }

// envPositive is the positive integer in the environment variable name, or
// def.
func envPositive(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkDrain stores a backlog of signed-payload events, times the
// dispatcher draining it into the receiver, then times a bare Go HTTP
// client (64 goroutines, the dispatcher's worker count) posting the same
// signed payloads to the same receiver; and so on for a few rounds, so
// that both meet the same load from the rest of the machine:
//
//	go test ./relay/delivery -run '^$' -bench Drain -benchtime 1x
//
// WXRELAY_BENCH_BACKLOG sets the backlog (default 100,000 events) and
// WXRELAY_BENCH_ROUNDS the rounds (default 3). The rates and CPU figures
// are over all rounds; ratio_min and ratio_max are those of single rounds.
func BenchmarkDrain(b *testing.B) {
	e := newBenchEnv(b)
	n, rounds := backlogSize(), envPositive("WXRELAY_BENCH_ROUNDS", 3)
	events := store.NewEventStore(e.db)
	ds := store.NewDeliveryStore(e.db)
	payload := []byte(`{"id":"evt_x","type":"message.text","tenant_id":"tn","appid":"wx00000000000000ab","openid":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","create_time":"2026-11-23T08:00:00Z","receive_time":"2026-11-23T08:00:00.123456Z","data":{"Content":"hello there","CreateTime":1795420800,"FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","MsgId":6054768590064713728,"MsgType":"text","ToUserName":"gh_97417a04a28d"}}`)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}

	var relayTook, bareTook, relayCPU, bareCPU time.Duration
	ratioMin, ratioMax := math.Inf(1), 0.0
	b.ResetTimer()
	for range rounds {
		b.StopTimer()
		storeBacklog(b, events, e.tn.ID, n, payload)
		b.StartTimer()

		received := e.sink.stats(b, false).Received // by the rounds before
		cpu0, start := e.cpu(b), time.Now()
		_, stop := e.dispatcher(b, ds)
		if st := e.sink.waitReceived(b, received+int64(n), time.Now().Add(10*time.Minute)); st.Received < received+int64(n) {
			b.Fatalf("the receiver has %d of %d deliveries after 10 minutes", st.Received-received, n)
		}
		took, cpu := time.Since(start), e.cpu(b)-cpu0
		stop()
		relayTook, relayCPU = relayTook+took, relayCPU+cpu
		if st, err := ds.Stats(context.Background()); err != nil || st.Pending != 0 {
			b.Fatalf("after the drain: %d pending (%v)", st.Pending, err)
		}

		cpu0, start = e.cpu(b), time.Now()
		postBare(b, client, e.sink.URL, e.secret, payload, n)
		bareRound, bareRoundCPU := time.Since(start), e.cpu(b)-cpu0
		bareTook, bareCPU = bareTook+bareRound, bareCPU+bareRoundCPU
		r := bareRound.Seconds() / took.Seconds()
		ratioMin, ratioMax = min(ratioMin, r), max(ratioMax, r)
	}
	b.StopTimer()
	total := float64(n * rounds)
	relayRate, bareRate := total/relayTook.Seconds(), total/bareTook.Seconds()
	b.ReportMetric(relayRate, "relay_events/s")
	b.ReportMetric(bareRate, "bare_events/s")
	b.ReportMetric(relayRate/bareRate, "ratio")
	b.ReportMetric(ratioMin, "ratio_min")
	b.ReportMetric(ratioMax, "ratio_max")
	// CPU time (user and system, the receiver process's included) per event: on a
	// shared machine, steadier than the rates, which follow the load.
	if relayCPU > 0 && bareCPU > 0 {
		b.ReportMetric(float64(relayCPU.Microseconds())/total, "relay_cpu_us/event")
		b.ReportMetric(float64(bareCPU.Microseconds())/total, "bare_cpu_us/event")
	}
}

// storeBacklog stores n events of tid with the given bodies, due at once:
// a backlog as pushes leave it when a webhook was down, received one a
// millisecond until now, each with the id that its receive time gives it.
// (Ids are time-ordered to the millisecond and random within it: had all
// the events one receive time, their ids, and so their attempts' index
// entries, would fall in random order, which no stream of pushes makes.)
func storeBacklog(b *testing.B, events *store.EventStore, tid tenant.ID, n int, payload []byte) {
	b.Helper()
	first := time.Now().Add(-time.Duration(n) * time.Millisecond)
	for start := 0; start < n; start += 1000 {
		batch := make([]*relay.Event, 0, 1000)
		for i := start; i < min(start+1000, n); i++ {
			at := first.Add(time.Duration(i) * time.Millisecond)
			id := relay.NewEventID(at)
			batch = append(batch, &relay.Event{ID: id, TenantID: tid, DedupKey: "msg:" + string(id), Type: "message.text",
				OpenID: "o", CreateTime: at, ReceiveTime: at, Raw: payload, Payload: payload})
		}
		if _, err := events.AppendEvents(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
}

// postBare is the baseline: n signed posts of payload to url from 64
// goroutines, as the dispatcher's 64 workers make them.
func postBare(b *testing.B, client *http.Client, url, secret string, payload []byte, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				ts := time.Now()
				sig, _ := delivery.Sign([]string{secret}, "evt_x", ts, payload)
				req, _ := http.NewRequest("POST", url, bytes.NewReader(payload))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("webhook-id", "evt_x")
				req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
				req.Header.Set("webhook-signature", sig)
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
}

// BenchmarkPushToWebhook pushes distinct safe-mode JSON messages at a fixed
// 1,000 pushes/s through the real push handler, ingestor and dispatcher,
// and measures from just before each push is sent to its arrival at the
// webhook:
//
//	go test ./relay/delivery -run '^$' -bench PushToWebhook -benchtime 1x
func BenchmarkPushToWebhook(b *testing.B) {
	// The receiver notes when each openid's first delivery arrives.
	e := newBenchEnv(b)
	events, ds := store.NewEventStore(e.db), store.NewDeliveryStore(e.db)
	d, stop := e.dispatcher(b, ds)
	defer stop()
	ing := relay.NewIngestor(events, relay.IngestorOptions{OnCommit: func(int, time.Duration, error) { d.Notify() }})
	defer ing.Close()
	mux := http.NewServeMux()
	mux.Handle("/wx/{id}", ingress.New(ingress.Options{Tenants: tenant.NewCache(e.tenants, time.Second, nil), Events: ing, Logger: slog.New(slog.DiscardHandler)}))
	relaySrv := httptest.NewServer(mux)
	defer relaySrv.Close()

	cipher, _ := wechat.NewCipher(e.tn.Secrets.EncodingAESKey, e.tn.AppID)
	p := &wechat.Pusher{Token: e.tn.Secrets.Token, Mode: wechat.ModeSafe, Cipher: cipher}
	const rate, seconds = 1000, 10
	total := rate * seconds
	reqs := make([]*wechat.PushRequest, total)
	for i := range reqs {
		msg := wechat.TextMessage(wechat.FormatJSON, wechat.Header{ToUserName: "gh_x", FromUserName: fmt.Sprintf("o_%06d", i), CreateTime: time.Now().Unix()}, "hello", int64(1e18)+int64(i))
		reqs[i], _ = p.Push(msg, time.Now().Unix(), "1")
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	sent := make([]time.Time, total)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, r := range reqs {
		at := start.Add(time.Duration(i) * time.Second / rate)
		time.Sleep(time.Until(at))
		sent[i] = time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Post(relaySrv.URL+"/wx/"+string(e.tn.ID)+"?"+r.RawQuery(), r.ContentType, bytes.NewReader(r.Body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	wg.Wait()
	e.sink.waitReceived(b, int64(total), time.Now().Add(30*time.Second))
	b.StopTimer()
	arrived := e.sink.stats(b, true).Arrivals
	lat := make([]time.Duration, 0, total)
	for i := range total {
		if ns, ok := arrived[fmt.Sprintf("o_%06d", i)]; ok {
			lat = append(lat, time.Unix(0, ns).Sub(sent[i]))
		}
	}
	if len(lat) != total {
		b.Fatalf("%d of %d pushes reached the webhook", len(lat), total)
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
	b.ReportMetric(q(1), "max_ms")
}
