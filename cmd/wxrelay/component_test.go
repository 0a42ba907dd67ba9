package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
)

// A component registered through the REST API receives its tickets from
// wxsim, playing the open platform, at the authorization-event URL the API
// gave; the component then shows when the last one came, never the ticket.
func TestComponentReceivesTickets(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir, "WXRELAY_PUBLIC_URL=http://127.0.0.1")
	admin := adminTokenIn(t, dir)
	var created struct {
		Component struct {
			ID           string `json:"id"`
			AuthEventURL string `json:"auth_event_url"`
		} `json:"component"`
	}
	body := `{"component_appid":"wx134c8103faa5a59e","component_secret":"c5ec2e7c5ec2e7c5ec2e7c5ec2e7c5ec","token":"AAAAA","encoding_aes_key":"` + strings.Repeat("A", 43) + `"}`
	if code := p.api(t, "POST", "/v1/components", admin, body, &created); code != 200 {
		t.Fatalf("create component: %d", code)
	}
	c := created.Component
	if !strings.HasSuffix(c.AuthEventURL, "/wxc/"+c.ID+"/events") {
		t.Fatalf("auth_event_url = %q", c.AuthEventURL)
	}
	t.Cleanup(p.sim.Close)
	if err := p.sim.AddComponent(wxsim.ComponentOptions{AppID: "wx134c8103faa5a59e", Secret: "c5ec2e7c5ec2e7c5ec2e7c5ec2e7c5ec", Token: "AAAAA",
		EncodingAESKey: strings.Repeat("A", 43), AuthEventURL: "http://" + p.http + "/wxc/" + c.ID + "/events", TicketEvery: -1}); err != nil {
		t.Fatal(err)
	}
	ticket, err := p.sim.PushTicket("wx134c8103faa5a59e")
	if err != nil {
		t.Fatalf("ticket push: %v, %+v", err, p.sim.Pushes())
	}
	var got map[string]any
	if code := p.api(t, "GET", "/v1/components/"+c.ID, admin, "", &got); code != 200 {
		t.Fatalf("get component: %d", code)
	}
	tk, _ := got["ticket"].(map[string]any)
	if tk == nil || tk["receive_time"] == nil {
		t.Errorf("the component shows no ticket after one was pushed: %v", got)
	}
	for _, v := range got {
		if s, ok := v.(string); ok && strings.Contains(s, ticket) {
			t.Errorf("the API shows the ticket itself: %v", got)
		}
	}
}

// registerComponent registers the protocol notes' example component
// (appid wx134c8103faa5a59e, secret csecret, Token AAAAA, key 43 × A) on
// p and returns its id.
func registerComponent(t testing.TB, p *process, admin string) string {
	t.Helper()
	var comp struct {
		Component struct{ ID string } `json:"component"`
	}
	body := `{"component_appid":"wx134c8103faa5a59e","component_secret":"c5ec2e7c5ec2e7c5ec2e7c5ec2e7c5ec","token":"AAAAA","encoding_aes_key":"` + strings.Repeat("A", 43) + `"}`
	if code := p.api(t, "POST", "/v1/components", admin, body, &comp); code != 200 {
		t.Fatalf("create component: %d", code)
	}
	return comp.Component.ID
}

