package api_test

import (
	"strings"
	"testing"
	"time"
)

// tokenStatus returns the token_status of GET /v1/tenants/{id}.
func (e *env) tokenStatus(id string) map[string]any {
	e.t.Helper()
	r := e.mustStatus(e.do("GET", "/v1/tenants/"+id, e.admin, nil), 200)
	st, _ := r.body["token_status"].(map[string]any)
	if st == nil {
		e.t.Fatalf("no token_status in %s", r.raw)
	}
	for k := range st {
		switch k {
		case "expire_time", "last_refresh_time", "last_errcode", "last_error", "last_error_time", "next_refresh_time":
		default:
			e.t.Errorf("token_status has unexpected field %q: %v", k, st)
		}
	}
	return st
}

func futureTime(t *testing.T, v any) bool {
	t.Helper()
	s, _ := v.(string)
	ts, err := time.Parse(time.RFC3339Nano, s)
	return err == nil && ts.After(time.Now())
}

// TestTokenStatusShowsWrongSecret: an admin sees from the tenant why it
// cannot send (40125, wrong AppSecret), and that fixing the secret helped.
func TestTokenStatusShowsWrongSecret(t *testing.T) {
	e := newEnv(t)
	body := validTenant()
	appid := body["appid"].(string)
	const realSecret = "fedcba9876543210fedcba9876543210"
	e.sim.AddApp(appid, realSecret) // the tenant is created with testSecret
	c := e.createTenant(body)

	if st := e.tokenStatus(c.id); len(st) != 0 {
		t.Errorf("token_status before any fetch = %v, want empty", st)
	}

	msg := `{"touser":"o1","msgtype":"text","text":{"content":"hi"}}`
	if r := e.do("POST", sendPath(c.id), c.apiKey, msg); r.status == 200 {
		t.Fatalf("send with a wrong secret succeeded: %s", r.raw)
	}
	st := e.tokenStatus(c.id)
	if st["last_errcode"] != float64(40125) {
		t.Errorf("last_errcode = %v, want 40125; status %v", st["last_errcode"], st)
	}
	if s, _ := st["last_error"].(string); s == "" || strings.Contains(s, testSecret) {
		t.Errorf("last_error = %q, want a reason without the secret", s)
	}
	if st["last_error_time"] == nil || st["next_refresh_time"] == nil || st["expire_time"] != nil {
		t.Errorf("status after a failure = %v, want last_error_time, next_refresh_time, no expire_time", st)
	}

	e.mustStatus(e.do("PATCH", "/v1/tenants/"+c.id, e.admin, map[string]any{"app_secret": realSecret}), 200)
	e.mustStatus(e.do("POST", sendPath(c.id), c.apiKey, msg), 200)
	st = e.tokenStatus(c.id)
	if !futureTime(t, st["expire_time"]) || st["last_refresh_time"] == nil {
		t.Errorf("status after a fetch = %v, want expire_time in the future and last_refresh_time", st)
	}
	if code, _ := st["last_errcode"].(float64); code != 0 || st["last_error"] != nil {
		t.Errorf("status after a fetch = %v, want no error", st)
	}

	// Listing does not read token status: see tenant.proto.
	r := e.mustStatus(e.do("GET", "/v1/tenants", e.admin, nil), 200)
	if strings.Contains(r.raw, "token_status") {
		t.Errorf("ListTenants shows token_status: %s", r.raw)
	}
	// It is output only.
	bad := e.mustStatus(e.do("PATCH", "/v1/tenants/"+c.id, e.admin, map[string]any{
		"token_status": map[string]any{"last_errcode": 1},
	}), 400)
	if msg, _ := bad.body["message"].(string); !strings.HasPrefix(msg, "token_status:") {
		t.Errorf("message = %q", msg)
	}
}

