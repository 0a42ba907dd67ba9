package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/wxrelay/wxrelay/relay/wechat"
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
	p.sim.AddApp("wx0123456789abcd01", "5ec2e75ec2e75ec2e75ec2e75ec2e75e") // its first token is fetched at onboarding
	admin := adminTokenIn(t, dir)
	var created struct {
		Tenant struct{ ID string } `json:"tenant"`
	}
	body := `{"appid":"wx0123456789abcd01","app_secret":"5ec2e75ec2e75ec2e75ec2e75ec2e75e","token":"PushToken1","encrypt_mode":"ENCRYPT_MODE_PLAINTEXT",
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

// TestRejectedPushesShowInHealth: pushes signed with a Token that is not
// the tenant's (the usual mistake after onboarding), and one with a stale
// timestamp, make the tenant DEGRADED with PUSH_REJECTED, list by cause
// in the API (to the tenant's own key too), show in the gauges and reach
// the operator's alert webhook; the 300 refusals write no log line each.
func TestRejectedPushesShowInHealth(t *testing.T) {
	inbox := &alertInbox{t: t}
	ops := httptest.NewServer(inbox)
	defer ops.Close()
	dir := t.TempDir()
	p := startServe(t, dir, "WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true", "WXRELAY_HEALTH_INTERVAL=1s",
		"WXRELAY_ALERT_WEBHOOK="+ops.URL+"/alerts", "WXRELAY_ALERT_WEBHOOK_SECRET="+alertSecret)
	admin := adminTokenIn(t, dir)
	p.sim.AddApp("wx0123456789abcd02", "5ec2e75ec2e75ec2e75ec2e75ec2e75e") // its first token is fetched at onboarding
	hook, _ := newSwitchableHook(t, http.StatusInternalServerError)
	var created struct {
		Tenant struct{ ID string } `json:"tenant"`
		APIKey string              `json:"api_key"`
	}
	body := `{"appid":"wx0123456789abcd02","app_secret":"5ec2e75ec2e75ec2e75ec2e75ec2e75e","token":"PushToken1","encrypt_mode":"ENCRYPT_MODE_PLAINTEXT",
		"data_format":"DATA_FORMAT_JSON","webhook_url":"` + hook.URL + `/events"}`
	if code := p.api(t, "POST", "/v1/tenants", admin, body, &created); code != 200 {
		t.Fatalf("create tenant: %d", code)
	}
	tid := created.Tenant.ID
	push := func(token string, at time.Time, n int) int {
		pusher := &wechat.Pusher{Token: token, Mode: wechat.ModePlaintext}
		msg := wechat.TextMessage(wechat.FormatJSON, wechat.Header{ToUserName: "gh_x", FromUserName: "oRejected0000000000000000", CreateTime: at.Unix()}, "hi", int64(n))
		req, err := pusher.Push(msg, at.Unix(), strconv.Itoa(n))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post("http://"+p.http+"/wx/"+tid+"?"+req.RawQuery(), req.ContentType, bytes.NewReader(req.Body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 300 {
		if code := push("NotTheToken", time.Now(), i); code != http.StatusUnauthorized {
			t.Fatalf("push with a wrong Token: %d, want 401", code)
		}
	}
	if code := push("PushToken1", time.Now().Add(-time.Hour), 1000); code != http.StatusBadRequest {
		t.Fatalf("push an hour old: %d, want 400", code)
	}

	var got struct {
		Health struct {
			State   string `json:"state"`
			Reasons []struct {
				Kind              string `json:"kind"`
				Severity          string `json:"severity"`
				Message           string `json:"message"`
				Rejected          string `json:"rejected"`
				LastRejection     string `json:"last_rejection"`
				LastRejectionTime string `json:"last_rejection_time"`
			} `json:"reasons"`
		} `json:"health"`
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got.Health.Reasons = nil
		p.api(t, "GET", "/v1/tenants/"+tid, admin, "", &got)
		if len(got.Health.Reasons) == 1 && got.Health.Reasons[0].Rejected == "301" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health %+v, want PUSH_REJECTED with 301 pushes\n%s", got.Health, p.stderr)
		}
	}
	r := got.Health.Reasons[0]
	if got.Health.State != "STATE_DEGRADED" || r.Kind != "KIND_PUSH_REJECTED" || r.Severity != "STATE_DEGRADED" ||
		r.LastRejection != "stale_timestamp" || r.LastRejectionTime == "" ||
		!strings.Contains(r.Message, "300 bad_signature, 1 stale_timestamp") || !strings.Contains(r.Message, "clock") {
		t.Errorf("health %+v, want DEGRADED by PUSH_REJECTED, latest stale_timestamp, with the counts and a hint", got.Health)
	}

	type run struct {
		Cause   string `json:"cause"`
		Count   string `json:"count"`
		InForce bool   `json:"in_force"`
		Hint    string `json:"hint"`
	}
	var runs struct {
		Rejections []run `json:"rejections"`
	}
	// The tenant's own key reads them; the admin's too.
	if code := p.api(t, "GET", "/v1/tenants/"+tid+"/pushRejections", created.APIKey, "", &runs); code != 200 {
		t.Fatalf("pushRejections with the tenant's key: %d", code)
	}
	if len(runs.Rejections) != 2 || runs.Rejections[0] != (run{"bad_signature", "300", true, runs.Rejections[0].Hint}) ||
		!strings.Contains(runs.Rejections[0].Hint, "Token") || runs.Rejections[1].Cause != "stale_timestamp" {
		t.Errorf("pushRejections = %+v, want 300 bad_signature (with a hint naming the Token), then stale_timestamp", runs.Rejections)
	}

	metrics := p.metricsText(t)
	if want := `wxrelay_tenant_push_rejections{cause="bad_signature",tenant="` + tid + `"} 300`; !strings.Contains(metrics, want) {
		t.Errorf("metrics lack %s", want)
	}
	if got := inbox.waitFor(t, 1, p); got[0] != "tenant.health.raised:PUSH_REJECTED" {
		t.Errorf("alerts %v, want PUSH_REJECTED raised", got)
	}
	log := p.stderr.String()
	if n := strings.Count(log, tid); n > 10 {
		t.Errorf("the log names the tenant %d times for 301 refused pushes, want a few (its health change)", n)
	}
	if !strings.Contains(log, `"msg":"tenant health changed","tenant":"`+tid+`","from":"OK","to":"DEGRADED"`) {
		t.Errorf("no line for the change of health in the log:\n%s", log)
	}
}
