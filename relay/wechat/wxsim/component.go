package wxsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
)

// The open platform's lifetimes (protocol §9).
const (
	// DefaultTicketEvery is how often WeChat pushes a component_verify_ticket.
	DefaultTicketEvery = 10 * time.Minute
	ticketLifetime     = 12 * time.Hour
	// preAuthLifetime: the docs give 600 and 1800 s; wxsim takes the
	// longer, so that a relay caching codes for 10 minutes is not caught
	// by luck, and says expires_in.
	preAuthLifetime  = 30 * time.Minute
	authCodeLifetime = time.Hour
	// maxAuthorizerList is api_get_authorizer_list's largest page.
	maxAuthorizerList = 500
)

// ComponentOptions registers a third-party platform (a component).
type ComponentOptions struct {
	AppID          string `json:"appid"`
	Secret         string `json:"secret"`
	Token          string `json:"token"`            // the component's message Token
	EncodingAESKey string `json:"encoding_aes_key"` // 43 characters
	// AuthEventURL receives tickets and authorization events; MessageURL,
	// in which $APPID$ stands for the authorizer's appid, receives the
	// authorizers' users' messages. Either may be empty: nothing is pushed
	// there.
	AuthEventURL string `json:"auth_event_url"`
	MessageURL   string `json:"message_url"`
	// TicketEvery is how often a ticket is pushed on the real clock: zero
	// means DefaultTicketEvery, negative means only when asked (PushTicket).
	TicketEvery time.Duration `json:"ticket_every"`
}

// component is a registered third-party platform and its state.
type component struct {
	opts   ComponentOptions
	cipher *wechat.Cipher

	tickets    []issuedTicket // every ticket pushed, oldest first
	ticketsOff bool           // pushes stopped (StopTickets)
	fault      int            // errcode api_component_token answers while set
	// rotate: every api_authorizer_token answers a new refresh token,
	// and the one it was called with stops working (SetRefreshRotation).
	rotate bool

	tokens  []*token // component access tokens, oldest first
	current *token

	preAuth     map[string]time.Time // pre_auth_code → expiry
	codes       map[string]*authCode
	authorizers map[string]*authorization // by authorizer appid

	stop chan struct{} // ends the ticket schedule
}

type issuedTicket struct {
	value string
	at    time.Time
}

// authCode is an authorization code from the consent page. It can be
// exchanged until it expires; each exchange issues a new authorizer token.
type authCode struct {
	authorizer string
	expires    time.Time
}

// authorization is an authorizer's grant to a component.
type authorization struct {
	appid    string
	refresh  string
	funcInfo []int
	authTime time.Time
	revoked  bool
}

// Push is a push wxsim made to a relay: a ticket, an authorization event or
// an authorizer's user message, with the answer it got.
type Push struct {
	Time   time.Time `json:"time"`
	URL    string    `json:"url"`
	Kind   string    `json:"kind"` // component_verify_ticket, authorized, updateauthorized, unauthorized, message
	Status int       `json:"status"`
	Answer string    `json:"answer"`
	Error  string    `json:"error,omitempty"`
}

// componentState is the part of Server that plays the open platform.
type componentState struct {
	components map[string]*component // by component appid
	ctokens    map[string]*token     // component access tokens by value
	pushes     []Push
	pushClient *http.Client
	loops      sync.WaitGroup
}

// AddComponent registers a component, or replaces a registered one's
// options (its tokens and authorizations stay), and starts its ticket
// schedule.
func (s *Server) AddComponent(o ComponentOptions) error {
	if o.AppID == "" || o.Secret == "" || o.Token == "" {
		return errors.New("wxsim: a component needs appid, secret and token")
	}
	cipher, err := wechat.NewCipher(o.EncodingAESKey, o.AppID)
	if err != nil {
		return fmt.Errorf("wxsim: component %s: %w", o.AppID, err)
	}
	s.mu.Lock()
	c, ok := s.comp.components[o.AppID]
	if ok {
		close(c.stop)
		c.opts, c.cipher, c.stop = o, cipher, make(chan struct{})
	} else {
		c = &component{opts: o, cipher: cipher, preAuth: map[string]time.Time{}, codes: map[string]*authCode{},
			authorizers: map[string]*authorization{}, stop: make(chan struct{})}
		s.comp.components[o.AppID] = c
	}
	stop := c.stop
	s.mu.Unlock()
	if every := cmpOr(o.TicketEvery, DefaultTicketEvery); every > 0 {
		s.comp.loops.Go(func() { s.ticketSchedule(o.AppID, every, stop) })
	}
	return nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// ticketSchedule pushes a ticket every so often until stop closes.
func (s *Server) ticketSchedule(appid string, every time.Duration, stop chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.PushTicket(appid) // an error is in the push record
		}
	}
}

