package api_test

import (
	"strings"
	"testing"
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