// A user's message to a mini program that authorized a component reaches
// the component's message URL, is routed to the tenant bound to its appid,
// stored, answered and delivered to that tenant's webhook like any push;
// an appid with no tenant is 404, and a component's tenant takes no push
// at a /wx/ URL.
func TestComponentTenantPushReachesWebhook(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir, "WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true")
	admin := adminTokenIn(t, dir)
	key := strings.Repeat("A", 43)
	cp := registerComponent(t, p, admin)
	hook, hookURL := newHookRecorder(t)
	var tn struct {
		Tenant struct {
			ID      string `json:"id"`
			PushURL string `json:"push_url"`
		} `json:"tenant"`
	}
	if code := p.api(t, "POST", "/v1/tenants", admin, `{"component_id":"`+cp+`","appid":"wxba5fad812f8e6fb9","webhook_url":"`+hookURL+`"}`, &tn); code != 200 {
		t.Fatalf("create the component's tenant: %d", code)
	}
	t.Cleanup(p.sim.Close)
	if err := p.sim.AddComponent(wxsim.ComponentOptions{AppID: "wx134c8103faa5a59e", Secret: "c5ec2e7c5ec2e7c5ec2e7c5ec2e7c5ec", Token: "AAAAA",
		EncodingAESKey: key, MessageURL: "http://" + p.http + "/wxc/" + cp + "/$APPID$", TicketEvery: -1}); err != nil {
		t.Fatal(err)
	}
	msg := wechat.TextMessage(wechat.FormatXML, wechat.Header{ToUserName: "gh_shop", FromUserName: "o9AgO5Kd5ggOC-bXrbNODIiE3bGY", CreateTime: time.Now().Unix()}, "where is my order?", 7001)
	status, answer, err := p.sim.PushMessage("wx134c8103faa5a59e", "wxba5fad812f8e6fb9", msg)
	if err != nil || status != 200 || answer != "success" {
		t.Fatalf("push to the message URL: %d %q %v", status, answer, err)
	}
	d := hook.next(t)
	if !strings.Contains(string(d.body), "where is my order?") || !strings.Contains(string(d.body), tn.Tenant.ID) {
		t.Errorf("the tenant's webhook got %s", d.body)
	}
	if status, _, _ := p.sim.PushMessage("wx134c8103faa5a59e", "wx00000000000000e1", msg); status != 404 {
		t.Errorf("a push for an appid with no tenant: %d, want 404", status)
	}
	resp, err := http.Post("http://"+p.http+"/wx/"+tn.Tenant.ID+"?timestamp=1&nonce=1&signature=x", "text/xml", strings.NewReader("<xml/>"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("a push to /wx/ of a component's tenant: %d, want 404", resp.StatusCode)
	}
}

