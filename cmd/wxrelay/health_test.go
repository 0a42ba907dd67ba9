package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// newSwitchableHook is a tenant's webhook that answers 204, or status
// while failing is set.
func newSwitchableHook(t *testing.T, status int) (*httptest.Server, *atomic.Bool) {
	failing := new(atomic.Bool)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "the shop's server is down", status)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)
	return hook, failing
}

const alertSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"

// alertMsg is what the test reads of an alert.
type alertMsg struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		TenantID string `json:"tenant_id"`
		Reason   string `json:"reason"`
	} `json:"data"`
}

// alertInbox is the operator's alert webhook: it verifies each POST with
// the Standard Webhooks library and keeps the alerts in arrival order.
type alertInbox struct {
	t   *testing.T
	mu  sync.Mutex
	got []alertMsg
}

func (in *alertInbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	wh, _ := standardwebhooks.NewWebhook(alertSecret)
	if err := wh.Verify(b, r.Header); err != nil {
		in.t.Errorf("alert does not verify: %v", err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var m alertMsg
	if err := json.Unmarshal(b, &m); err != nil {
		in.t.Errorf("alert %s: %v", b, err)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.got = append(in.got, m)
}

// types are the alerts' "type:reason" in arrival order.
func (in *alertInbox) types() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []string
	for _, a := range in.got {
		out = append(out, a.Type+":"+a.Data.Reason)
	}
	return out
}

func (in *alertInbox) waitFor(t *testing.T, n int, p *process) []string {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if got := in.types(); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("alerts %v, want %d\n%s", in.types(), n, p.stderr)
		}
	}
}

// TestTenantHealthFollowsTheWebhook: a webhook that answers 500 turns the
// tenant FAILING with WEBHOOK_FAILING and the webhook's last status; once
// it answers again and the events are redelivered, the tenant is OK. The
// operator's alert webhook is told of each transition once, signed, and
// a relay restarted after SIGKILL tells it nothing twice.
func TestTenantHealthFollowsTheWebhook(t *testing.T) {
	hook, failing := newSwitchableHook(t, http.StatusInternalServerError)
	failing.Store(true)
	inbox := &alertInbox{t: t}
	ops := httptest.NewServer(inbox)
	defer ops.Close()
	dir := t.TempDir()
	env := []string{"WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true", "WXRELAY_RETRY_SCHEDULE=0s,1h", "WXRELAY_HEALTH_INTERVAL=1s",
		"WXRELAY_ALERT_WEBHOOK=" + ops.URL + "/alerts", "WXRELAY_ALERT_WEBHOOK_SECRET=" + alertSecret}
	p := startServe(t, dir, env...)
	admin := adminTokenIn(t, dir)
	var created struct {
		Tenant struct{ ID string } `json:"tenant"`
	}
	body := `{"appid":"wx0123456789abcd01","app_secret":"s","token":"PushToken1","encrypt_mode":"ENCRYPT_MODE_PLAINTEXT",
		"data_format":"DATA_FORMAT_JSON","webhook_url":"` + hook.URL + `/events"}`
	if code := p.api(t, "POST", "/v1/tenants", admin, body, &created); code != 200 {
		t.Fatalf("create tenant: %d", code)
	}
	tid := created.Tenant.ID
	type reason struct {
		Kind                string `json:"kind"`
		Severity            string `json:"severity"`
		ConsecutiveFailures int    `json:"consecutive_failures"`
		LastHTTPStatus      int    `json:"last_http_status"`
		LastErrorClass      string `json:"last_error_class"`
		Since               string `json:"since"`
	}
	var got struct {
		Health struct {
			State   string   `json:"state"`
			Reasons []reason `json:"reasons"`
		} `json:"health"`
	}
	waitHealth := func(state string) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			got.Health.State, got.Health.Reasons = "", nil
			if code := p.api(t, "GET", "/v1/tenants/"+tid, admin, "", &got); code != 200 {
				t.Fatalf("get tenant: %d", code)
			}
			if got.Health.State == state {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("health %+v, want %s\n%s", got.Health, state, p.stderr)
			}
		}
	}
	waitHealth("STATE_OK")
	for i := range 3 {
		if err := pushUser(p, tid, "oHealthUser0000000000000"+string(rune('a'+i)), int64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	waitHealth("STATE_FAILING")
	r := got.Health.Reasons
	if len(r) != 1 || r[0].Kind != "KIND_WEBHOOK_FAILING" || r[0].Severity != "STATE_FAILING" || r[0].ConsecutiveFailures != 3 ||
		r[0].LastHTTPStatus != 500 || r[0].LastErrorClass != "http_status" || r[0].Since == "" {
		t.Fatalf("reasons %+v, want WEBHOOK_FAILING after 3 failures, last HTTP 500", r)
	}
	if got := inbox.waitFor(t, 1, p); got[0] != "tenant.health.raised:WEBHOOK_FAILING" {
		t.Fatalf("alerts %v, want WEBHOOK_FAILING raised first", got)
	}
	// The log says it too: the webhook's first failure once (not each of
	// the three), and the health's change.
	log := p.stderr.String()
	if n := strings.Count(log, "the tenant's webhook failed a delivery"); n != 1 {
		t.Errorf("%d log lines for the webhook's 3 failures in a row, want 1", n)
	}
	if !strings.Contains(log, `"msg":"tenant health changed","tenant":"`+tid+`","from":"OK","to":"FAILING"`) {
		t.Errorf("no WARN line for the change of health in the log:\n%s", log)
	}

	failing.Store(false)
	var events struct {
		Events []struct{ ID string } `json:"events"`
	}
	p.api(t, "GET", "/v1/tenants/"+tid+"/events", admin, "", &events)
	if len(events.Events) != 3 {
		t.Fatalf("%d events, want 3", len(events.Events))
	}
	for _, e := range events.Events {
		if code := p.api(t, "POST", "/v1/tenants/"+tid+"/events/"+e.ID+":redeliver", admin, "{}", nil); code != 200 {
			t.Fatalf("redeliver: %d", code)
		}
	}
	waitHealth("STATE_OK")
	if len(got.Health.Reasons) != 0 {
		t.Errorf("reasons after recovery: %+v", got.Health.Reasons)
	}
	alerts := inbox.waitFor(t, 2, p)
	if alerts[len(alerts)-1] != "tenant.health.cleared:WEBHOOK_FAILING" {
		t.Fatalf("alerts %v, want WEBHOOK_FAILING cleared last", alerts)
	}
	if log := p.stderr.String(); strings.Contains(log, alertSecret[len("whsec_"):]) {
		t.Errorf("the log holds the alert webhook's secret")
	}

	// Killed and started again on the same database: the transitions are
	// already alerted, and nothing is sent again in several runs.
	p.cmd.Process.Kill()
	p.cmd.Wait()
	p = startServe(t, dir, env...)
	waitHealth("STATE_OK")
	time.Sleep(3 * time.Second)
	if again := inbox.types(); len(again) != len(alerts) {
		t.Errorf("after a restart the alerts are %v, want still %v", again, alerts)
	}
}
