package wxsim_test

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
)

// The protocol notes' example component (§9).
const (
	componentAppID = "wx134c8103faa5a59e"
	componentToken = "AAAAA"
	authorizerID   = "wxba5fad812f8e6fb9"
)

var componentKey = strings.Repeat("A", 43)

// authEvent is a decrypted authorization event.
type authEvent struct {
	AppID                string `xml:"AppId"`
	InfoType             string `xml:"InfoType"`
	Ticket               string `xml:"ComponentVerifyTicket"`
	AuthorizerAppid      string `xml:"AuthorizerAppid"`
	AuthorizationCode    string `xml:"AuthorizationCode"`
	PreAuthCode          string `xml:"PreAuthCode"`
	AuthorizationExpires int64  `xml:"AuthorizationCodeExpiredTime"`
}

// eventSink plays a relay's authorization-event URL: it checks both
// signatures and the outer AppId, decrypts with the component's key (whose
// trailer must be the component's appid) and keeps the events.
type eventSink struct {
	t      *testing.T
	mu     sync.Mutex
	events []authEvent
	got    chan authEvent
}

func (s *eventSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	body, _ := io.ReadAll(r.Body)
	var outer struct {
		AppID   string `xml:"AppId"`
		Encrypt string `xml:"Encrypt"`
	}
	if err := xml.Unmarshal(body, &outer); err != nil {
		s.t.Errorf("auth event body %q: %v", body, err)
		http.Error(w, "bad body", 400)
		return
	}
	ts, nonce := q.Get("timestamp"), q.Get("nonce")
	if q.Get("encrypt_type") != "aes" || q.Get("signature") != wechat.Sign(componentToken, ts, nonce) ||
		q.Get("msg_signature") != wechat.Sign(componentToken, ts, nonce, outer.Encrypt) {
		s.t.Errorf("auth event query %v does not verify", q)
		http.Error(w, "bad signature", 401)
		return
	}
	if outer.AppID != componentAppID {
		s.t.Errorf("outer AppId %q, want the component's", outer.AppID)
	}
	c, _ := wechat.NewCipher(componentKey, componentAppID)
	inner, err := c.Decrypt(outer.Encrypt)
	if err != nil {
		s.t.Errorf("decrypt with the component's key and appid: %v", err)
		http.Error(w, "bad", 400)
		return
	}
	var e authEvent
	if err := xml.Unmarshal(inner, &e); err != nil {
		s.t.Errorf("inner %q: %v", inner, err)
	}
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
	s.got <- e
	io.WriteString(w, "success")
}

func (s *eventSink) next(t *testing.T) authEvent {
	t.Helper()
	select {
	case e := <-s.got:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no authorization event within 5 s")
		return authEvent{}
	}
}

// componentAnswer holds the open platform's answer fields.
type componentAnswer struct {
	Errcode   int    `json:"errcode"`
	Errmsg    string `json:"errmsg"`
	Token     string `json:"component_access_token"`
	PreAuth   string `json:"pre_auth_code"`
	ExpiresIn int    `json:"expires_in"`
	Info      struct {
		AppID    string `json:"authorizer_appid"`
		Token    string `json:"authorizer_access_token"`
		Refresh  string `json:"authorizer_refresh_token"`
		FuncInfo []struct {
			Category struct {
				ID int `json:"id"`
			} `json:"funcscope_category"`
		} `json:"func_info"`
	} `json:"authorization_info"`
	AuthorizerToken string `json:"authorizer_access_token"`
	Refresh         string `json:"authorizer_refresh_token"`
	Total           int    `json:"total_count"`
	List            []struct {
		AppID   string `json:"authorizer_appid"`
		Refresh string `json:"refresh_token"`
	} `json:"list"`
}