// Close stops the components' ticket schedules.
func (s *Server) Close() {
	s.mu.Lock()
	for _, c := range s.comp.components {
		select {
		case <-c.stop:
		default:
			close(c.stop)
		}
	}
	s.mu.Unlock()
	s.comp.loops.Wait()
}

// StopTickets stops (off) or resumes the ticket pushes of component
// appid, as WeChat's pushes stop for an hour now and then.
func (s *Server) StopTickets(appid string, off bool) error {
	return s.setComponent(appid, func(c *component) { c.ticketsOff = off })
}

// SetComponentFault makes api_component_token answer errcode (61004,
// 45009, …) for component appid until it is set to 0.
func (s *Server) SetComponentFault(appid string, errcode int) error {
	return s.setComponent(appid, func(c *component) { c.fault = errcode })
}

// SetRefreshRotation makes every api_authorizer_token call of component
// appid answer a new authorizer_refresh_token and retire the one it was
// called with (on), or keep it (off, the default). WeChat may change a
// refresh token (protocol §9: store whatever comes back); rotating on
// every call is the harshest case: a relay that loses the new one (killed
// between WeChat's answer and its write) holds a dead one, and must
// recover it from api_get_authorizer_list.
func (s *Server) SetRefreshRotation(appid string, on bool) error {
	return s.setComponent(appid, func(c *component) { c.rotate = on })
}

// setComponent applies set to component appid under the lock.
func (s *Server) setComponent(appid string, set func(*component)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.comp.components[appid]
	if !ok {
		return fmt.Errorf("wxsim: no component %s", appid)
	}
	set(c)
	return nil
}

// RefreshToken returns authorizer's current refresh token at component
// appid, as api_get_authorizer_list would.
func (s *Server) RefreshToken(appid, authorizer string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.comp.components[appid]
	if !ok || c.authorizers[authorizer] == nil || c.authorizers[authorizer].revoked {
		return "", fmt.Errorf("wxsim: %s has not authorized component %s", authorizer, appid)
	}
	return c.authorizers[authorizer].refresh, nil
}

// PushTicket pushes a new component_verify_ticket to the component's
// authorization-event URL, unless its tickets are stopped, and returns it.
func (s *Server) PushTicket(appid string) (string, error) {
	s.mu.Lock()
	c, ok := s.comp.components[appid]
	if !ok {
		s.mu.Unlock()
		return "", fmt.Errorf("wxsim: no component %s", appid)
	}
	if c.ticketsOff {
		s.mu.Unlock()
		return "", nil
	}
	now := s.now()
	t := issuedTicket{value: "ticket@@@" + randomID(48), at: now}
	c.tickets = append(c.tickets, t)
	s.mu.Unlock()
	inner := authEventXML(appid, now, "component_verify_ticket", field{"ComponentVerifyTicket", t.value})
	return t.value, s.pushAuthEvent(c, "component_verify_ticket", inner)
}

// field is one element of an authorization event.
type field struct{ name, value string }

// authEventXML is the decrypted body of an authorization event.
func authEventXML(component string, at time.Time, infoType string, fields ...field) []byte {
	var b bytes.Buffer
	b.WriteString("<xml>")
	for _, f := range append([]field{{"AppId", component}, {"CreateTime", strconv.FormatInt(at.Unix(), 10)}, {"InfoType", infoType}}, fields...) {
		if f.name == "CreateTime" || strings.HasSuffix(f.name, "ExpiredTime") {
			fmt.Fprintf(&b, "<%s>%s</%s>", f.name, f.value, f.name)
			continue
		}
		fmt.Fprintf(&b, "<%s><![CDATA[%s]]></%s>", f.name, f.value, f.name)
	}
	b.WriteString("</xml>")
	return b.Bytes()
}

// pushAuthEvent encrypts inner with c's keys and posts it to c's
// authorization-event URL as WeChat does: safe mode, XML, the outer body
// holding AppId and Encrypt, the query both signatures.
func (s *Server) pushAuthEvent(c *component, kind string, inner []byte) error {
	if c.opts.AuthEventURL == "" {
		return nil
	}
	enc, err := c.cipher.Encrypt(inner)
	if err != nil {
		return err
	}
	ts, nonce := strconv.FormatInt(s.now().Unix(), 10), randomDigits(10)
	q := url.Values{
		"signature":     {wechat.Sign(c.opts.Token, ts, nonce)},
		"timestamp":     {ts},
		"nonce":         {nonce},
		"encrypt_type":  {"aes"},
		"msg_signature": {wechat.Sign(c.opts.Token, ts, nonce, enc)},
	}
	body := fmt.Sprintf("<xml><AppId><![CDATA[%s]]></AppId><Encrypt><![CDATA[%s]]></Encrypt></xml>", c.opts.AppID, enc)
	return s.post(c.opts.AuthEventURL, q.Encode(), "text/xml", []byte(body), kind)
}

