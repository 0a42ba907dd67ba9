package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/wxrelay/wxrelay/relay/wechat"
)

// webhookSink is a tenant's webhook in the test process: it verifies each
// delivery with the Standard Webhooks library and remembers, per openid,
// the webhook-ids it came under.
type webhookSink struct {
	mu      sync.Mutex
	secret  *standardwebhooks.Webhook
	ids     map[string]map[string]int // openid → webhook-id → deliveries
	total   atomic.Int64
	badSigs atomic.Int64
}

func (s *webhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	wh := s.secret
	s.mu.Unlock()
	if wh == nil || wh.Verify(body, r.Header) != nil {
		s.badSigs.Add(1)
		w.WriteHeader(400)
		return
	}
	time.Sleep(5 * time.Millisecond) // keep deliveries in flight when the relay dies
	var p struct {
		OpenID string `json:"openid"`
	}
	json.Unmarshal(body, &p)
	s.mu.Lock()
	if s.ids[p.OpenID] == nil {
		s.ids[p.OpenID] = map[string]int{}
	}
	s.ids[p.OpenID][r.Header.Get("webhook-id")]++
	s.mu.Unlock()
	s.total.Add(1)
	w.WriteHeader(204)
}

// waitForAll waits until a delivery from every openid in want has
// arrived, failing t with the count still missing after timeout; more, if
// not nil, tells what to add to that message, at the time of failing.
func (s *webhookSink) waitForAll(t *testing.T, want []string, timeout time.Duration, more func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		missing := 0
		s.mu.Lock()
		for _, o := range want {
			if len(s.ids[o]) == 0 {
				missing++
			}
		}
		s.mu.Unlock()
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			extra := ""
			if more != nil {
				extra = more()
			}
			t.Fatalf("%d of %d answered pushes never reached the webhook%s", missing, len(want), extra)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkOneIDEach fails t for a push delivered under more than one
// webhook-id or a delivery with a bad signature, and returns how many
// deliveries repeated an earlier one under the same id.
func (s *webhookSink) checkOneIDEach(t *testing.T) (redelivered int) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for openid, ids := range s.ids {
		if len(ids) != 1 {
			t.Errorf("push from %s delivered under %d webhook-ids: %v", openid, len(ids), ids)
		}
		for _, n := range ids {
			redelivered += n - 1
		}
	}
	if n := s.badSigs.Load(); n > 0 {
		t.Errorf("%d deliveries with a bad signature", n)
	}
	return redelivered
}

// TestEveryAnsweredPushIsDeliveredAcrossSIGKILL kills the relay while it is
// both taking pushes and delivering them, starts it again, and checks that
// every push answered "success" reaches the webhook, each under one stable
// webhook-id (a redelivery after the crash reuses it).
func TestEveryAnsweredPushIsDeliveredAcrossSIGKILL(t *testing.T) {
	dir := t.TempDir()
	sink := &webhookSink{ids: map[string]map[string]int{}}
	hook := httptest.NewServer(sink)
	defer hook.Close()
	env := []string{"WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true", "WXRELAY_DELIVERY_TIMEOUT=1s", "WXRELAY_RETRY_SCHEDULE=0s,1s,1s,1s,1s,1s,1s,1s,1s,1s"}
	p := startServe(t, dir, env...)
	admin := adminTokenIn(t, dir)
	var created struct {
		Tenant        struct{ ID string } `json:"tenant"`
		WebhookSecret string              `json:"webhook_secret"`
	}
	body := fmt.Sprintf(`{"appid":"wx0123456789abcdef","app_secret":"5ec2e75ec2e75ec2e75ec2e75ec2e75e","token":"PushToken1","encrypt_mode":"ENCRYPT_MODE_PLAINTEXT","data_format":"DATA_FORMAT_XML","webhook_url":%q}`, hook.URL)
	if code := p.api(t, "POST", "/v1/tenants", admin, body, &created); code != 200 {
		t.Fatalf("create tenant: %d", code)
	}
	wh, err := standardwebhooks.NewWebhook(created.WebhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	sink.secret = wh
	sink.mu.Unlock()

	pusher := &wechat.Pusher{Token: "PushToken1", Mode: wechat.ModePlaintext}
	pushURL := "http://" + p.http + "/wx/" + created.Tenant.ID
	load := startPushLoad(t, pushURL, pusher, wechat.FormatXML, 16)
	// Kill while deliveries are under way.
	deadline := time.Now().Add(20 * time.Second)
	for sink.total.Load() < 100 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	want := load.halt()
	deliveredBeforeKill := sink.total.Load()

	startServe(t, dir, env...)
	sink.waitForAll(t, want, 60*time.Second, nil)
	redelivered := sink.checkOneIDEach(t)
	t.Logf("%d pushes answered; %d delivered before SIGKILL; all delivered after restart, %d of them again under the same id",
		len(want), deliveredBeforeKill, redelivered)
}
