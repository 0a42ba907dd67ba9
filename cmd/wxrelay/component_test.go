package main

import (
	"strings"
	"testing"

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
	body := `{"component_appid":"wx134c8103faa5a59e","component_secret":"csecret","token":"AAAAA","encoding_aes_key":"` + strings.Repeat("A", 43) + `"}`
	if code := p.api(t, "POST", "/v1/components", admin, body, &created); code != 200 {
		t.Fatalf("create component: %d", code)
	}
	c := created.Component
	if !strings.HasSuffix(c.AuthEventURL, "/wxc/"+c.ID+"/events") {
		t.Fatalf("auth_event_url = %q", c.AuthEventURL)
	}
	t.Cleanup(p.sim.Close)
	if err := p.sim.AddComponent(wxsim.ComponentOptions{AppID: "wx134c8103faa5a59e", Secret: "csecret", Token: "AAAAA",
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