// TestTokenEndpoint: token_endpoint defaults to stable, round-trips through
// create, patch and get, and picks the endpoint the keeper fetches from.
func TestTokenEndpoint(t *testing.T) {
	e := newEnv(t)

	def := e.wxTenant()
	if got := e.mustStatus(e.do("GET", "/v1/tenants/"+def.id, e.admin, nil), 200).body["token_endpoint"]; got != "TOKEN_ENDPOINT_STABLE" {
		t.Errorf("default token_endpoint = %v, want TOKEN_ENDPOINT_STABLE", got)
	}

	body := validTenant()
	appid := body["appid"].(string)
	e.sim.AddApp(appid, testSecret)
	body["token_endpoint"] = "TOKEN_ENDPOINT_CLASSIC"
	r := e.mustStatus(e.do("POST", "/v1/tenants", e.admin, body), 200)
	tn := r.body["tenant"].(map[string]any)
	if tn["token_endpoint"] != "TOKEN_ENDPOINT_CLASSIC" {
		t.Errorf("created token_endpoint = %v", tn["token_endpoint"])
	}
	id, key := tn["id"].(string), r.body["api_key"].(string)
	if got := e.mustStatus(e.do("GET", "/v1/tenants/"+id, e.admin, nil), 200).body["token_endpoint"]; got != "TOKEN_ENDPOINT_CLASSIC" {
		t.Errorf("got token_endpoint = %v", got)
	}
	msg := `{"touser":"o1","msgtype":"text","text":{"content":"hi"}}`
	e.mustStatus(e.do("POST", sendPath(id), key, msg), 200)
	if n := e.sim.TokenCounts(appid); n.Classic != 1 || n.Stable+n.StableForced != 0 {
		t.Errorf("token counts = %+v, want one classic fetch", n)
	}

	r = e.mustStatus(e.do("PATCH", "/v1/tenants/"+id, e.admin, map[string]any{"token_endpoint": "TOKEN_ENDPOINT_STABLE"}), 200)
	if r.body["token_endpoint"] != "TOKEN_ENDPOINT_STABLE" {
		t.Errorf("patched token_endpoint = %v", r.body["token_endpoint"])
	}
	// The keeper switches at the token's next refresh: the classic token
	// it holds stays good until then.
	if got := e.mustStatus(e.do("GET", "/v1/tenants/"+id, e.admin, nil), 200).body["token_endpoint"]; got != "TOKEN_ENDPOINT_STABLE" {
		t.Errorf("got token_endpoint = %v after the patch", got)
	}

	// Unspecified resets to the default; unknown values are refused.
	r = e.mustStatus(e.do("PATCH", "/v1/tenants/"+id, e.admin, map[string]any{"token_endpoint": "TOKEN_ENDPOINT_UNSPECIFIED"}), 200)
	if r.body["token_endpoint"] != "TOKEN_ENDPOINT_STABLE" {
		t.Errorf("token_endpoint after patching unspecified = %v", r.body["token_endpoint"])
	}
	bad := e.mustStatus(e.do("PATCH", "/v1/tenants/"+id, e.admin, map[string]any{"token_endpoint": 7}), 400)
	if msg, _ := bad.body["message"].(string); !strings.HasPrefix(msg, "token_endpoint:") {
		t.Errorf("message = %q", msg)
	}
	e.mustStatus(e.do("PATCH", "/v1/tenants/"+id, e.admin, map[string]any{"token_endpoint": "TOKEN_ENDPOINT_BOGUS"}), 400)
	body = validTenant()
	body["token_endpoint"] = 9
	e.mustStatus(e.do("POST", "/v1/tenants", e.admin, body), 400)
}

// TestCheckCredentials: with check_credentials, WeChat is asked before
// anything is stored, and each refusal is answered as what it is (at the
// field, with WeChat's errcode), creating nothing; credentials that hold
// create the tenant and say they were checked.
func TestCheckCredentials(t *testing.T) {
	e := newEnv(t)
	const realSecret = "fedcba9876543210fedcba9876543210"
	registered := validTenant()["appid"].(string)
	e.sim.AddApp(registered, realSecret)
	create := func(appid, secret string) response {
		t.Helper()
		body := validTenant()
		body["appid"], body["app_secret"] = appid, secret
		return e.do("POST", "/v1/tenants?check_credentials=true", e.admin, body)
	}
	errcode := func(r response) string {
		details, _ := r.body["details"].([]any)
		for _, d := range details {
			if m, _ := d.(map[string]any); m["reason"] == "WECHAT_ERROR" {
				md, _ := m["metadata"].(map[string]any)
				s, _ := md["errcode"].(string)
				return s
			}
		}
		return ""
	}
	for _, c := range []struct {
		name, appid, secret string
		status              int
		errcode, prefix     string
		setup               func()
	}{
		{"wrong secret", registered, testSecret, 400, "40125", "app_secret: WeChat refused the AppSecret", nil},
		{"unknown appid", "wx00000000000000ee", realSecret, 400, "40013", "appid: WeChat does not know this appid", nil},
		{"IP not whitelisted", registered, realSecret, 400, "40164", "WeChat refused the relay's address (40164: invalid ip", func() { e.sim.SetIPWhitelist(true) }},
		{"WeChat fails", registered, realSecret, 503, "-1", "WeChat failed to answer", func() { e.sim.FailNext(1, "/cgi-bin/stable_token") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.setup != nil {
				c.setup()
				defer e.sim.Reset()
			}
			r := create(c.appid, c.secret)
			msg, _ := r.body["message"].(string)
			if r.status != c.status || errcode(r) != c.errcode || !strings.HasPrefix(msg, c.prefix) || !strings.Contains(msg, "nothing was created") {
				t.Errorf("answer %d %s, want %d starting %q, errcode %s, saying nothing was created", r.status, r.raw, c.status, c.prefix, c.errcode)
			}
			if strings.Contains(r.raw, c.secret) {
				t.Errorf("the answer holds the secret: %s", r.raw)
			}
		})
	}
	list := e.mustStatus(e.do("GET", "/v1/tenants", e.admin, nil), 200)
	if ts, _ := list.body["tenants"].([]any); len(ts) != 0 {
		t.Fatalf("refused checks left tenants behind: %s", list.raw)
	}

	e.sim.Reset()
	r := e.mustStatus(create(registered, realSecret), 200)
	if r.body["credentials_checked"] != true {
		t.Errorf("created after a check that passed, but credentials_checked is %v: %s", r.body["credentials_checked"], r.raw)
	}
	if n := len(e.sim.Calls()); n != 1 || e.sim.Calls()[0].Path != "/cgi-bin/stable_token" {
		t.Errorf("the check made %d stable_token calls, want 1", n)
	}
	// Unasked, nothing is checked: the answer says so.
	body := validTenant()
	body["appid"] = "wx00000000000000ef"
	if r := e.mustStatus(e.do("POST", "/v1/tenants", e.admin, body), 200); r.body["credentials_checked"] != nil {
		t.Errorf("an unchecked create says credentials_checked %v", r.body["credentials_checked"])
	}
}