func (e *env) component(t *testing.T, path, body string) componentAnswer {
	t.Helper()
	resp, err := http.Post(e.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a componentAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return a
}

// newComponentEnv registers the example component on a simulator whose
// pushes go to a sink; tickets only when asked.
func newComponentEnv(t *testing.T) (*env, *eventSink) {
	t.Helper()
	e := newEnv(t)
	sink := &eventSink{t: t, got: make(chan authEvent, 16)}
	hook := httptest.NewServer(sink)
	t.Cleanup(hook.Close)
	t.Cleanup(e.sim.Close)
	err := e.sim.AddComponent(wxsim.ComponentOptions{AppID: componentAppID, Secret: "c5ec2e7c5ec2e7c5ec2e7c5ec2e7c5ec", Token: componentToken,
		EncodingAESKey: componentKey, AuthEventURL: hook.URL + "/wxc/cp/events", TicketEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	return e, sink
}

// The open platform end to end: a ticket pushed and verified, the
// component token from it, a consent scan whose authorized event and
// browser redirect carry the same code, the code exchanged for an
// authorizer token that sends like a mini program's, the token refreshed
// with the refresh token, the authorization listed, then revoked.
func TestComponent_AuthorizationLifecycle(t *testing.T) {
	e, sink := newComponentEnv(t)
	ticket, err := e.sim.PushTicket(componentAppID)
	if err != nil {
		t.Fatal(err)
	}
	if ev := sink.next(t); ev.InfoType != "component_verify_ticket" || ev.Ticket != ticket || ev.AppID != componentAppID {
		t.Fatalf("ticket event = %+v, want ticket %q", ev, ticket)
	}

	tokenBody := `{"component_appid":"` + componentAppID + `","component_appsecret":"c5ec2e7c5ec2e7c5ec2e7c5ec2e7c5ec","component_verify_ticket":"` + ticket + `"}`
	ct := e.component(t, "/cgi-bin/component/api_component_token", tokenBody)
	if ct.Errcode != 0 || ct.Token == "" || ct.ExpiresIn != 7200 {
		t.Fatalf("component token = %+v", ct)
	}
	q := "?component_access_token=" + url.QueryEscape(ct.Token)
	pre := e.component(t, "/cgi-bin/component/api_create_preauthcode"+q, `{"component_appid":"`+componentAppID+`"}`)
	if pre.Errcode != 0 || pre.PreAuth == "" || pre.ExpiresIn != 1800 {
		t.Fatalf("pre-auth code = %+v", pre)
	}

	// The consent page: GET shows it, POST is the merchant's scan and
	// sends the browser to redirect_uri with the code.
	page := e.url + "/cgi-bin/componentloginpage?" + url.Values{"component_appid": {componentAppID}, "pre_auth_code": {pre.PreAuth},
		"redirect_uri": {"https://relay.example/wxc/cp/authorized"}, "auth_type": {"2"}, "biz_appid": {authorizerID}}.Encode()
	resp, err := http.Get(page)
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(html), authorizerID) {
		t.Fatalf("consent page: %d %s", resp.StatusCode, html)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.PostForm(page, url.Values{"func": {"17", "19"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Host != "relay.example" || loc.Query().Get("auth_code") == "" || loc.Query().Get("expires_in") != "3600" {
		t.Fatalf("consent answer %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	code := loc.Query().Get("auth_code")
	if ev := sink.next(t); ev.InfoType != "authorized" || ev.AuthorizerAppid != authorizerID || ev.AuthorizationCode != code || ev.PreAuthCode != pre.PreAuth {
		t.Fatalf("authorized event = %+v, want code %q", ev, code)
	}
	// A pre-auth code serves one authorization.
	if _, err := e.sim.Scan(componentAppID, pre.PreAuth, authorizerID, nil); err == nil {
		t.Error("a used pre-auth code authorized again")
	}

	auth := e.component(t, "/cgi-bin/component/api_query_auth"+q, `{"component_appid":"`+componentAppID+`","authorization_code":"`+code+`"}`)
	if auth.Errcode != 0 || auth.Info.AppID != authorizerID || auth.Info.Token == "" || auth.Info.Refresh == "" || len(auth.Info.FuncInfo) != 2 || auth.Info.FuncInfo[1].Category.ID != 19 {
		t.Fatalf("query auth = %+v", auth)
	}
	// The authorizer token works on the customer-service APIs.
	checkAnswer(t, e.send(t, auth.Info.Token, `{"touser":"`+openID+`","msgtype":"text","text":{"content":"hi"}}`), 0)

	refreshBody := func(refresh string) string {
		return `{"component_appid":"` + componentAppID + `","authorizer_appid":"` + authorizerID + `","authorizer_refresh_token":"` + refresh + `"}`
	}
	next := e.component(t, "/cgi-bin/component/api_authorizer_token"+q, refreshBody(auth.Info.Refresh))
	if next.Errcode != 0 || next.AuthorizerToken == "" || next.AuthorizerToken == auth.Info.Token || next.Refresh != auth.Info.Refresh {
		t.Fatalf("authorizer token = %+v", next)
	}
	if bad := e.component(t, "/cgi-bin/component/api_authorizer_token"+q, refreshBody("refreshtoken@@@nope")); bad.Errcode != 61023 {
		t.Errorf("a wrong refresh token: errcode %d, want 61023", bad.Errcode)
	}
	// The previous authorizer token works 5 more minutes.
	e.clock.Advance(6 * time.Minute)
	if code := e.tokenErrcode(t, auth.Info.Token); code != 40001 {
		t.Errorf("the previous authorizer token after 6 min: errcode %d, want 40001", code)
	}
	if code := e.tokenErrcode(t, next.AuthorizerToken); code != 0 {
		t.Errorf("the current authorizer token: errcode %d", code)
	}

	list := e.component(t, "/cgi-bin/component/api_get_authorizer_list"+q, `{"component_appid":"`+componentAppID+`","offset":0,"count":100}`)
	if list.Total != 1 || len(list.List) != 1 || list.List[0].AppID != authorizerID || list.List[0].Refresh != auth.Info.Refresh {
		t.Errorf("authorizer list = %+v", list)
	}

	if err := e.sim.Revoke(componentAppID, authorizerID); err != nil {
		t.Fatal(err)
	}
	if ev := sink.next(t); ev.InfoType != "unauthorized" || ev.AuthorizerAppid != authorizerID {
		t.Errorf("unauthorized event = %+v", ev)
	}
	if code := e.tokenErrcode(t, next.AuthorizerToken); code != 40001 {
		t.Errorf("a revoked authorizer's token: errcode %d, want 40001", code)
	}
	if r := e.component(t, "/cgi-bin/component/api_authorizer_token"+q, refreshBody(auth.Info.Refresh)); r.Errcode != 61003 {
		t.Errorf("refresh after revocation: errcode %d, want 61003", r.Errcode)
	}
}

// The component token's errors: a ticket never pushed (61006), one over
// 12 hours old (61005), the injected whitelist and quota faults, and the
// previous component token living 5 minutes past a new one.
func TestComponent_TokenErrors(t *testing.T) {
	e, sink := newComponentEnv(t)
	body := func(ticket string) string {
		return `{"component_appid":"` + componentAppID + `","component_appsecret":"c5ec2e7c5ec2e7c5ec2e7c5ec2e7c5ec","component_verify_ticket":"` + ticket + `"}`
	}
	if a := e.component(t, "/cgi-bin/component/api_component_token", body("ticket@@@never")); a.Errcode != 61006 {
		t.Errorf("unknown ticket: errcode %d, want 61006", a.Errcode)
	}
	ticket, _ := e.sim.PushTicket(componentAppID)
	sink.next(t)
	first := e.component(t, "/cgi-bin/component/api_component_token", body(ticket))
	second := e.component(t, "/cgi-bin/component/api_component_token", body(ticket))
	if first.Errcode != 0 || second.Errcode != 0 || first.Token == second.Token {
		t.Fatalf("two component tokens: %+v, %+v", first, second)
	}
	preauth := func(tok string) int {
		return e.component(t, "/cgi-bin/component/api_create_preauthcode?component_access_token="+url.QueryEscape(tok), `{"component_appid":"`+componentAppID+`"}`).Errcode
	}
	e.clock.Advance(4 * time.Minute)
	if c := preauth(first.Token); c != 0 {
		t.Errorf("the previous component token after 4 min: %d, want 0", c)
	}
	e.clock.Advance(2 * time.Minute)
	if c := preauth(first.Token); c != 40001 {
		t.Errorf("the previous component token after 6 min: %d, want 40001", c)
	}
	for _, code := range []int{61004, 45009} {
		e.sim.SetComponentFault(componentAppID, code)
		if a := e.component(t, "/cgi-bin/component/api_component_token", body(ticket)); a.Errcode != code {
			t.Errorf("fault %d: errcode %d", code, a.Errcode)
		}
	}
	e.sim.SetComponentFault(componentAppID, 0)
	e.clock.Advance(12 * time.Hour)
	if a := e.component(t, "/cgi-bin/component/api_component_token", body(ticket)); a.Errcode != 61005 {
		t.Errorf("a ticket 12 h old: errcode %d, want 61005", a.Errcode)
	}
	// Stopped tickets are not pushed; api_start_push_ticket resumes them.
	e.sim.StopTickets(componentAppID, true)
	if t2, _ := e.sim.PushTicket(componentAppID); t2 != "" {
		t.Errorf("a ticket pushed while stopped")
	}
	if a := e.component(t, "/cgi-bin/component/api_start_push_ticket", `{"component_appid":"`+componentAppID+`","component_secret":"c5ec2e7c5ec2e7c5ec2e7c5ec2e7c5ec"}`); a.Errcode != 0 {
		t.Fatalf("start push ticket: %+v", a)
	}
	if ev := sink.next(t); ev.InfoType != "component_verify_ticket" {
		t.Errorf("after api_start_push_ticket: %+v", ev)
	}
}

// An authorizer's user message reaches the message URL with $APPID$
// filled in, safe mode and XML, signed with the component's Token and
// encrypted with its key: the trailer is the component's appid.
func TestComponent_UserMessage(t *testing.T) {
	e := newEnv(t)
	t.Cleanup(e.sim.Close)
	var got struct {
		path string
		msg  *wechat.Message
	}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := wechat.NewCipher(componentKey, componentAppID)
		recv := &wechat.Receiver{Token: componentToken, Mode: wechat.ModeSafe, Cipher: c}
		body, _ := io.ReadAll(r.Body)
		m, err := recv.Receive(r.URL.Query(), body)
		if err != nil {
			t.Errorf("receive with the component's keys: %v", err)
			http.Error(w, err.Error(), 400)
			return
		}
		got.path, got.msg = r.URL.Path, m
		io.WriteString(w, "success")
	}))
	defer hook.Close()
	if err := e.sim.AddComponent(wxsim.ComponentOptions{AppID: componentAppID, Secret: "c5ec2e7c5ec2e7c5ec2e7c5ec2e7c5ec", Token: componentToken,
		EncodingAESKey: componentKey, MessageURL: hook.URL + "/wxc/cp/$APPID$", TicketEvery: -1}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(e.url+"/wxsim/components/"+componentAppID+"/authorizers/"+authorizerID+"/message", "application/json",
		strings.NewReader(`{"openid":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","to_user_name":"gh_abc","text":"QUERY_AUTH_CODE:x","msg_id":7}`))
	if err != nil {
		t.Fatal(err)
	}
	var a struct {
		Status int    `json:"status"`
		Answer string `json:"answer"`
	}
	json.NewDecoder(resp.Body).Decode(&a)
	resp.Body.Close()
	if a.Status != 200 || a.Answer != "success" {
		t.Fatalf("push answered %+v", a)
	}
	if got.path != "/wxc/cp/"+authorizerID || got.msg == nil || got.msg.FromUserName != "o9AgO5Kd5ggOC-bXrbNODIiE3bGY" || got.msg.Format != wechat.FormatXML {
		t.Errorf("the message URL got %q, %+v", got.path, got.msg)
	}
}
