package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
	"github.com/wxrelay/wxrelay/store/storetest"
)

// lockedBuffer is a process's stderr, safe to read while it writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// replica is a running wxrelay serve sharing its database with others.
type replica struct {
	*process
	log *lockedBuffer
}

// startReplicas starts n `wxrelay serve` processes at once, each on its own
// ports, with the same environment (one database, one secret key), and
// waits until all are ready. They migrate the database together. They
// share a wxsim for WeChat, so that none reaches the real one, unless env
// sets WXRELAY_WECHAT_API.
func startReplicas(t testing.TB, n int, env ...string) []replica {
	t.Helper()
	wx := httptest.NewServer(wxsim.New(wxsim.Options{}))
	t.Cleanup(wx.Close)
	ps := make([]replica, n)
	for i := range ps {
		p := replica{&process{http: freePort(t), metrics: freePort(t)}, &lockedBuffer{}}
		p.cmd = exec.Command(binary, "serve")
		p.cmd.Dir = t.TempDir()
		// Later entries win: env overrides these.
		p.cmd.Env = append(append(os.Environ(), "WXRELAY_HTTP_ADDR="+p.http, "WXRELAY_GRPC_ADDR="+freePort(t), "WXRELAY_METRICS_ADDR="+p.metrics, "WXRELAY_WECHAT_API="+wx.URL), env...)
		p.cmd.Stderr = p.log
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
		ps[i] = p
	}
	// Generous: on a loaded two-core CI machine, with other packages' tests
	// running beside, start-up has taken over 30 s.
	deadline := time.Now().Add(90 * time.Second)
	for i, p := range ps {
		for {
			resp, err := http.Get("http://" + p.http + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d did not become ready: %v\n%s", i, err, p.log)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return ps
}

// balancer spreads pushes over replicas in turn, as a load balancer in
// front of them would; a push to a dead replica is answered 502, never
// "success", so WeChat would retry it.
type balancer struct {
	targets  []string
	next     atomic.Uint64
	answered []atomic.Int64 // "success" answers per target
	client   http.Client
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := int(b.next.Add(1) % uint64(len(b.targets)))
	body, _ := io.ReadAll(r.Body)
	resp, err := b.client.Post("http://"+b.targets[i]+r.URL.RequestURI(), r.Header.Get("Content-Type"), bytes.NewReader(body))
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 && string(out) == "success" {
		b.answered[i].Add(1)
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(out)
}

// TestReplicas_SIGKILLOneUnderLoad runs two relays on one PostgreSQL
// database with pushes split between them and kills one with SIGKILL
// mid-load: every push answered "success" by either is delivered, the
// survivor taking over what the dead one had leased; a push delivered more
// than once always comes under its one webhook-id; and the tenant's access
// token is fetched once, though both replicas send with it.
func TestReplicas_SIGKILLOneUnderLoad(t *testing.T) {
	dsn := storetest.PostgresDSN(t) // skips unless WXRELAY_TEST_POSTGRES is set
	key := make([]byte, 32)
	rand.Read(key)
	sim := wxsim.New(wxsim.Options{})
	wx := httptest.NewServer(sim)
	defer wx.Close()
	sink := &webhookSink{ids: map[string]map[string]int{}}
	hook := httptest.NewServer(sink)
	defer hook.Close()

	env := []string{
		"WXRELAY_DB=" + dsn, "WXRELAY_SECRET_KEY=" + base64.StdEncoding.EncodeToString(key),
		"WXRELAY_WECHAT_API=" + wx.URL, "WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true",
		// A delivery's lease is the timeout plus at least 5 s: the
		// survivor retries the dead replica's leased events 6 s after
		// their claim.
		"WXRELAY_DELIVERY_TIMEOUT=1s", "WXRELAY_RETRY_SCHEDULE=0s,1s,1s,1s,1s,1s,1s,1s,1s,1s",
	}
	ps := startReplicas(t, 2, env...)
	a, b := ps[0], ps[1]
	if n := strings.Count(a.log.String()+b.log.String(), `"msg":"applied migrations"`); n != 1 {
		t.Errorf("%d replicas applied migrations, want 1:\n%s\n%s", n, a.log, b.log)
	}

	tok := exec.Command(binary, "admin-token")
	tok.Env = append(os.Environ(), env...)
	out, err := tok.Output()
	if err != nil {
		t.Fatalf("admin-token: %v", err)
	}
	admin := strings.TrimSpace(string(out))
	const appid = "wx0123456789abcdef"
	sim.AddApp(appid, "a99a99a99a99a99a99a99a99a99a9901")
	var created struct {
		Tenant        struct{ ID string } `json:"tenant"`
		WebhookSecret string              `json:"webhook_secret"`
	}
	body := fmt.Sprintf(`{"appid":%q,"app_secret":"a99a99a99a99a99a99a99a99a99a9901","token":"PushToken1","encrypt_mode":"ENCRYPT_MODE_PLAINTEXT","data_format":"DATA_FORMAT_XML","webhook_url":%q}`, appid, hook.URL)
	if code := a.api(t, "POST", "/v1/tenants", admin, body, &created); code != 200 {
		t.Fatalf("create tenant: %d", code)
	}
	wh, err := standardwebhooks.NewWebhook(created.WebhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	sink.secret = wh
	sink.mu.Unlock()

	lb := &balancer{targets: []string{a.http, b.http}, answered: make([]atomic.Int64, 2), client: http.Client{Timeout: 5 * time.Second}}
	front := httptest.NewServer(lb)
	defer front.Close()
	load := startPushLoad(t, front.URL+"/wx/"+created.Tenant.ID, &wechat.Pusher{Token: "PushToken1", Mode: wechat.ModePlaintext}, wechat.FormatXML, 16)

	// Both replicas send messages at once, each needing the token.
	var sendErrs []string
	var sendMu sync.Mutex
	send := func(p replica, i int) {
		// Through the process's API; t.Fatal may not run off the test's goroutine.
		req, _ := http.NewRequest("POST", "http://"+p.http+"/v1/tenants/"+created.Tenant.ID+"/messages:send",
			strings.NewReader(fmt.Sprintf(`{"touser":"o_user_%06d","msgtype":"text","text":{"content":"hi"}}`, i+1)))
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		msg := ""
		if err != nil {
			msg = err.Error()
		} else {
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				msg = fmt.Sprintf("%d %s", resp.StatusCode, raw)
			}
		}
		if msg != "" {
			sendMu.Lock()
			sendErrs = append(sendErrs, msg)
			sendMu.Unlock()
		}
	}
	var sends sync.WaitGroup
	for i := range 8 {
		sends.Go(func() { send(a, i) })
		sends.Go(func() { send(b, i) })
	}
	sends.Wait()

	// Kill a while deliveries are under way on both.
	deadline := time.Now().Add(20 * time.Second)
	for sink.total.Load() < 150 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	a.cmd.Process.Signal(syscall.SIGKILL)
	a.cmd.Wait()
	deliveredAtKill, answeredAtKill := sink.total.Load(), load.count()
	// The survivor keeps taking pushes.
	for load.count() < answeredAtKill+200 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	want := load.halt()
	for i := range 3 {
		send(b, i)
	}
	if len(sendErrs) > 0 {
		t.Errorf("sends failed: %v", sendErrs)
	}

	sink.waitForAll(t, want, 40*time.Second, func() string { return "\nsurvivor's log:\n" + b.log.String() })

	if lb.answered[0].Load() == 0 || lb.answered[1].Load() == 0 {
		t.Errorf("pushes answered per replica = %d, %d; want both to take some", lb.answered[0].Load(), lb.answered[1].Load())
	}
	redelivered := sink.checkOneIDEach(t)
	if n := sim.TokenCounts(appid).Total(); n != 1 {
		t.Errorf("wxsim issued %d access tokens for %s, want 1: replicas must share it", n, appid)
	}
	t.Logf("%d pushes answered (%d by the killed replica, %d by the survivor); %d delivered at the kill; all delivered, %d again under the same id",
		len(want), lb.answered[0].Load(), lb.answered[1].Load(), deliveredAtKill, redelivered)
}
