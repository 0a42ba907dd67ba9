package api_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wxrelay/wxrelay/api"
	"github.com/wxrelay/wxrelay/tenant"
)

// TestOperators: an admin adds named operators; an operator's key works
// as an admin's on the API, and what it changes is in the audit log under
// the operator's name (refusals too, with their code, and never a
// secret); removing the operator revokes the key at once. Tenants reach
// neither operators nor the log.
func TestOperators(t *testing.T) {
	e := newEnv(t)
	r := e.mustStatus(e.do("POST", "/v1/operators", e.admin, `{"name":"Alice Wang"}`), 200)
	key, _ := r.body["key"].(string)
	op, _ := r.body["operator"].(map[string]any)
	if key == "" || !strings.HasPrefix(op["id"].(string), "op_") || op["created_by"] != "admin token" {
		t.Fatalf("CreateOperator = %s", r.raw)
	}
	e.mustStatus(e.do("POST", "/v1/operators", e.admin, `{"name":"alice wang"}`), 409)
	if r := e.mustStatus(e.do("POST", "/v1/operators", e.admin, `{"name":"<script>"}`), 400); !strings.HasPrefix(r.body["message"].(string), "name:") {
		t.Errorf("a bad name: %s", r.raw)
	}

	// Alice onboards a tenant, changes it, and fails to delete another.
	body := validTenant()
	c := e.createTenantWith(key, body)
	e.mustStatus(e.do("PATCH", "/v1/tenants/"+c.id, key, `{"display_name":"Tea","app_secret":"0123456789abcdef0123456789abcdef"}`), 200)
	e.mustStatus(e.do("DELETE", "/v1/tenants/tn_nosuchtenant", key, nil), 404)
	e.mustStatus(e.do("POST", "/v1/operators", key, `{"name":"bob"}`), 200)

	log := e.mustStatus(e.do("GET", "/v1/audit", key, nil), 200)
	entries, _ := log.body["entries"].([]any)
	var lines []string
	for _, x := range entries {
		m := x.(map[string]any)
		str := func(k string) string { v, _ := m[k].(string); return v }
		lines = append(lines, str("actor")+" "+str("method")+" "+str("target")+" "+str("code")+" "+str("detail"))
	}
	want := []string{
		"Alice Wang CreateOperator op_",
		"Alice Wang DeleteTenant tn_nosuchtenant NOT_FOUND",
		"Alice Wang UpdateTenant " + c.id + " OK fields: app_secret, display_name",
		"Alice Wang CreateTenant " + c.id + " OK appid " + body["appid"].(string),
		"admin token CreateOperator  INVALID_ARGUMENT name <script>",
		"admin token CreateOperator  ALREADY_EXISTS name alice wang",
		"admin token CreateOperator op_",
	}
	if len(lines) != len(want) {
		t.Fatalf("audit log:\n%s\nwant %d entries", strings.Join(lines, "\n"), len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("audit entry %d = %q, want it to begin %q", i, lines[i], w)
		}
	}
	if strings.Contains(log.raw, "0123456789abcdef0123456789abcdef") || strings.Contains(log.raw, testSecret) {
		t.Errorf("the audit log holds a secret: %s", log.raw)
	}

	// Tenants reach neither.
	e.mustStatus(e.do("GET", "/v1/audit", c.apiKey, nil), 403)
	e.mustStatus(e.do("GET", "/v1/operators", c.apiKey, nil), 403)

	// A new key: the old one stops at once, the new one works.
	var opID = op["id"].(string)
	r = e.mustStatus(e.do("POST", "/v1/operators/"+opID+":rotateKey", e.admin, `{}`), 200)
	newKey, _ := r.body["key"].(string)
	e.mustStatus(e.do("GET", "/v1/tenants", key, nil), 401)
	e.mustStatus(e.do("GET", "/v1/tenants", newKey, nil), 200)
	key = newKey

	// Removed, Alice's key stops working at once.
	e.mustStatus(e.do("DELETE", "/v1/operators/"+opID, e.admin, nil), 200)
	e.mustStatus(e.do("GET", "/v1/tenants", key, nil), 401)
}

