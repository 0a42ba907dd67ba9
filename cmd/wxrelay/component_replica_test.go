package main

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
	"github.com/wxrelay/wxrelay/store/storetest"
)

// countCalls counts the calls wxsim received at path, those answered
// with one of errcodes if any are given.
func countCalls(sim *wxsim.Server, path string, errcodes ...int) int {
	n := 0
	for _, c := range sim.Calls() {
		if c.Path == path && (len(errcodes) == 0 || slices.Contains(errcodes, c.Errcode)) {
			n++
		}
	}
	return n
}

// TestComponentOnTwoReplicas runs component mode on two replicas of one
// PostgreSQL database, as an agency would in production:
//   - WeChat's authorized event reaches one replica and the merchant's
//     browser the other: one authorization, one authorization.authorized
//     event, one authorizer token fetched for the sends of both;
//   - a push sealed for another component is refused at the message URL;
//   - ticket pushes stop and WeChat's clock moves 3 hours: every token
//     WeChat issued has expired, and the last good ticket gets a new
//     component token, so sends go on;
//   - a replica is killed with SIGKILL while WeChat answers its refresh
//     of the authorizer token with a new refresh token (retiring the one
//     kept): the other replica recovers it from the authorizer list, and
//     no merchant is asked to authorize again;
//   - the release check passes within its 5 s, its authorization on one
//     replica and its message on the other.
func TestComponentOnTwoReplicas(t *testing.T) {
	dsn := storetest.PostgresDSN(t) // skips unless WXRELAY_TEST_POSTGRES is set
	t.Parallel()                    // it waits out a dead replica's refresh lease, a minute
	key := make([]byte, 32)
	rand.Read(key)
	clock := clockwork.NewFakeClockAt(time.Now())
	sim := wxsim.New(wxsim.Options{Now: clock.Now})
	t.Cleanup(sim.Close)
	wx := httptest.NewServer(sim)
	defer wx.Close()
	hook, hookURL := newHookRecorder(t)
	env := []string{"WXRELAY_DB=" + dsn, "WXRELAY_SECRET_KEY=" + base64.StdEncoding.EncodeToString(key),
		"WXRELAY_WECHAT_API=" + wx.URL, "WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true"}
	ps := startReplicas(t, 2, env...)
	a, b := ps[0], ps[1]
	admin := adminTokenFor(t, t.TempDir(), env)

	const compAppID, merchant = "wx134c8103faa5a59e", "wxba5fad812f8e6fb9"
	compKey := strings.Repeat("A", 43)
	cp := registerComponent(t, a.process, admin)
	if err := sim.AddComponent(wxsim.ComponentOptions{AppID: compAppID, Secret: "c5ec2e7c5ec2e7c5ec2e7c5ec2e7c5ec", Token: "AAAAA", EncodingAESKey: compKey, TicketEvery: -1,
		AuthEventURL: "http://" + a.http + "/wxc/" + cp + "/events", MessageURL: "http://" + b.http + "/wxc/" + cp + "/$APPID$"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.PushTicket(compAppID); err != nil {
		t.Fatal(err)
	}
	var tn struct {
		Tenant struct{ ID string } `json:"tenant"`
		APIKey string              `json:"api_key"`
	}
	if code := b.api(t, "POST", "/v1/tenants", admin, `{"component_id":"`+cp+`","appid":"`+merchant+`","webhook_url":"`+hookURL+`"}`, &tn); code != 200 {
		t.Fatalf("create the component's tenant: %d", code)
	}
	// send answers the status, 0 when the replica did not answer (killed).
	send := func(p replica) int {
		req, _ := http.NewRequest("POST", "http://"+p.http+"/v1/tenants/"+tn.Tenant.ID+"/messages:send",
			strings.NewReader(`{"touser":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","msgtype":"text","text":{"content":"hello"}}`))
		req.Header.Set("Authorization", "Bearer "+tn.APIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// The consent link from one replica; WeChat's event to a, the browser
	// back to b.
	var link struct {
		URL string `json:"url"`
	}
	if code := a.api(t, "POST", "/v1/tenants/"+tn.Tenant.ID+":authorizationUrl", admin, `{}`, &link); code != 200 {
		t.Fatalf("authorizationUrl: %d", code)
	}
	consent(t, wx.URL, b.http, link.URL, "17", "19")
	for _, p := range []replica{a, b, a, b} {
		if code := send(p); code != 200 {
			t.Fatalf("a send through %s after the authorization: %d\n%s", p.http, code, p.log)
		}
	}
	if n := countCalls(sim, "/cgi-bin/component/api_authorizer_token"); n != 1 {
		t.Errorf("%d authorizer token fetches for the sends of two replicas, want 1", n)
	}
	// Both replicas' jobs act on WeChat's notice of the same grant within
	// 10 s: still one lifecycle event.
	checkAuthorizationEvent(t, hook.next(t), "authorization.authorized", tn.Tenant.ID, "[17 19]")
	time.Sleep(12 * time.Second)
	if n := hook.count(); n != 1 {
		t.Errorf("%d deliveries after the redirect and the event on two replicas, want one authorization.authorized", n)
	}

	// A push sealed with another component's appid (same Token): refused,
	// nothing stored or delivered.
	other, _ := wechat.NewCipher(compKey, "wx00000000000000c9")
	forged := wechat.Pusher{Token: "AAAAA", Mode: wechat.ModeSafe, Cipher: other}
	msg := wechat.TextMessage(wechat.FormatXML, wechat.Header{ToUserName: "gh_3c884a361561", FromUserName: "oForger", CreateTime: time.Now().Unix()}, "forged", 42)
	req, err := forged.Push(msg, time.Now().Unix(), "1234567890")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+b.http+"/wxc/"+cp+"/"+merchant+"?"+req.RawQuery(), req.ContentType, strings.NewReader(string(req.Body)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 200 {
		t.Errorf("a push sealed for another component was answered 200")
	}
	if status, answer, err := sim.PushMessage(compAppID, merchant, wechat.TextMessage(wechat.FormatXML,
		wechat.Header{ToUserName: "gh_3c884a361561", FromUserName: "oUser", CreateTime: clock.Now().Unix()}, "genuine", 43)); err != nil || status != 200 || answer != "success" {
		t.Fatalf("a genuine push: %d %q %v", status, answer, err)
	}
	if d := hook.next(t); !strings.Contains(string(d.body), `"genuine"`) || hook.count() != 2 {
		t.Errorf("after a forged and a genuine push, the webhook has %d deliveries, the last %s", hook.count(), d.body)
	}

	// The release check: its authorization goes to a, its message to b.
	rc, err := sim.StartReleaseCheck(compAppID)
	if err != nil || rc.Status != 200 || rc.Answer != "" {
		t.Fatalf("release check: %+v, %v", rc, err)
	}
	ok := false
	for deadline := time.Now().Add(5*time.Second - rc.Took); !ok && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		_, ok = sim.ReleaseReplied(rc)
	}
	if !ok {
		t.Errorf("the release check was not answered within 5 s\n%s", b.log)
	}

	// Tickets stop; WeChat's clock moves 3 hours: the component token and
	// the authorizer token have expired, the last ticket has not.
	sim.StopTickets(compAppID, true)
	clock.Advance(3 * time.Hour)
	before := countCalls(sim, "/cgi-bin/component/api_component_token")
	for _, p := range []replica{b, a} {
		if code := send(p); code != 200 {
			t.Fatalf("a send through %s 3 h after the last ticket: %d\n%s", p.http, code, p.log)
		}
	}
	if n := countCalls(sim, "/cgi-bin/component/api_component_token") - before; n != 1 {
		t.Errorf("%d component token fetches with the last good ticket, want 1", n)
	}

	// SIGKILL mid-refresh. WeChat now answers every refresh with a new
	// refresh token and retires the one it was given; the authorizer token
	// is revoked, so a's next send refreshes, and a dies while WeChat's
	// answer (with the new refresh token) is on its way.
	sim.SetRefreshRotation(compAppID, true)
	sim.InvalidateTokens(merchant)
	sim.SetLatency(3 * time.Second)
	refreshes := countCalls(sim, "/cgi-bin/component/api_authorizer_token", 0)
	go send(a)
	for deadline := time.Now().Add(15 * time.Second); countCalls(sim, "/cgi-bin/component/api_authorizer_token", 0) == refreshes; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a did not refresh the revoked authorizer token\n%s", a.log)
		}
	}
	a.cmd.Process.Signal(syscall.SIGKILL)
	a.cmd.Wait()
	sim.SetLatency(0)
	kept, _ := sim.RefreshToken(compAppID, merchant)
	lists := countCalls(sim, "/cgi-bin/component/api_get_authorizer_list")
	// b waits out a's refresh lease (a minute at most), then refreshes
	// with the refresh token the database holds, which WeChat retired.
	code := 0
	for deadline := time.Now().Add(100 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		if code = send(b); code == 200 {
			break
		}
	}
	if code != 200 {
		t.Fatalf("the survivor's send after the SIGKILL: %d\n%s", code, b.log)
	}
	if n := countCalls(sim, "/cgi-bin/component/api_get_authorizer_list") - lists; n != 1 {
		t.Errorf("%d authorizer list calls, want 1: the refresh token is recovered once", n)
		for _, c := range sim.Calls() {
			t.Logf("%s %s %s %d", c.Time.Format("15:04:05.000"), c.Path, c.AppID, c.Errcode)
		}
	}
	if now, _ := sim.RefreshToken(compAppID, merchant); now == kept {
		t.Errorf("WeChat's refresh token did not change with the survivor's refresh; the test proves nothing")
	}
	// What b keeps now is the current refresh token: the next refresh
	// needs no recovery.
	sim.InvalidateTokens(merchant)
	lists = countCalls(sim, "/cgi-bin/component/api_get_authorizer_list")
	if code := send(b); code != 200 {
		t.Fatalf("a send after another revocation: %d\n%s", code, b.log)
	}
	if n := countCalls(sim, "/cgi-bin/component/api_get_authorizer_list") - lists; n != 0 {
		t.Errorf("the refresh token kept after the recovery is not WeChat's: %d more list calls", n)
	}

}