// The whole authorization of a mini program, with no credential of it
// handed over: the relay receives the ticket, the merchant scans wxsim's
// consent page, the relay exchanges the code and keeps the refresh token
// (its scheduled job), and then the tenant sends through the relay with
// an authorizer token; after the merchant revokes, sends are refused
// without calling WeChat.
func TestComponentTenantSendsAfterAuthorization(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir, "WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true")
	admin := adminTokenIn(t, dir)
	hook, hookURL := newHookRecorder(t)
	key := strings.Repeat("A", 43)
	cp := registerComponent(t, p, admin)
	var tn struct {
		Tenant struct{ ID string } `json:"tenant"`
		APIKey string              `json:"api_key"`
	}
	if code := p.api(t, "POST", "/v1/tenants", admin, `{"component_id":"`+cp+`","appid":"wxba5fad812f8e6fb9","webhook_url":"`+hookURL+`"}`, &tn); code != 200 {
		t.Fatalf("create the component's tenant: %d", code)
	}
	send := func() int {
		return p.api(t, "POST", "/v1/tenants/"+tn.Tenant.ID+"/messages:send", tn.APIKey,
			`{"touser":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","msgtype":"text","text":{"content":"hello"}}`, nil)
	}
	if code := send(); code != 400 {
		t.Errorf("a send before any authorization: %d, want 400", code)
	}
	authorization := func() map[string]any {
		var got map[string]any
		if code := p.api(t, "GET", "/v1/tenants/"+tn.Tenant.ID, admin, "", &got); code != 200 {
			t.Fatalf("get tenant: %d", code)
		}
		a, _ := got["authorization"].(map[string]any)
		return a
	}
	if a := authorization(); a["state"] != "AUTHORIZATION_PENDING" {
		t.Errorf("authorization before any: %v", a)
	}
	reasons := func() string {
		var got struct {
			Health struct {
				State   string `json:"state"`
				Reasons []struct {
					Kind string `json:"kind"`
				} `json:"reasons"`
			} `json:"health"`
		}
		p.api(t, "GET", "/v1/tenants/"+tn.Tenant.ID, admin, "", &got)
		return fmt.Sprint(got.Health.State, got.Health.Reasons)
	}
	if r := reasons(); r != "STATE_DEGRADED[{KIND_AUTHORIZATION_PENDING}]" {
		t.Errorf("health before the authorization: %s", r)
	}

	t.Cleanup(p.sim.Close)
	if err := p.sim.AddComponent(wxsim.ComponentOptions{AppID: "wx134c8103faa5a59e", Secret: "c5ec2e7c5ec2e7c5ec2e7c5ec2e7c5ec", Token: "AAAAA",
		EncodingAESKey: key, AuthEventURL: "http://" + p.http + "/wxc/" + cp + "/events", TicketEvery: -1}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.sim.PushTicket("wx134c8103faa5a59e"); err != nil {
		t.Fatal(err)
	}
	// The merchant opens the relay's consent link (WeChat's page played by
	// wxsim), authorizes, and is sent back to the relay, which exchanges
	// the code at once and says so.
	var link struct {
		URL        string `json:"url"`
		ExpireTime string `json:"expire_time"`
	}
	if code := p.api(t, "POST", "/v1/tenants/"+tn.Tenant.ID+":authorizationUrl", admin, `{}`, &link); code != 200 {
		t.Fatalf("authorizationUrl: %d", code)
	}
	const mp = "https://mp.weixin.qq.com/cgi-bin/componentloginpage?"
	if !strings.HasPrefix(link.URL, mp) || !strings.Contains(link.URL, "biz_appid=wxba5fad812f8e6fb9") || !strings.Contains(link.URL, "auth_type=2") ||
		!strings.Contains(link.URL, url.QueryEscape("/wxc/"+cp+"/authorized")) || link.ExpireTime == "" {
		t.Fatalf("consent link = %+v", link)
	}
	if code := p.api(t, "POST", "/v1/tenants/"+tn.Tenant.ID+":authorizationUrl", tn.APIKey, `{}`, nil); code != 403 {
		t.Errorf("a consent link asked for with the tenant's key: %d, want 403", code)
	}
	consent(t, p.simURL, p.http, link.URL, "17", "19")

	// Authorized at once: no wait for the job (which acts on WeChat's
	// notice of the same authorization too, to the same end).
	code := send()
	if code != 200 {
		t.Fatalf("a send after the authorization: %d\n%s", code, p.stderr)
	}
	if a := authorization(); a["state"] != "AUTHORIZATION_AUTHORIZED" || fmt.Sprint(a["func_info"]) != "[17 19]" {
		t.Errorf("authorization after the consent: %v", a)
	}
	if r := reasons(); r != "STATE_OK[]" {
		t.Errorf("health after the authorization: %s", r)
	}
	var listed struct {
		Authorizers []struct {
			Appid    string `json:"appid"`
			State    string `json:"state"`
			TenantID string `json:"tenant_id"`
		} `json:"authorizers"`
	}
	if code := p.api(t, "GET", "/v1/components/"+cp+"/authorizers", admin, "", &listed); code != 200 || len(listed.Authorizers) != 1 ||
		listed.Authorizers[0].Appid != "wxba5fad812f8e6fb9" || listed.Authorizers[0].TenantID != tn.Tenant.ID || listed.Authorizers[0].State != "AUTHORIZATION_AUTHORIZED" {
		t.Errorf("the component's authorizers: %d %+v", code, listed)
	}
	// The tenant's webhook hears of it, once, though both the redirect
	// and WeChat's event exchanged the code.
	checkAuthorizationEvent(t, hook.next(t), "authorization.authorized", tn.Tenant.ID, "[17 19]")
	var sent *wxsim.Call
	for _, c := range p.sim.Calls() {
		if c.Path == "/cgi-bin/message/custom/send" {
			sent = &c
		}
	}
	if sent == nil || sent.AppID != "wxba5fad812f8e6fb9" {
		t.Fatalf("WeChat saw the send as %+v, want it made with the authorizer's token", sent)
	}

	// The authorizer token revoked under 50 concurrent sends: one refresh.
	const refreshPath = "/cgi-bin/component/api_authorizer_token"
	before := countCalls(p.sim, refreshPath)
	p.sim.InvalidateTokens("wxba5fad812f8e6fb9")
	var wg sync.WaitGroup
	codes := make([]int, 50)
	for i := range codes {
		wg.Go(func() { codes[i] = send() })
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("send %d of 50 after the token was revoked: %d", i, c)
		}
	}
	if n := countCalls(p.sim, refreshPath) - before; n != 1 {
		t.Errorf("%d authorizer token refreshes for 50 concurrent sends, want 1", n)
	}

	// The merchant authorizes again with another permission set: WeChat
	// pushes updateauthorized with a new refresh token, which replaces the
	// kept one (the next refresh needs no recovery), and the tenant hears
	// of it.
	if code := p.api(t, "POST", "/v1/tenants/"+tn.Tenant.ID+":authorizationUrl", admin, `{}`, &link); code != 200 {
		t.Fatalf("authorizationUrl: %d", code)
	}
	consent(t, p.simURL, p.http, link.URL, "17", "18", "19")
	checkAuthorizationEvent(t, hook.next(t), "authorization.updated", tn.Tenant.ID, "[17 18 19]")
	lists := countCalls(p.sim, "/cgi-bin/component/api_get_authorizer_list")
	p.sim.InvalidateTokens("wxba5fad812f8e6fb9")
	if code := send(); code != 200 {
		t.Fatalf("a send after the new authorization: %d", code)
	}
	if n := countCalls(p.sim, "/cgi-bin/component/api_get_authorizer_list") - lists; n != 0 {
		t.Errorf("the refresh after updateauthorized needed the authorizer list %d times: the new refresh token was not kept", n)
	}

	if err := p.sim.Revoke("wx134c8103faa5a59e", "wxba5fad812f8e6fb9"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		if code = send(); code == 400 || time.Now().After(deadline) {
			break
		}
	}
	if code != 400 {
		t.Errorf("a send after the revocation: %d, want 400", code)
	}
	// The job records WeChat's notice within its 10 s period.
	for deadline := time.Now().Add(40 * time.Second); authorization()["state"] != "AUTHORIZATION_REVOKED"; time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("authorization after the revocation: %v", authorization())
		}
	}
	checkAuthorizationEvent(t, hook.next(t), "authorization.revoked", tn.Tenant.ID, "[17 18 19]")
	if r := reasons(); r != "STATE_FAILING[{KIND_AUTHORIZATION_REVOKED}]" {
		t.Errorf("health after the revocation: %s", r)
	}
	var comp struct {
		Health struct {
			State string `json:"state"`
		} `json:"health"`
	}
	if p.api(t, "GET", "/v1/components/"+cp, admin, "", &comp); comp.Health.State != "STATE_OK" {
		t.Errorf("the component's health with a fresh ticket: %+v", comp)
	}
	if n := hook.count(); n != 3 {
		t.Errorf("the tenant's webhook got %d deliveries, want the 3 lifecycle events", n)
	}
}

