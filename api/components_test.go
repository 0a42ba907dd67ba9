package api_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/tenant"
)

func validComponent(appid string) map[string]any {
	return map[string]any{
		"display_name":     "Agency",
		"component_appid":  appid,
		"component_secret": "c0c0c0c0c0c0c0c0c0c0c0c0c0123456",
		"token":            "CompToken1",
		"encoding_aes_key": testAESKey,
	}
}

// Components over REST, admin only: created with the two URLs to paste and
// no secret in any answer, refused field by field, one per appid (409),
// read, listed, changed through the fields present, deleted.
func TestComponentsREST(t *testing.T) {
	e := newEnv(t)
	r := e.mustStatus(e.do("POST", "/v1/components", e.admin, validComponent("wx134c8103faa5a59e")), 200)
	c, _ := r.body["component"].(map[string]any)
	id, _ := c["id"].(string)
	if !strings.HasPrefix(id, "cp_") || len(id) != 19 {
		t.Fatalf("id = %q in %s", id, r.raw)
	}
	for field, want := range map[string]string{
		"component_appid": "wx134c8103faa5a59e",
		"auth_event_url":  "https://relay.example.com/wxc/" + id + "/events",
		"message_url":     "https://relay.example.com/wxc/" + id + "/$APPID$",
		"display_name":    "Agency",
	} {
		if c[field] != want {
			t.Errorf("%s = %v, want %q", field, c[field], want)
		}
	}
	for _, secret := range []string{"c0c0c0c0c0c0c0c0c0c0c0c0c0123456", "CompToken1", testAESKey} {
		if strings.Contains(r.raw, secret) {
			t.Errorf("the answer holds a secret: %s", r.raw)
		}
	}
	if _, ok := c["ticket"]; ok {
		t.Errorf("a ticket before any was pushed: %s", r.raw)
	}

	for _, tc := range []struct {
		field string
		value any
	}{
		{"component_appid", "wx123"},
		{"component_secret", ""},
		{"token", "a b"},
		{"encoding_aes_key", "short"},
	} {
		body := validComponent("wx00000000000000c2")
		body[tc.field] = tc.value
		r := e.mustStatus(e.do("POST", "/v1/components", e.admin, body), 400)
		if !strings.Contains(r.raw, tc.field) {
			t.Errorf("bad %s: the error does not name it: %s", tc.field, r.raw)
		}
	}
	r = e.mustStatus(e.do("POST", "/v1/components", e.admin, validComponent("wx134C8103FAA5A59E")), 409)
	if !strings.Contains(r.raw, id) {
		t.Errorf("the conflict does not name the holder: %s", r.raw)
	}

	got := e.mustStatus(e.do("GET", "/v1/components/"+id, e.admin, nil), 200)
	if got.body["id"] != id || strings.Contains(got.raw, "component-secret") {
		t.Errorf("GET = %s", got.raw)
	}
	e.mustStatus(e.do("POST", "/v1/components", e.admin, validComponent("wx00000000000000c3")), 200)
	page := e.mustStatus(e.do("GET", "/v1/components?page_size=1", e.admin, nil), 200)
	if list, _ := page.body["components"].([]any); len(list) != 1 || page.body["next_page_token"] == "" {
		t.Errorf("first page = %s", page.raw)
	}

	patched := e.mustStatus(e.do("PATCH", "/v1/components/"+id, e.admin, map[string]any{"display_name": "Renamed", "token": "NewToken22"}), 200)
	if patched.body["display_name"] != "Renamed" || patched.body["component_appid"] != "wx134c8103faa5a59e" {
		t.Errorf("PATCH = %s", patched.raw)
	}
	e.mustStatus(e.do("PATCH", "/v1/components/"+id, e.admin, map[string]any{"auth_event_url": "https://x"}), 400)
	e.mustStatus(e.do("PATCH", "/v1/components/"+id, e.admin, map[string]any{"encoding_aes_key": "short"}), 400)

	// Admins only.
	tn := e.createTenant(validTenant())
	e.mustStatus(e.do("GET", "/v1/components/"+id, tn.apiKey, nil), 403)
	e.mustStatus(e.do("GET", "/v1/components", "", nil), 401)

	e.mustStatus(e.do("DELETE", "/v1/components/"+id, e.admin, nil), 200)
	e.mustStatus(e.do("GET", "/v1/components/"+id, e.admin, nil), 404)
	e.mustStatus(e.do("GET", "/v1/components/not-an-id", e.admin, nil), 404)
}