// TestViewerOperators: an operator added as a viewer reads what an admin
// may, and is refused every change and every send (403, saying why),
// each refusal in the audit log under their name.
func TestViewerOperators(t *testing.T) {
	e := newEnv(t)
	body := validTenant()
	c := e.createTenant(body)
	e.push(c, body["appid"].(string), "oViewerUser000000000000001", 1)
	r := e.mustStatus(e.do("POST", "/v1/operators", e.admin, `{"name":"Support","role":"ROLE_VIEWER"}`), 200)
	viewer, _ := r.body["key"].(string)
	if op, _ := r.body["operator"].(map[string]any); op["role"] != "ROLE_VIEWER" {
		t.Fatalf("CreateOperator as a viewer = %s", r.raw)
	}
	if r := e.mustStatus(e.do("POST", "/v1/operators", e.admin, `{"name":"Nobody","role":"ROLE_OWNER"}`), 400); !strings.Contains(r.raw, "role") {
		t.Errorf("an unknown role: %s", r.raw)
	}
	if r := e.mustStatus(e.do("POST", "/v1/operators", e.admin, `{"name":"Ops"}`), 200); r.body["operator"].(map[string]any)["role"] != "ROLE_ADMIN" {
		t.Errorf("an operator added without a role: %s, want ROLE_ADMIN", r.raw)
	}

	events := e.mustStatus(e.do("GET", "/v1/tenants/"+c.id+"/events", viewer, nil), 200)
	eventID := events.body["events"].([]any)[0].(map[string]any)["id"].(string)
	for _, read := range []string{"/v1/tenants", "/v1/tenants/" + c.id, "/v1/tenants/" + c.id + "/events/" + eventID,
		"/v1/tenants/" + c.id + "/calls", "/v1/tenants/" + c.id + "/pushRejections", "/v1/search?query=" + c.id,
		"/v1/operators", "/v1/audit", "/v1/components"} {
		e.mustStatus(e.do("GET", read, viewer, nil), 200)
	}
	for _, change := range []struct{ method, path, body string }{
		{"POST", "/v1/tenants", `{}`},
		{"PATCH", "/v1/tenants/" + c.id, `{"display_name":"Mine now"}`},
		{"POST", "/v1/tenants/" + c.id + ":rotateApiKey", `{}`},
		{"DELETE", "/v1/tenants/" + c.id, ""},
		{"POST", "/v1/tenants/" + c.id + "/events/" + eventID + ":redeliver", `{}`},
		{"POST", "/v1/tenants/" + c.id + "/events:sendTest", `{}`},
		{"POST", "/v1/tenants/" + c.id + "/messages:send", `{"touser":"oViewerUser000000000000001","msgtype":"text","text":{"content":"hi"}}`},
		{"POST", "/v1/operators", `{"name":"Me too"}`},
	} {
		var b any
		if change.body != "" {
			b = change.body
		}
		r := e.mustStatus(e.do(change.method, change.path, viewer, b), 403)
		if msg, _ := r.body["message"].(string); !strings.Contains(msg, "Support is a viewer") {
			t.Errorf("%s %s by a viewer says %q, want why", change.method, change.path, msg)
		}
	}
	if got := e.mustStatus(e.do("GET", "/v1/tenants/"+c.id, e.admin, nil), 200); got.body["display_name"] == "Mine now" {
		t.Error("a viewer changed a tenant")
	}
	log := e.mustStatus(e.do("GET", "/v1/audit", e.admin, nil), 200)
	refused := 0
	for _, x := range log.body["entries"].([]any) {
		if m := x.(map[string]any); m["actor"] == "Support" && m["code"] == "PERMISSION_DENIED" {
			refused++
		}
	}
	if refused != 7 { // every change above but the send, which is not audited
		t.Errorf("the audit log has %d of the viewer's refused changes, want 7:\n%s", refused, log.raw)
	}
}

// flakyAudit is the real audit store, whose writes can be made to fail.
type flakyAudit struct {
	tenant.AuditStore
	failAppend, failFinish atomic.Bool
}

func (f *flakyAudit) AppendAudit(ctx context.Context, e tenant.AuditEntry) (int64, error) {
	if f.failAppend.Load() {
		return 0, errors.New("disk full")
	}
	return f.AuditStore.AppendAudit(ctx, e)
}

func (f *flakyAudit) FinishAudit(ctx context.Context, seq int64, target, detail, code string) error {
	if f.failFinish.Load() {
		return errors.New("disk full")
	}
	return f.AuditStore.FinishAudit(ctx, seq, target, detail, code)
}

// TestNoChangeUnaudited: an admin's change is logged before it is made.
// If the log cannot be written the change is refused and nothing
// changes; if its outcome cannot be, the change stands and its entry
// says STARTED, so the log never lacks a change that was made.
func TestNoChangeUnaudited(t *testing.T) {
	audit := &flakyAudit{}
	e := newEnvWith(t, func(o *api.Options) { audit.AuditStore = o.Audit; o.Audit = audit })
	c := e.createTenant(validTenant())

	audit.failAppend.Store(true)
	r := e.mustStatus(e.do("PATCH", "/v1/tenants/"+c.id, e.admin, `{"display_name":"Unlogged"}`), 503)
	if msg, _ := r.body["message"].(string); !strings.Contains(msg, "nothing was changed") {
		t.Errorf("a change the audit log cannot take: %s", r.raw)
	}
	if got := e.mustStatus(e.do("GET", "/v1/tenants/"+c.id, e.admin, nil), 200); got.body["display_name"] == "Unlogged" {
		t.Error("a change was made that the audit log could not take")
	}
	if !strings.Contains(e.logBuf.String(), "audit log: entry not written; the change is refused") {
		t.Errorf("the refusal is not logged:\n%s", e.logBuf.String())
	}
	audit.failAppend.Store(false)

	audit.failFinish.Store(true)
	e.mustStatus(e.do("PATCH", "/v1/tenants/"+c.id, e.admin, `{"display_name":"Logged"}`), 200)
	audit.failFinish.Store(false)
	log := e.mustStatus(e.do("GET", "/v1/audit", e.admin, nil), 200)
	newest := log.body["entries"].([]any)[0].(map[string]any)
	if newest["method"] != "UpdateTenant" || newest["target"] != c.id || newest["code"] != tenant.AuditStarted {
		t.Errorf("the change whose outcome was not written is logged as %v, want UpdateTenant of %s, STARTED", newest, c.id)
	}
	if got := e.mustStatus(e.do("GET", "/v1/tenants/"+c.id, e.admin, nil), 200); got.body["display_name"] != "Logged" {
		t.Error("the change whose outcome was not logged did not stand")
	}
}