// post sends a push and records it with its answer.
func (s *Server) post(target, rawQuery, contentType string, body []byte, kind string) error {
	u := target
	if strings.Contains(u, "?") {
		u += "&" + rawQuery
	} else {
		u += "?" + rawQuery
	}
	p := Push{Time: s.now(), URL: target, Kind: kind}
	resp, err := s.comp.pushClient.Post(u, contentType, bytes.NewReader(body))
	if err == nil {
		var answer bytes.Buffer
		answer.ReadFrom(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		p.Status, p.Answer = resp.StatusCode, answer.String()
		if resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("wxsim: %s push answered %d %q", kind, resp.StatusCode, p.Answer)
		}
	}
	if err != nil {
		p.Error = err.Error()
	}
	s.mu.Lock()
	s.comp.pushes = append(s.comp.pushes, p)
	s.mu.Unlock()
	return err
}

// Pushes returns the pushes wxsim made, oldest first.
func (s *Server) Pushes() []Push {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.comp.pushes)
}

// randomDigits is a nonce as WeChat sends them: decimal digits.
func randomDigits(n int) string {
	b := []byte(randomID(n))
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	return string(b)
}

// componentTokenRequest is api_component_token's body.
type componentTokenRequest struct {
	AppID  string `json:"component_appid"`
	Secret string `json:"component_appsecret"`
	Ticket string `json:"component_verify_ticket"`
}

// componentToken serves POST /cgi-bin/component/api_component_token: a new
// component access token for a good ticket (pushed within 12 hours); the
// previous token works 5 more minutes (protocol §9).
func (s *Server) componentToken(r *http.Request, rec *Call) (any, error) {
	var req componentTokenRequest
	if err := readJSON(r, rec, &req); err != nil {
		return nil, err
	}
	rec.AppID = req.AppID
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.comp.components[req.AppID]
	switch {
	case req.AppID == "":
		return nil, fail(codeAppIDMissing, "component_appid missing")
	case !ok:
		return nil, failf(codeInvalidComponent, "component %q is not registered", req.AppID)
	case req.Secret != c.opts.Secret:
		return nil, fail(codeInvalidSecret, "wrong component_appsecret")
	case c.fault != 0:
		return nil, failf(c.fault, "fault set on the component")
	}
	now := s.now()
	i := slices.IndexFunc(c.tickets, func(t issuedTicket) bool { return t.value == req.Ticket })
	switch {
	case i < 0:
		return nil, fail(codeTicketInvalid, "ticket never pushed")
	case now.Sub(c.tickets[i].at) >= ticketLifetime:
		return nil, failf(codeTicketExpired, "ticket pushed %s ago", now.Sub(c.tickets[i].at))
	}
	if c.current != nil {
		c.current.retire(now.Add(tokenOverlap))
	}
	t := &token{value: randomID(tokenBytes), appid: c.opts.AppID, expires: now.Add(tokenLifetime)}
	t.end = t.expires
	c.current = t
	c.tokens = append(c.tokens, t)
	s.comp.ctokens[t.value] = t
	s.countIssue(c.opts.AppID, func(tc *TokenCounts) { tc.Component++ })
	return struct {
		Token     string `json:"component_access_token"`
		ExpiresIn int    `json:"expires_in"`
	}{t.value, int(tokenLifetime / time.Second)}, nil
}

// componentOf resolves an open-platform call's component_access_token and
// checks the body's component_appid against it. s.mu must be held.
func (s *Server) componentOf(r *http.Request, rec *Call, appid string) (*component, error) {
	v := r.URL.Query().Get("component_access_token")
	if v == "" {
		return nil, fail(codeTokenMissing, "component_access_token missing")
	}
	t, ok := s.comp.ctokens[v]
	if !ok {
		return nil, fail(codeInvalidCredential, "component_access_token never issued")
	}
	if err := t.check(s.now()); err != nil {
		return nil, err
	}
	rec.AppID = t.appid
	if appid != t.appid {
		return nil, failf(codeInvalidComponent, "component_appid %q is not the token's component", appid)
	}
	return s.comp.components[t.appid], nil
}

