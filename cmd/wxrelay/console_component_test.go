package main

import (
	"html"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
)

// TestConsole_Components: an operator registers a third-party platform
// in the console (a bad key is refused at its field, and no secret is
// written back), finds the two URLs to paste, makes a consent link on a
// component tenant's page, and, once the merchant has authorized, sees
// the authorization on both pages.
func TestConsole_Components(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir)
	admin := adminTokenIn(t, dir)
	c := &consoleClient{t: t, origin: "http://" + p.http}
	if a := c.signIn(admin, nil); a.status != 303 {
		t.Fatalf("sign in: %d", a.status)
	}
	if a := c.do("GET", "/console/components", nil, nil); a.status != 200 || !strings.Contains(a.body, "No third-party platform yet") {
		t.Fatalf("the empty list: %d\n%s", a.status, a.body)
	}

	form := url.Values{"csrf": {c.csrf("/console/components/new")}, "display_name": {"Agency"}, "component_appid": {"wx134c8103faa5a59e"},
		"component_secret": {"5ec2e75ec2e75ec2e75ec2e7a0b0c0d0"}, "token": {"AAAAA"}, "encoding_aes_key": {"short"}}
	a := c.do("POST", "/console/components", form, nil)
	if a.status != 400 || !strings.Contains(a.body, `id="encoding_aes_key-error"`) || strings.Contains(a.body, "5ec2e75ec2e75ec2e75ec2e7a0b0c0d0") {
		t.Fatalf("a key of 5 characters: %d, want 400 with the error at encoding_aes_key and no secret echoed\n%s", a.status, a.body)
	}
	form.Set("encoding_aes_key", strings.Repeat("A", 43))
	a = c.do("POST", "/console/components", form, nil)
	if a.status != 303 {
		t.Fatalf("register: %d\n%s", a.status, a.body)
	}
	page := a.header.Get("Location")
	cp := regexp.MustCompile(`cp_[0-9a-z]{16}`).FindString(page)
	a = c.do("GET", page, nil, nil)
	if a.status != 200 || !strings.Contains(a.body, "/wxc/"+cp+"/events") || !strings.Contains(a.body, "/wxc/"+cp+"/$APPID$") ||
		!strings.Contains(a.body, "Registered.") || strings.Contains(a.body, "5ec2e75ec2e75ec2e75ec2e7a0b0c0d0") {
		t.Fatalf("the component's page: %d\n%s", a.status, a.body)
	}
	if a := c.do("GET", "/console/components", nil, nil); !strings.Contains(a.body, `data-component="`+cp+`"`) {
		t.Errorf("the list does not show %s\n%s", cp, a.body)
	}

	// A tenant of the component, and a consent link made on its page.
	var tn struct {
		Tenant struct{ ID string } `json:"tenant"`
	}
	if code := p.api(t, "POST", "/v1/tenants", admin, `{"component_id":"`+cp+`","appid":"wxba5fad812f8e6fb9","webhook_url":"https://hooks.example.com/a"}`, &tn); code != 200 {
		t.Fatalf("create the component's tenant: %d", code)
	}
	t.Cleanup(p.sim.Close)
	if err := p.sim.AddComponent(wxsim.ComponentOptions{AppID: "wx134c8103faa5a59e", Secret: "5ec2e75ec2e75ec2e75ec2e7a0b0c0d0", Token: "AAAAA",
		EncodingAESKey: strings.Repeat("A", 43), AuthEventURL: "http://" + p.http + "/wxc/" + cp + "/events", TicketEvery: -1}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.sim.PushTicket("wx134c8103faa5a59e"); err != nil {
		t.Fatal(err)
	}
	tenantPage := "/console/tenants/" + tn.Tenant.ID
	if a := c.do("GET", tenantPage, nil, nil); !strings.Contains(a.body, `id="authorization-state">PENDING`) {
		t.Fatalf("the tenant's page before the authorization:\n%s", a.body)
	} else if !strings.Contains(a.body, "beside the new one for 24 h") {
		t.Errorf("the tenant's page does not say that a rotated webhook secret signs for 24 h")
	}
	a = c.do("POST", tenantPage+"/authorization-url", url.Values{"csrf": {c.csrf(tenantPage)}}, nil)
	m := regexp.MustCompile(`<code id="consent-url">([^<]+)</code>`).FindStringSubmatch(a.body)
	if a.status != 200 || m == nil || !strings.Contains(m[1], "componentloginpage") {
		t.Fatalf("make a consent link: %d\n%s", a.status, a.body)
	}
	consent(t, p.simURL, p.http, html.UnescapeString(m[1]), "17", "19")

	if a := c.do("GET", tenantPage, nil, nil); !strings.Contains(a.body, `id="authorization-state">AUTHORIZED`) || !strings.Contains(a.body, "17, 19") {
		t.Errorf("the tenant's page after the authorization:\n%s", a.body)
	}
	if a := c.do("GET", page, nil, nil); !strings.Contains(a.body, `data-appid="wxba5fad812f8e6fb9"`) || !strings.Contains(a.body, `href="/console/tenants/`+tn.Tenant.ID+`"`) {
		t.Errorf("the component's page does not list the authorization with its tenant:\n%s", a.body)
	}
}