// checkAuthorizationEvent checks that d is a lifecycle event of type typ for tenant
// tid, naming the permission sets funcs, signed with the tenant's key.
func checkAuthorizationEvent(t *testing.T, d delivered, typ, tid, funcs string) {
	t.Helper()
	var body struct {
		Type     string `json:"type"`
		TenantID string `json:"tenant_id"`
		AppID    string `json:"appid"`
		Data     struct {
			State    string `json:"state"`
			FuncInfo []int  `json:"func_info"`
		} `json:"data"`
	}
	if err := json.Unmarshal(d.body, &body); err != nil || body.Type != typ || body.TenantID != tid ||
		body.AppID != "wxba5fad812f8e6fb9" || fmt.Sprint(body.Data.FuncInfo) != funcs {
		t.Errorf("delivered %s, want a %s event of %s with func_info %s", d.body, typ, tid, funcs)
	}
	if d.header.Get("webhook-signature") == "" || d.header.Get("webhook-id") == "" {
		t.Errorf("a lifecycle event delivered without Standard Webhooks headers: %v", d.header)
	}
}

// WeChat's full-network release check, played by wxsim against the real
// binary: its test mini program authorizes the component, its test user
// sends QUERY_AUTH_CODE:<code> to the message URL, and the relay answers
// the push empty at once and sends <code>_from_api back through
// custom/send with the test mini program's authorizer token, within the
// check's 5 s, with no tenant and no code of the platform's own.
func TestComponentPassesReleaseCheck(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir)
	admin := adminTokenIn(t, dir)
	cp := registerComponent(t, p, admin)
	t.Cleanup(p.sim.Close)
	if err := p.sim.AddComponent(wxsim.ComponentOptions{AppID: "wx134c8103faa5a59e", Secret: "c5ec2e7c5ec2e7c5ec2e7c5ec2e7c5ec", Token: "AAAAA",
		EncodingAESKey: strings.Repeat("A", 43), TicketEvery: -1,
		AuthEventURL: "http://" + p.http + "/wxc/" + cp + "/events", MessageURL: "http://" + p.http + "/wxc/" + cp + "/$APPID$"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.sim.PushTicket("wx134c8103faa5a59e"); err != nil {
		t.Fatal(err)
	}
	rc, err := p.sim.StartReleaseCheck("wx134c8103faa5a59e")
	if err != nil {
		t.Fatalf("release check: %v (%+v)", err, p.sim.Pushes())
	}
	if rc.Status != 200 || rc.Answer != "" {
		t.Errorf("the check's push was answered %d %q, want 200 and an empty body", rc.Status, rc.Answer)
	}
	var replied time.Time
	ok := false
	for deadline := time.Now().Add(5*time.Second - rc.Took); !ok && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		replied, ok = p.sim.ReleaseReplied(rc)
	}
	if !ok {
		t.Fatalf("no %s%s sent to the test user within the check's 5 s; WeChat saw %+v\n%s", rc.Code, "_from_api", p.sim.Calls(), p.stderr)
	}
	t.Logf("answered in %v, replied %v after the push", rc.Took, replied.Sub(rc.Sent))

	// The test mini program's authorization is kept like any other's, and
	// bound to no tenant.
	var listed struct {
		Authorizers []struct {
			Appid    string `json:"appid"`
			State    string `json:"state"`
			TenantID string `json:"tenant_id"`
		} `json:"authorizers"`
	}
	if code := p.api(t, "GET", "/v1/components/"+cp+"/authorizers", admin, "", &listed); code != 200 || len(listed.Authorizers) != 1 ||
		listed.Authorizers[0].Appid != "wxd101a85aa106f53e" || listed.Authorizers[0].State != "AUTHORIZATION_AUTHORIZED" || listed.Authorizers[0].TenantID != "" {
		t.Errorf("the component's authorizers after the check: %d %+v", code, listed)
	}
}