// componentCall does what every call made with a component_access_token
// starts with: its body read into req, s.mu taken (the returned unlock
// releases it), and the token resolved for the body's component_appid,
// which *appid holds once the body is read.
func (s *Server) componentCall(r *http.Request, rec *Call, req any, appid *string) (*component, func(), error) {
	if err := readJSON(r, rec, req); err != nil {
		return nil, func() {}, err
	}
	s.mu.Lock()
	c, err := s.componentOf(r, rec, *appid)
	return c, s.mu.Unlock, err
}

// preAuthCode serves POST /cgi-bin/component/api_create_preauthcode.
func (s *Server) preAuthCode(r *http.Request, rec *Call) (any, error) {
	var req struct {
		AppID string `json:"component_appid"`
	}
	c, unlock, err := s.componentCall(r, rec, &req, &req.AppID)
	defer unlock()
	if err != nil {
		return nil, err
	}
	code := "preauthcode@@@" + randomID(48)
	c.preAuth[code] = s.now().Add(preAuthLifetime)
	return struct {
		Code      string `json:"pre_auth_code"`
		ExpiresIn int    `json:"expires_in"`
	}{code, int(preAuthLifetime / time.Second)}, nil
}

// Scan plays a merchant who, on the consent page opened with preAuthCode,
// authorizes component to act for the mini program authorizer with the
// permission sets funcInfo. The pre-auth code is used up. It pushes
// authorized (or updateauthorized, for a grant whose permission sets
// changed) and returns the authorization code the consent page hands the
// browser. Every authorization gets a new refresh token.
func (s *Server) Scan(componentAppID, preAuthCode, authorizer string, funcInfo []int) (string, error) {
	s.mu.Lock()
	c, ok := s.comp.components[componentAppID]
	if !ok {
		s.mu.Unlock()
		return "", fmt.Errorf("wxsim: no component %s", componentAppID)
	}
	now := s.now()
	exp, ok := c.preAuth[preAuthCode]
	if !ok || !now.Before(exp) {
		s.mu.Unlock()
		return "", errors.New("wxsim: the pre_auth_code expired or was never issued; ask for a new consent link")
	}
	delete(c.preAuth, preAuthCode)
	kind, code, expires := s.grant(c, authorizer, funcInfo, now)
	s.mu.Unlock()

	inner := authEventXML(componentAppID, now, kind,
		field{"AuthorizerAppid", authorizer}, field{"AuthorizationCode", code},
		field{"AuthorizationCodeExpiredTime", strconv.FormatInt(expires.Unix(), 10)}, field{"PreAuthCode", preAuthCode})
	// The browser's redirect does not wait for the event: a relay must
	// cope with either coming first.
	go s.pushAuthEvent(c, kind, inner)
	return code, nil
}

// grant records authorizer's grant of funcInfo to c, with a new refresh
// token, and issues an authorization code for it; it returns the event's
// kind, the code and its expiry. s.mu must be held.
func (s *Server) grant(c *component, authorizer string, funcInfo []int, now time.Time) (kind, code string, expires time.Time) {
	kind = "authorized"
	a := c.authorizers[authorizer]
	if a != nil && !a.revoked && !slices.Equal(a.funcInfo, funcInfo) {
		kind = "updateauthorized"
	}
	a = &authorization{appid: authorizer, refresh: "refreshtoken@@@" + randomID(48), funcInfo: slices.Clone(funcInfo), authTime: now}
	c.authorizers[authorizer] = a
	if _, ok := s.apps[authorizer]; !ok {
		// The authorizer's tokens come from the component only.
		s.apps[authorizer] = &app{id: authorizer, secret: randomID(24)}
	}
	return kind, s.issueCode(c, authorizer, now), now.Add(authCodeLifetime)
}

// issueCode issues an authorization code of authorizer's grant to c.
// s.mu must be held.
func (s *Server) issueCode(c *component, authorizer string, now time.Time) string {
	code := "queryauthcode@@@" + randomID(48)
	c.codes[code] = &authCode{authorizer: authorizer, expires: now.Add(authCodeLifetime)}
	return code
}

// ReleaseCheck is one run of WeChat's full-network release check of a
// component (StartReleaseCheck).
type ReleaseCheck struct {
	Component string `json:"component_appid"`
	Code      string `json:"code"`
	OpenID    string `json:"openid"` // the test user the reply must go to
	// Status and Answer are the message URL's answer to the push: the
	// check wants 200 and an empty body (or "success") within 5 s.
	Status int           `json:"status"`
	Answer string        `json:"answer"`
	Took   time.Duration `json:"took"`
	Sent   time.Time     `json:"sent"` // when the push was made, on wxsim's clock
}