// A tenant of a component: created with component_id and appid alone, its
// push URL the component's message URL for the appid; the mini program's
// secrets, mode and format refused by name; the component kept while the
// tenant lives; nothing sent as it until its authorization can be used.
func TestComponentTenants(t *testing.T) {
	e := newEnv(t)
	r := e.mustStatus(e.do("POST", "/v1/components", e.admin, validComponent("wx134c8103faa5a59e")), 200)
	cp := r.body["component"].(map[string]any)["id"].(string)
	body := map[string]any{"component_id": cp, "appid": "wxba5fad812f8e6fb9", "webhook_url": "https://hooks.example.com/a"}
	r = e.mustStatus(e.do("POST", "/v1/tenants", e.admin, body), 200)
	tn := r.body["tenant"].(map[string]any)
	id, key := tn["id"].(string), r.body["api_key"].(string)
	for field, want := range map[string]any{
		"component_id": cp, "push_url": "https://relay.example.com/wxc/" + cp + "/wxba5fad812f8e6fb9",
		"encrypt_mode": "ENCRYPT_MODE_SAFE", "data_format": "DATA_FORMAT_XML",
	} {
		if tn[field] != want {
			t.Errorf("%s = %v, want %v", field, tn[field], want)
		}
	}

	for field, value := range map[string]any{
		"app_secret": "5ec2e75ec2e75ec2e75ec2e75ec2e75e", "token": "Token123", "encoding_aes_key": testAESKey,
		"encrypt_mode": "ENCRYPT_MODE_SAFE", "data_format": "DATA_FORMAT_XML",
	} {
		b := map[string]any{"component_id": cp, "appid": "wx00000000000000d1", "webhook_url": "https://hooks.example.com/a", field: value}
		r := e.mustStatus(e.do("POST", "/v1/tenants", e.admin, b), 400)
		if !strings.Contains(r.raw, field) {
			t.Errorf("%s with component_id: the error does not name it: %s", field, r.raw)
		}
	}
	for _, bad := range []string{"cp_zzzzzzzzzzzzzzzz", "nonsense"} {
		b := map[string]any{"component_id": bad, "appid": "wx00000000000000d2", "webhook_url": "https://hooks.example.com/a"}
		if r := e.mustStatus(e.do("POST", "/v1/tenants", e.admin, b), 400); !strings.Contains(r.raw, "component_id") {
			t.Errorf("component %s: %s", bad, r.raw)
		}
	}
	e.mustStatus(e.do("PATCH", "/v1/tenants/"+id, e.admin, map[string]any{"token": "Token123"}), 400)
	e.mustStatus(e.do("PATCH", "/v1/tenants/"+id, e.admin, map[string]any{"component_id": "cp_aaaaaaaaaaaaaaaa"}), 400)
	if r := e.mustStatus(e.do("PATCH", "/v1/tenants/"+id, e.admin, map[string]any{"display_name": "Shop"}), 200); r.body["display_name"] != "Shop" {
		t.Errorf("PATCH display_name: %s", r.raw)
	}

	// Nothing is sent as it, and WeChat is not called.
	r = e.mustStatus(e.do("POST", "/v1/tenants/"+id+"/messages:send", key, map[string]any{"touser": "o1", "msgtype": "text", "text": map[string]any{"content": "hi"}}), 400)
	if !strings.Contains(r.raw, "component") {
		t.Errorf("a send as a component's tenant: %s", r.raw)
	}
	if n := len(e.sim.Calls()); n != 0 {
		t.Errorf("WeChat was called %d times", n)
	}

	r = e.mustStatus(e.do("DELETE", "/v1/components/"+cp, e.admin, nil), 409)
	if !strings.Contains(r.raw, id) {
		t.Errorf("deleting a component with a tenant: the conflict does not name it: %s", r.raw)
	}
	e.mustStatus(e.do("DELETE", "/v1/tenants/"+id, e.admin, nil), 200)
	if _, err := store.NewTenantStore(e.db).PurgeDeleted(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.mustStatus(e.do("DELETE", "/v1/components/"+cp, e.admin, nil), 200)
}

// TestListAuthorizersPages: an agency's authorizers are listed a page at
// a time, each page's token leading to the next, until all are listed
// once; without a page size the page is the largest (500), so a client
// that does not page sees them all; a bad token is refused at page_token.
func TestListAuthorizersPages(t *testing.T) {
	e := newEnv(t)
	r := e.mustStatus(e.do("POST", "/v1/components", e.admin, validComponent("wx134c8103faa5a59e")), 200)
	cid, _ := r.body["component"].(map[string]any)["id"].(string)
	cs := store.NewComponentStore(e.db)
	at := time.Now().UTC().Truncate(time.Second)
	const n = 120
	for i := range n {
		if err := cs.SaveAuthorization(context.Background(), &tenant.Authorization{ComponentID: tenant.ComponentID(cid),
			AuthorizerAppID: fmt.Sprintf("wxa00000000000%04d", i), State: tenant.AuthorizationAuthorized, FuncInfo: []int{17},
			RefreshToken: "refreshtoken@@@" + fmt.Sprint(i), AuthorizeTime: at, UpdateTime: at}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	var sizes []int
	if all := e.mustStatus(e.do("GET", "/v1/components/"+cid+"/authorizers", e.admin, nil), 200); len(all.body["authorizers"].([]any)) != n || all.body["next_page_token"] != nil {
		t.Errorf("without a page size: %d authorizers and next_page_token %v, want all %d and none", len(all.body["authorizers"].([]any)), all.body["next_page_token"], n)
	}
	for path := "/v1/components/" + cid + "/authorizers?page_size=50"; ; {
		page := e.mustStatus(e.do("GET", path, e.admin, nil), 200)
		auths, _ := page.body["authorizers"].([]any)
		sizes = append(sizes, len(auths))
		for _, a := range auths {
			seen[a.(map[string]any)["appid"].(string)] = true
		}
		next, _ := page.body["next_page_token"].(string)
		if next == "" || len(sizes) > 5 {
			break
		}
		path = "/v1/components/" + cid + "/authorizers?page_size=50&page_token=" + next
	}
	if len(seen) != n || fmt.Sprint(sizes) != "[50 50 20]" {
		t.Errorf("listed %d distinct authorizers in pages of %v, want %d in [50 50 20]", len(seen), sizes, n)
	}
	bad := e.mustStatus(e.do("GET", "/v1/components/"+cid+"/authorizers?page_token=nonsense", e.admin, nil), 400)
	if msg, _ := bad.body["message"].(string); !strings.HasPrefix(msg, "page_token") {
		t.Errorf("a bad page token: %s", bad.raw)
	}
}