// consent plays the merchant who opens link (a consent link the relay
// made), authorizes the permission sets funcs on WeChat's page (wxsim's,
// at simURL) and is sent back to the relay at relayAddr, whose page must
// name the mini program.
func consent(t *testing.T, simURL, relayAddr, link string, funcs ...string) {
	t.Helper()
	comeBack(t, relayAddr, authorize(t, simURL, link, funcs...))
}

// authorize plays the merchant on WeChat's consent page, and returns
// where WeChat sends the browser back.
func authorize(t *testing.T, simURL, link string, funcs ...string) *url.URL {
	t.Helper()
	const mp = "https://mp.weixin.qq.com/cgi-bin/componentloginpage?"
	consentPage := simURL + "/cgi-bin/componentloginpage?" + strings.TrimPrefix(link, mp)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.PostForm(consentPage, url.Values{"func": funcs})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != 302 {
		t.Fatalf("consent: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return back
}

// comeBack follows WeChat's redirect back to the relay at relayAddr (the
// public URL is the relay's own address here), whose page must name the
// mini program.
func comeBack(t *testing.T, relayAddr string, back *url.URL) {
	t.Helper()
	resp, err := http.Get("http://" + relayAddr + back.Path + "?" + back.RawQuery)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "wxba5fad812f8e6fb9") {
		t.Fatalf("the page the merchant comes back to: %d %s", resp.StatusCode, page)
	}
}

// WeChat's authorized event acted on before the merchant's browser comes
// back, which then comes back twice (a reload): the same one authorization
// and one lifecycle event as when the browser comes first.
func TestComponentAuthorizationEventFirst(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir, "WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true")
	admin := adminTokenIn(t, dir)
	hook, hookURL := newHookRecorder(t)
	cp := registerComponent(t, p, admin)
	var tn struct {
		Tenant struct{ ID string } `json:"tenant"`
	}
	if code := p.api(t, "POST", "/v1/tenants", admin, `{"component_id":"`+cp+`","appid":"wxba5fad812f8e6fb9","webhook_url":"`+hookURL+`"}`, &tn); code != 200 {
		t.Fatalf("create the component's tenant: %d", code)
	}
	t.Cleanup(p.sim.Close)
	if err := p.sim.AddComponent(wxsim.ComponentOptions{AppID: "wx134c8103faa5a59e", Secret: "c5ec2e7c5ec2e7c5ec2e7c5ec2e7c5ec", Token: "AAAAA",
		EncodingAESKey: strings.Repeat("A", 43), AuthEventURL: "http://" + p.http + "/wxc/" + cp + "/events", TicketEvery: -1}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.sim.PushTicket("wx134c8103faa5a59e"); err != nil {
		t.Fatal(err)
	}
	var link struct {
		URL string `json:"url"`
	}
	if code := p.api(t, "POST", "/v1/tenants/"+tn.Tenant.ID+":authorizationUrl", admin, `{}`, &link); code != 200 {
		t.Fatalf("authorizationUrl: %d", code)
	}
	back := authorize(t, p.simURL, link.URL, "17", "19")
	checkAuthorizationEvent(t, hook.next(t), "authorization.authorized", tn.Tenant.ID, "[17 19]")
	comeBack(t, p.http, back)
	comeBack(t, p.http, back)
	time.Sleep(time.Second) // what a second event would take to be delivered
	if n := hook.count(); n != 1 {
		t.Errorf("%d deliveries after the event and two redirects, want one authorization.authorized", n)
	}
}