// StartReleaseCheck plays WeChat's full-network release check of
// component (protocol §9): the test mini program ReleaseTestAppID
// authorizes the component with the customer-service permission set
// (authorized is pushed), then a test user sends it the text
// QUERY_AUTH_CODE:<code>, pushed to the component's message URL. It
// returns the answer; ReleaseReplied says whether the reply came.
func (s *Server) StartReleaseCheck(component string) (ReleaseCheck, error) {
	s.mu.Lock()
	c, ok := s.comp.components[component]
	if !ok {
		s.mu.Unlock()
		return ReleaseCheck{}, fmt.Errorf("wxsim: no component %s", component)
	}
	now := s.now()
	kind, authCode, expires := s.grant(c, wechat.ReleaseTestAppID, []int{17, 18, wechat.FuncCustomerService}, now)
	code := s.issueCode(c, wechat.ReleaseTestAppID, now)
	s.mu.Unlock()
	err := s.pushAuthEvent(c, kind, authEventXML(component, now, kind,
		field{"AuthorizerAppid", wechat.ReleaseTestAppID}, field{"AuthorizationCode", authCode},
		field{"AuthorizationCodeExpiredTime", strconv.FormatInt(expires.Unix(), 10)}))
	if err != nil {
		return ReleaseCheck{}, err
	}
	rc := ReleaseCheck{Component: component, Code: code, OpenID: "o" + randomID(27), Sent: s.now()}
	start := time.Now()
	msg := wechat.TextMessage(wechat.FormatXML, wechat.Header{ToUserName: "gh_3c884a361561", FromUserName: rc.OpenID, CreateTime: now.Unix()},
		wechat.ReleaseCheckText(code), time.Now().UnixNano())
	rc.Status, rc.Answer, err = s.PushMessage(component, wechat.ReleaseTestAppID, msg)
	rc.Took = time.Since(start)
	return rc, err
}

// ReleaseReplied reports when the reply of release check rc came: a
// custom/send of the text <code>_from_api to its test user, made with
// the test mini program's authorizer token. The check passes if it came
// and the push was answered empty, at once.
func (s *Server) ReleaseReplied(rc ReleaseCheck) (time.Time, bool) {
	want := rc.Code + wechat.ReleaseCheckReplyEnd
	for _, c := range s.Calls() {
		if c.Path != "/cgi-bin/message/custom/send" || c.AppID != wechat.ReleaseTestAppID || c.Errcode != 0 {
			continue
		}
		var m struct {
			ToUser  string `json:"touser"`
			MsgType string `json:"msgtype"`
			Text    struct {
				Content string `json:"content"`
			} `json:"text"`
		}
		if json.Unmarshal(c.Body, &m) == nil && m.ToUser == rc.OpenID && m.MsgType == "text" && m.Text.Content == want {
			return c.Time, true
		}
	}
	return time.Time{}, false
}

// Revoke plays a merchant who withdraws component's authorization: its
// authorizer tokens and refresh token stop working, and unauthorized is
// pushed.
func (s *Server) Revoke(componentAppID, authorizer string) error {
	s.mu.Lock()
	c, ok := s.comp.components[componentAppID]
	var a *authorization
	if ok {
		a = c.authorizers[authorizer]
	}
	if a == nil || a.revoked {
		s.mu.Unlock()
		return fmt.Errorf("wxsim: %s has not authorized component %s", authorizer, componentAppID)
	}
	now := s.now()
	a.revoked = true
	if ap := s.apps[authorizer]; ap != nil {
		for _, t := range ap.tokens {
			t.retire(now)
		}
	}
	s.mu.Unlock()
	return s.pushAuthEvent(c, "unauthorized", authEventXML(componentAppID, now, "unauthorized", field{"AuthorizerAppid", authorizer}))
}

