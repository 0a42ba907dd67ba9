package main

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestTenantHealthFollowsTheWebhook: a webhook that answers 500 turns the
// tenant FAILING with WEBHOOK_FAILING and the webhook's last status; once
// it answers again and the events are redelivered, the tenant is OK.
func TestTenantHealthFollowsTheWebhook(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "down for maintenance", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	dir := t.TempDir()
	p := startServe(t, dir, "WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true", "WXRELAY_RETRY_SCHEDULE=0s,1h")
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
}