// PushMessage pushes msg, an authorizer's user message in XML (see
// wechat.TextMessage), to the component's message URL with $APPID$ filled
// in, encrypted with the component's keys as WeChat does, and returns the
// answer's status and body.
func (s *Server) PushMessage(componentAppID, authorizer string, msg []byte) (int, string, error) {
	s.mu.Lock()
	c, ok := s.comp.components[componentAppID]
	s.mu.Unlock()
	if !ok {
		return 0, "", fmt.Errorf("wxsim: no component %s", componentAppID)
	}
	if c.opts.MessageURL == "" {
		return 0, "", fmt.Errorf("wxsim: component %s has no message URL", componentAppID)
	}
	p := wechat.Pusher{Token: c.opts.Token, Mode: wechat.ModeSafe, Cipher: c.cipher}
	req, err := p.Push(msg, s.now().Unix(), randomDigits(10))
	if err != nil {
		return 0, "", err
	}
	target := strings.ReplaceAll(c.opts.MessageURL, "$APPID$", authorizer)
	err = s.post(target, req.RawQuery(), req.ContentType, req.Body, "message")
	pushes := s.Pushes()
	last := pushes[len(pushes)-1]
	return last.Status, last.Answer, err
}

// funcInfo is WeChat's shape of a permission set list.
type funcScope struct {
	Category struct {
		ID int `json:"id"`
	} `json:"funcscope_category"`
}

func funcScopes(ids []int) []funcScope {
	out := make([]funcScope, len(ids))
	for i, id := range ids {
		out[i].Category.ID = id
	}
	return out
}

// issueAuthorizerToken makes a new authorizer access token; the previous
// one works 5 more minutes. s.mu must be held.
func (s *Server) issueAuthorizerToken(authorizer string, now time.Time) *token {
	a := s.apps[authorizer]
	if a.classic != nil {
		a.classic.retire(now.Add(tokenOverlap))
	}
	a.classic = s.issue(a, false, now)
	s.countIssue(authorizer, func(c *TokenCounts) { c.Authorizer++ })
	return a.classic
}

// queryAuth serves POST /cgi-bin/component/api_query_auth: an
// authorization code for the authorization, with a new authorizer token.
func (s *Server) queryAuth(r *http.Request, rec *Call) (any, error) {
	var req struct {
		AppID string `json:"component_appid"`
		Code  string `json:"authorization_code"`
	}
	c, unlock, err := s.componentCall(r, rec, &req, &req.AppID)
	defer unlock()
	if err != nil {
		return nil, err
	}
	now := s.now()
	code, ok := c.codes[req.Code]
	if !ok || !now.Before(code.expires) {
		return nil, fail(codeCodeExpired, "authorization_code expired or never issued")
	}
	a := c.authorizers[code.authorizer]
	if a.revoked {
		return nil, fail(codeNotAuthorized, "the authorization was revoked")
	}
	t := s.issueAuthorizerToken(a.appid, now)
	type info struct {
		AppID     string      `json:"authorizer_appid"`
		Token     string      `json:"authorizer_access_token"`
		ExpiresIn int         `json:"expires_in"`
		Refresh   string      `json:"authorizer_refresh_token"`
		FuncInfo  []funcScope `json:"func_info"`
	}
	return struct {
		Info info `json:"authorization_info"`
	}{info{a.appid, t.value, int(tokenLifetime / time.Second), a.refresh, funcScopes(a.funcInfo)}}, nil
}

// authorizerToken serves POST /cgi-bin/component/api_authorizer_token.
func (s *Server) authorizerToken(r *http.Request, rec *Call) (any, error) {
	var req struct {
		AppID      string `json:"component_appid"`
		Authorizer string `json:"authorizer_appid"`
		Refresh    string `json:"authorizer_refresh_token"`
	}
	c, unlock, err := s.componentCall(r, rec, &req, &req.AppID)
	defer unlock()
	if err != nil {
		return nil, err
	}
	a := c.authorizers[req.Authorizer]
	switch {
	case a == nil || a.revoked:
		return nil, failf(codeNotAuthorized, "%s has not authorized the component", req.Authorizer)
	case req.Refresh != a.refresh:
		return nil, fail(codeInvalidRefreshToken, "not the authorization's refresh token")
	}
	t := s.issueAuthorizerToken(a.appid, s.now())
	if c.rotate {
		a.refresh = "refreshtoken@@@" + randomID(48)
	}
	return struct {
		Token     string `json:"authorizer_access_token"`
		ExpiresIn int    `json:"expires_in"`
		Refresh   string `json:"authorizer_refresh_token"`
	}{t.value, int(tokenLifetime / time.Second), a.refresh}, nil
}

// authorizerList serves POST /cgi-bin/component/api_get_authorizer_list:
// the live authorizations, oldest first, with their refresh tokens.
func (s *Server) authorizerList(r *http.Request, rec *Call) (any, error) {
	var req struct {
		AppID  string `json:"component_appid"`
		Offset int    `json:"offset"`
		Count  int    `json:"count"`
	}
	c, unlock, err := s.componentCall(r, rec, &req, &req.AppID)
	defer unlock()
	if err != nil {
		return nil, err
	}
	if req.Count <= 0 || req.Count > maxAuthorizerList || req.Offset < 0 {
		return nil, failf(codeDataFormat, "offset %d, count %d (1 to %d)", req.Offset, req.Count, maxAuthorizerList)
	}
	var live []*authorization
	for _, a := range c.authorizers {
		if !a.revoked {
			live = append(live, a)
		}
	}
	slices.SortFunc(live, func(a, b *authorization) int { return a.authTime.Compare(b.authTime) })
	type entry struct {
		AppID    string `json:"authorizer_appid"`
		Refresh  string `json:"refresh_token"`
		AuthTime int64  `json:"auth_time"`
	}
	list := []entry{}
	for _, a := range live[min(req.Offset, len(live)):min(req.Offset+req.Count, len(live))] {
		list = append(list, entry{a.appid, a.refresh, a.authTime.Unix()})
	}
	return struct {
		Total int     `json:"total_count"`
		List  []entry `json:"list"`
	}{len(live), list}, nil
}

// startPushTicket serves POST /cgi-bin/component/api_start_push_ticket:
// tickets resume, and one is pushed at once.
func (s *Server) startPushTicket(r *http.Request, rec *Call) (any, error) {
	var req struct {
		AppID  string `json:"component_appid"`
		Secret string `json:"component_secret"`
	}
	if err := readJSON(r, rec, &req); err != nil {
		return nil, err
	}
	rec.AppID = req.AppID
	s.mu.Lock()
	c, ok := s.comp.components[req.AppID]
	switch {
	case !ok:
		s.mu.Unlock()
		return nil, failf(codeInvalidComponent, "component %q is not registered", req.AppID)
	case req.Secret != c.opts.Secret:
		s.mu.Unlock()
		return nil, fail(codeInvalidSecret, "wrong component_secret")
	}
	c.ticketsOff = false
	s.mu.Unlock()
	go s.PushTicket(req.AppID)
	return struct {
		Errcode int    `json:"errcode"`
		Errmsg  string `json:"errmsg"`
	}{0, "ok"}, nil
}

// consentPage serves the consent page (mp.weixin.qq.com's
// componentloginpage): GET shows the authorization a merchant is asked
// for, with a button that plays the scan; the POST authorizes and sends the
// browser to redirect_uri with the authorization code.
func (s *Server) consentPage(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "wxsim: "+err.Error(), http.StatusBadRequest)
		return
	}
	component, pre, redirect := r.Form.Get("component_appid"), r.Form.Get("pre_auth_code"), r.Form.Get("redirect_uri")
	authorizer := cmpString(r.Form.Get("authorizer_appid"), r.Form.Get("biz_appid"))
	if component == "" || pre == "" || redirect == "" {
		http.Error(w, "wxsim: the consent link lacks component_appid, pre_auth_code or redirect_uri", http.StatusBadRequest)
		return
	}
	if r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, consentHTML, htmlEscape(component), htmlEscape(component), htmlEscape(pre), htmlEscape(redirect), htmlEscape(authorizer))
		return
	}
	var funcs []int
	for _, f := range r.Form["func"] {
		n, err := strconv.Atoi(f)
		if err != nil {
			http.Error(w, "wxsim: func must be permission set ids", http.StatusBadRequest)
			return
		}
		funcs = append(funcs, n)
	}
	if authorizer == "" {
		http.Error(w, "wxsim: which mini program authorizes? (authorizer_appid)", http.StatusBadRequest)
		return
	}
	code, err := s.Scan(component, pre, authorizer, funcs)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	u, err := url.Parse(redirect)
	if err != nil {
		http.Error(w, "wxsim: redirect_uri: "+err.Error(), http.StatusBadRequest)
		return
	}
	q := u.Query()
	q.Set("auth_code", code)
	q.Set("expires_in", strconv.Itoa(int(authCodeLifetime/time.Second)))
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func cmpString(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func htmlEscape(s string) string {
	var b bytes.Buffer
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '"':
			b.WriteString("&#34;")
		case '\'':
			b.WriteString("&#39;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// consentHTML is the simulated consent page; the permission sets offered
// are those a customer-service relay cares about (protocol §9).
const consentHTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>wxsim: authorize %s</title></head>
<body><h1>Authorize the third-party platform %s</h1>
<form method="post">
<input type="hidden" name="pre_auth_code" value="%s">
<input type="hidden" name="redirect_uri" value="%s">
<label>Mini program appid <input name="authorizer_appid" value="%s"></label>
<fieldset><legend>Permission sets</legend>
<label><input type="checkbox" name="func" value="17" checked> 17: mini program development and data analysis</label>
<label><input type="checkbox" name="func" value="19" checked> 19: customer service messages</label>
</fieldset>
<button type="submit">Authorize</button>
</form></body></html>
`

// componentControlRoutes serves the open platform's test controls.
func (s *Server) componentControlRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /wxsim/components", func(w http.ResponseWriter, r *http.Request) {
		var o ComponentOptions
		if !decodeControl(w, r, &o) {
			return
		}
		if err := s.AddComponent(o); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /wxsim/components/{appid}/ticket", func(w http.ResponseWriter, r *http.Request) {
		t, err := s.PushTicket(r.PathValue("appid"))
		controlAnswer(w, map[string]string{"ticket": t}, err)
	})
	mux.HandleFunc("POST /wxsim/components/{appid}/tickets", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Stopped bool `json:"stopped"`
		}
		if decodeControl(w, r, &req) {
			controlAnswer(w, nil, s.StopTickets(r.PathValue("appid"), req.Stopped))
		}
	})
	mux.HandleFunc("POST /wxsim/components/{appid}/fault", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Errcode int `json:"errcode"`
		}
		if decodeControl(w, r, &req) {
			controlAnswer(w, nil, s.SetComponentFault(r.PathValue("appid"), req.Errcode))
		}
	})
	mux.HandleFunc("POST /wxsim/components/{appid}/scan", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			PreAuthCode string `json:"pre_auth_code"`
			Authorizer  string `json:"authorizer_appid"`
			FuncInfo    []int  `json:"func_info"`
		}
		if decodeControl(w, r, &req) {
			code, err := s.Scan(r.PathValue("appid"), req.PreAuthCode, req.Authorizer, req.FuncInfo)
			controlAnswer(w, map[string]string{"auth_code": code}, err)
		}
	})
	mux.HandleFunc("POST /wxsim/components/{appid}/authorizers/{authorizer}/revoke", func(w http.ResponseWriter, r *http.Request) {
		controlAnswer(w, nil, s.Revoke(r.PathValue("appid"), r.PathValue("authorizer")))
	})
	// A user's text message to an authorizer, pushed to the message URL:
	// {"openid":"o…","to_user_name":"gh_…","text":"hi","msg_id":1}.
	mux.HandleFunc("POST /wxsim/components/{appid}/authorizers/{authorizer}/message", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			OpenID     string `json:"openid"`
			ToUserName string `json:"to_user_name"`
			Text       string `json:"text"`
			MsgID      int64  `json:"msg_id"`
		}
		if !decodeControl(w, r, &req) {
			return
		}
		if req.OpenID == "" || req.Text == "" {
			http.Error(w, "wxsim: openid and text are required", http.StatusBadRequest)
			return
		}
		msg := wechat.TextMessage(wechat.FormatXML, wechat.Header{ToUserName: req.ToUserName, FromUserName: req.OpenID, CreateTime: s.now().Unix()}, req.Text, req.MsgID)
		status, answer, err := s.PushMessage(r.PathValue("appid"), r.PathValue("authorizer"), msg)
		if status == 0 {
			controlAnswer(w, nil, err)
			return
		}
		controlAnswer(w, map[string]any{"status": status, "answer": answer}, nil)
	})
	// The full-network release check: the test mini program authorizes
	// the component, its test user sends QUERY_AUTH_CODE:<code>, and the
	// answer says whether the reply came within 5 s.
	mux.HandleFunc("POST /wxsim/components/{appid}/release-check", func(w http.ResponseWriter, r *http.Request) {
		rc, err := s.StartReleaseCheck(r.PathValue("appid"))
		if err != nil {
			controlAnswer(w, nil, err)
			return
		}
		var replied time.Time
		ok := false
		for deadline := time.Now().Add(5*time.Second - rc.Took); !ok && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			replied, ok = s.ReleaseReplied(rc)
		}
		passed := ok && rc.Status == http.StatusOK && (rc.Answer == "" || rc.Answer == wechat.Success) && rc.Took < 5*time.Second
		controlAnswer(w, map[string]any{"check": rc, "replied": ok, "reply_after": replied.Sub(rc.Sent).String(), "passed": passed}, nil)
	})
	mux.HandleFunc("GET /wxsim/pushes", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string][]Push{"pushes": s.Pushes()})
	})
}

// controlAnswer writes v as JSON, or 204 for nil, or 400 with err.
func controlAnswer(w http.ResponseWriter, v any, err error) {
	switch {
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
	case v == nil:
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
}
