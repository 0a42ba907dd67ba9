package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxrelay/wxrelay/api"
	"github.com/wxrelay/wxrelay/api/wxapi"
	"github.com/wxrelay/wxrelay/relay/calllog"
	"github.com/wxrelay/wxrelay/relay/message"
	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/tenant"
)

// compatEnv is the api env with the WeChat-compatible API mounted at
// /wxapi as serve mounts it, on the same store, keeper, reply windows and
// wxsim.
type compatEnv struct {
	*env
	auth    *tenant.Authenticator
	tenants *tenant.Service
	reg     *prometheus.Registry
}

func newCompatEnv(t *testing.T, rate float64) *compatEnv {
	t.Helper()
	return newCompatEnvWith(t, rate, nil)
}

// newCompatEnvWith is newCompatEnv with the handler's options changed by
// change.
func newCompatEnvWith(t *testing.T, rate float64, change func(*wxapi.Options)) *compatEnv {
	t.Helper()
	var handler http.Handler
	ce := &compatEnv{reg: prometheus.NewRegistry()}
	lazy := &lazyRecorder{}
	e := newEnvWith(t, func(o *api.Options) {
		ce.auth, ce.tenants = o.Auth, o.Tenants
		o.CallRecorder = lazy
		o.Routes["/wxapi/"] = http.StripPrefix("/wxapi", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
		o.Registry = ce.reg
	})
	ce.env = e
	cache := tenant.NewCache(ce.tenants, 0, nil)
	rec, err := calllog.NewRecorder(store.NewCallStore(e.db), calllog.Options{Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Close)
	lazy.r = rec
	opts := wxapi.Options{
		Calls: rec, Idempotency: store.NewIdempotencyStore(e.db),
		Auth: ce.auth, Tenants: cache, AppIDs: store.NewTenantStore(e.db),
		Tokens:   e.srvKeeper(),
		Replies:  e.srvMessages(),
		Upstream: e.wxURL, Rate: rate,
		Registry: prometheus.NewRegistry(),
	}
	if change != nil {
		change(&opts)
	}
	h, err := wxapi.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	handler = h
	return ce
}

// wx calls the compatible API and decodes its JSON answer.
func (e *compatEnv) wx(method, path string, body []byte) (int, map[string]any) {
	e.t.Helper()
	var h http.Header
	if body != nil {
		h = http.Header{"Content-Type": {"application/json"}}
	}
	return e.wxFrom("", method, path, body, h)
}

// token fetches a relay token for appid with secret.
func (e *compatEnv) token(appid, secret string) (string, map[string]any) {
	e.t.Helper()
	_, m := e.wx("GET", "/cgi-bin/token?grant_type=client_credential&appid="+appid+"&secret="+secret, nil)
	tok, _ := m["access_token"].(string)
	return tok, m
}

func errcode(m map[string]any) int {
	c, _ := m["errcode"].(float64)
	return int(c)
}

// TestCompat_TokenAndForward: a relay token comes back in WeChat's shape
// with the real token's life, is not the real token, and a send made with
// it reaches wxsim byte for byte with the real token and the rest of the
// query untouched.
func TestCompat_TokenAndForward(t *testing.T) {
	e := newCompatEnv(t, 0)
	tn := e.wxTenant()
	tok, m := e.token(tn.appid, tn.apiKey)
	if tok == "" || errcode(m) != 0 {
		t.Fatalf("token: %v", m)
	}
	if exp, _ := m["expires_in"].(float64); exp < 7000 || exp > 7200 {
		t.Errorf("expires_in = %v, want about 7200 (the real token's)", m["expires_in"])
	}
	if len(m) != 2 {
		t.Errorf("token answer %v: want access_token and expires_in only", m)
	}

	// stable_token, and force_refresh asking the keeper.
	body := []byte(`{"grant_type":"client_credential","appid":"` + tn.appid + `","secret":"` + tn.apiKey + `","force_refresh":false}`)
	if _, m := e.wx("POST", "/cgi-bin/stable_token", body); errcode(m) != 0 || m["access_token"] == "" {
		t.Fatalf("stable_token: %v", m)
	}

	e.push(tn, tn.appid, "o_fwd", 1)
	send := []byte(`{"touser":"o_fwd","msgtype":"text","text":{"content":"<b>order</b> & co"}}`)
	if _, m := e.wx("POST", "/cgi-bin/message/custom/send?access_token="+tok+"&extra=a%20b", send); errcode(m) != 0 {
		t.Fatalf("send: %v", m)
	}
	sends := e.sends()
	if len(sends) != 1 {
		t.Fatalf("wxsim got %d sends, want 1", len(sends))
	}
	got := sends[0]
	if got.AppID != tn.appid || got.Errcode != 0 || got.Query.Get("access_token") == tok || got.Query.Get("extra") != "a b" {
		t.Errorf("wxsim got app %q errcode %d query %v: want the real token and extra=a b", got.AppID, got.Errcode, got.Query)
	}
	if !bytes.Equal(got.Body, send) || got.HTMLEscaped {
		t.Errorf("wxsim got body %s, want %s byte for byte", got.Body, send)
	}
	if tokens := e.sim.TokenCounts(tn.appid); tokens.Classic+tokens.Stable != 1 {
		t.Errorf("wxsim issued %+v, want one token (the keeper's)", tokens)
	}
}

// TestCompat_AuthMatrix: every way in that is not a tenant's own current
// api key, or a relay token issued to it, is refused in WeChat's shape,
// and nothing reaches WeChat.
func TestCompat_AuthMatrix(t *testing.T) {
	e := newCompatEnv(t, 0)
	a := e.wxTenant()
	bBody := validTenant()
	bBody["appid"] = "wxbbbbbbbbbbbbbbbb"
	b := e.createTenant(bBody)
	b.appid = "wxbbbbbbbbbbbbbbbb"
	e.sim.AddApp(b.appid, testSecret)

	good, _ := e.token(a.appid, a.apiKey)
	toDelete := e.wxTenantWith("wxdddddddddddddddd")
	deletedTok, _ := e.token(toDelete.appid, toDelete.apiKey)
	rotatedTok, _ := e.token(b.appid, b.apiKey)
	if _, err := e.tenants.RotateAPIKey(context.Background(), tenant.ID(b.id)); err != nil {
		t.Fatal(err)
	}
	if err := e.tenants.Delete(context.Background(), tenant.ID(toDelete.id)); err != nil {
		t.Fatal(err)
	}
	aT, err := e.tenants.Get(context.Background(), tenant.ID(a.id))
	if err != nil {
		t.Fatal(err)
	}
	expired, err := e.auth.IssueWeChatToken(aT, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	e.sim.Reset()

	send := func(tok string) string {
		return "/cgi-bin/message/custom/send?access_token=" + tok
	}
	body := []byte(`{"touser":"o1","msgtype":"text","text":{"content":"hi"}}`)
	for _, c := range []struct {
		name   string
		method string
		path   string
		body   []byte
		status int
		code   int
	}{
		{"unknown appid", "GET", "/cgi-bin/token?grant_type=client_credential&appid=wx0000000000000bad&secret=" + a.apiKey, nil, 200, 40013},
		{"wrong secret", "GET", "/cgi-bin/token?grant_type=client_credential&appid=" + a.appid + "&secret=nope", nil, 200, 40125},
		{"the AppSecret itself", "GET", "/cgi-bin/token?grant_type=client_credential&appid=" + a.appid + "&secret=" + testSecret, nil, 200, 40125},
		{"another tenant's api key", "GET", "/cgi-bin/token?grant_type=client_credential&appid=" + a.appid + "&secret=" + b.apiKey, nil, 200, 40125},
		{"the admin token", "GET", "/cgi-bin/token?grant_type=client_credential&appid=" + a.appid + "&secret=" + e.admin, nil, 200, 40125},
		{"a rotated api key", "POST", "/cgi-bin/stable_token", []byte(`{"grant_type":"client_credential","appid":"` + b.appid + `","secret":"` + b.apiKey + `"}`), 200, 40125},
		{"no grant_type", "GET", "/cgi-bin/token?appid=" + a.appid + "&secret=" + a.apiKey, nil, 200, 40002},
		{"stable_token not JSON", "POST", "/cgi-bin/stable_token", []byte(`{`), 200, 47001},
		{"no access_token", "POST", "/cgi-bin/message/custom/send", body, 200, 41001},
		{"a forged token", "POST", send("ACCESS_TOKEN"), body, 200, 40001},
		{"an expired relay token", "POST", send(expired), body, 200, 42001},
		{"a rotated key's relay token", "POST", send(rotatedTok), body, 200, 40001},
		{"a deleted tenant's relay token", "POST", send(deletedTok), body, 200, 40001},
		{"a path outside the allowlist", "GET", "/admin/secrets?access_token=" + good, nil, 404, 40066},
		{"a dot segment", "GET", "/cgi-bin/../pay/x?access_token=" + good, nil, 404, 40066},
		{"the bare prefix", "GET", "/cgi-bin/?access_token=" + good, nil, 404, 40066},
		{"an oversized body", "POST", send(good), bytes.Repeat([]byte("x"), 1<<20+1), 413, 45001},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, m := e.wx(c.method, c.path, c.body)
			if status != c.status || errcode(m) != c.code {
				t.Errorf("%d %v, want %d errcode %d", status, m, c.status, c.code)
			}
			if msg, _ := m["errmsg"].(string); msg == "" || strings.Contains(msg, testSecret) {
				t.Errorf("errmsg %q: want a message, without the AppSecret", msg)
			}
		})
	}
	if calls := e.sim.Calls(); len(calls) != 0 {
		t.Errorf("wxsim got %d calls, want none: %+v", len(calls), calls)
	}
	// The hint for a refused secret is the same whatever was presented,
	// so it says nothing about whether that was the AppSecret.
	_, m1 := e.token(a.appid, testSecret)
	_, m2 := e.token(a.appid, "nope")
	if m1["errmsg"] != m2["errmsg"] || !strings.Contains(m1["errmsg"].(string), "api_key") {
		t.Errorf("refused secrets answered %q and %q: want one message naming the api_key", m1["errmsg"], m2["errmsg"])
	}
}

// wxTenantWith is wxTenant with another appid.
func (e *compatEnv) wxTenantWith(appid string) created {
	e.t.Helper()
	body := validTenant()
	body["appid"] = appid
	e.sim.AddApp(appid, testSecret)
	c := e.createTenant(body)
	c.appid = appid
	return c
}

// TestCompat_TokenRefusedByWeChat: WeChat revokes the real token; the next
// call is refused 40001 by WeChat, and the relay refreshes and sends again
// once, so the caller sees success.
func TestCompat_TokenRefusedByWeChat(t *testing.T) {
	e := newCompatEnv(t, 0)
	tn := e.wxTenant()
	tok, _ := e.token(tn.appid, tn.apiKey)
	e.push(tn, tn.appid, "o1", 1)
	if err := e.sim.InvalidateTokens(tn.appid); err != nil {
		t.Fatal(err)
	}
	if _, m := e.wx("POST", "/cgi-bin/message/custom/send?access_token="+tok, []byte(`{"touser":"o1","msgtype":"text","text":{"content":"hi"}}`)); errcode(m) != 0 {
		t.Fatalf("send after the revocation: %v", m)
	}
	sends := e.sends()
	if len(sends) != 2 || sends[0].Errcode != 40001 || sends[1].Errcode != 0 {
		t.Fatalf("wxsim saw %d sends (%+v), want one refused 40001 and one accepted", len(sends), sends)
	}
}

// TestCompat_ReplyWindow: the compatible send counts against the user's
// window as the REST send does; the sixth answer is refused 45047 in
// WeChat's shape without calling WeChat, and a refused send uses no quota.
func TestCompat_ReplyWindow(t *testing.T) {
	e := newCompatEnv(t, 0)
	tn := e.wxTenant()
	tok, _ := e.token(tn.appid, tn.apiKey)
	e.push(tn, tn.appid, "o_other", 1)
	e.clock.Advance(2 * time.Minute) // the relay has watched the tenant for over a minute
	e.push(tn, tn.appid, "o1", 2)
	send := func() map[string]any {
		_, m := e.wx("POST", "/cgi-bin/message/custom/send?access_token="+tok, []byte(`{"touser":"o1","msgtype":"text","text":{"content":"hi"}}`))
		return m
	}
	// A send WeChat refuses gives its slot back.
	if err := e.sim.RejectSends("o1", 45015); err != nil {
		t.Fatal(err)
	}
	if m := send(); errcode(m) != 45015 {
		t.Fatalf("a send WeChat refuses: %v, want WeChat's 45015 passed on", m)
	}
	e.sim.ClearFaults()
	for i := range 5 {
		if m := send(); errcode(m) != 0 {
			t.Fatalf("answer %d: %v", i+1, m)
		}
	}
	before := len(e.sends())
	m := send()
	if errcode(m) != 45047 || !strings.HasPrefix(m["errmsg"].(string), "out of response count limit") {
		t.Errorf("sixth answer: %v, want 45047 out of response count limit", m)
	}
	if len(e.sends()) != before {
		t.Error("the refused send reached WeChat")
	}
}

// TestCompat_RateLimit: past its burst, a tenant's calls get WeChat's
// 45011 until the limit lets them through again.
func TestCompat_RateLimit(t *testing.T) {
	e := newCompatEnv(t, 1) // 1 a second, burst 1
	tn := e.wxTenant()
	if tok, m := e.token(tn.appid, tn.apiKey); tok == "" {
		t.Fatalf("first call: %v", m)
	}
	if _, m := e.token(tn.appid, tn.apiKey); errcode(m) != 45011 {
		t.Fatalf("second call at once: %v, want 45011", m)
	}
}

// srvKeeper and srvMessages return the keeper and message service that
// newEnvWith built, for the compatible API to share.
func (e *env) srvKeeper() *token.Keeper      { return e.keeper }
func (e *env) srvMessages() *message.Service { return e.messages }

// TestCompat_MediaUploadStreamed: an upload over the size the relay holds
// for a retry is streamed to WeChat and arrives whole.
func TestCompat_MediaUploadStreamed(t *testing.T) {
	e := newCompatEnv(t, 0)
	tn := e.wxTenant()
	tok, _ := e.token(tn.appid, tn.apiKey)
	img := bigImage(t, 3<<20)
	if m := e.upload(tok, img); errcode(m) != 0 || m["media_id"] == "" {
		t.Fatalf("upload: %v", m)
	}
	var up *wxsim.Upload
	for _, c := range e.sim.Calls() {
		if c.Path == "/cgi-bin/media/upload" {
			up = c.Upload
		}
	}
	if up == nil || up.Size != int64(len(img)) || up.Filename != "big.png" {
		t.Fatalf("wxsim got upload %+v, want %d bytes of big.png", up, len(img))
	}
}

// TestCompat_StreamedUploadAfterRevocation: a streamed upload that meets a
// revoked token is not sent twice, WeChat's 40001 goes back, and the
// relay has refreshed the token, so the SDK's retry succeeds.
func TestCompat_StreamedUploadAfterRevocation(t *testing.T) {
	e := newCompatEnv(t, 0)
	tn := e.wxTenant()
	tok, _ := e.token(tn.appid, tn.apiKey)
	img := bigImage(t, 2<<20)
	upload := func() map[string]any { return e.upload(tok, img) }
	if m := upload(); errcode(m) != 0 {
		t.Fatalf("first upload: %v", m)
	}
	e.sim.InvalidateTokens(tn.appid)
	if m := upload(); errcode(m) != 40001 {
		t.Fatalf("upload after the revocation: %v, want WeChat's 40001 passed on", m)
	}
	if m := upload(); errcode(m) != 0 {
		t.Fatalf("the retry: %v, want success with the refreshed token", m)
	}
	n := 0
	for _, c := range e.sim.Calls() {
		if c.Path == "/cgi-bin/media/upload" {
			n++
		}
	}
	if n != 3 {
		t.Errorf("wxsim got %d uploads, want 3 (none sent twice)", n)
	}
}

// TestCompat_CallsListed: the tenant sees its compatible-API calls, newest
// first, through GET /v1/tenants/{id}/calls, and only its own.
func TestCompat_CallsListed(t *testing.T) {
	e := newCompatEnv(t, 0)
	tn := e.wxTenant()
	other := e.wxTenantWith("wxcccccccccccccccc")
	tok, _ := e.token(tn.appid, tn.apiKey)
	e.token(tn.appid, "wrong")                                                     // refused 40125: a stranger's call, not the tenant's
	e.wx("POST", "/cgi-bin/message/custom/send?access_token=forged", []byte(`{}`)) // nobody's: no record
	e.push(tn, tn.appid, "o1", 1)
	e.wx("POST", "/cgi-bin/message/custom/send?access_token="+tok, []byte(`{"touser":"o1","msgtype":"text","text":{"content":"hi"}}`))
	e.token(tn.appid, tn.apiKey)

	var calls []any
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		r := e.mustStatus(e.do("GET", "/v1/tenants/"+tn.id+"/calls", tn.apiKey, nil), 200)
		if calls, _ = r.body["calls"].([]any); len(calls) >= 3 {
			break
		}
	}
	if len(calls) != 3 {
		t.Fatalf("listed %d calls, want 3: %v", len(calls), calls)
	}
	last, send, first := calls[0].(map[string]any), calls[1].(map[string]any), calls[2].(map[string]any)
	if send["path"] != "/cgi-bin/message/custom/send" || send["path_class"] != "send" || send["errcode"] != float64(0) || send["http_status"] != float64(200) {
		t.Errorf("second call %v, want the send, errcode 0", send)
	}
	for _, c := range []map[string]any{first, last} {
		if c["errcode"] != float64(0) || c["method"] != "GET" || c["path"] != "/cgi-bin/token" {
			t.Errorf("call %v, want a token fetch (the refused one is not the tenant's)", c)
		}
	}
	r := e.mustStatus(e.do("GET", "/v1/tenants/"+tn.id+"/calls?page_size=2", e.admin, nil), 200)
	if page, _ := r.body["calls"].([]any); len(page) != 2 || r.body["next_page_token"] == "" {
		t.Errorf("a page of 2: %v", r.body)
	}
	e.mustStatus(e.do("GET", "/v1/tenants/"+tn.id+"/calls", other.apiKey, nil), 403)
	if r := e.mustStatus(e.do("GET", "/v1/tenants/"+other.id+"/calls", other.apiKey, nil), 200); len(r.body) != 0 && r.body["calls"] != nil {
		t.Errorf("another tenant lists %v, want none", r.body)
	}
	if strings.Contains(fmt.Sprint(calls), tok) {
		t.Error("a call record holds the relay token")
	}
}

// TestCompat_ForceRefreshAndDisabled: force_refresh replaces the real
// token once (WeChat's force budget allows one per 30 s; past it the
// current token is answered, not an error), and a disabled tenant gets
// 48001.
func TestCompat_ForceRefreshAndDisabled(t *testing.T) {
	e := newCompatEnv(t, 0)
	tn := e.wxTenant()
	stable := func(force bool) map[string]any {
		body := fmt.Sprintf(`{"grant_type":"client_credential","appid":%q,"secret":%q,"force_refresh":%v}`, tn.appid, tn.apiKey, force)
		_, m := e.wx("POST", "/cgi-bin/stable_token", []byte(body))
		return m
	}
	if m := stable(false); errcode(m) != 0 {
		t.Fatalf("stable_token: %v", m)
	}
	for i := range 2 {
		if m := stable(true); errcode(m) != 0 || m["access_token"] == "" {
			t.Fatalf("force_refresh %d: %v", i+1, m)
		}
	}
	if got := e.sim.TokenCounts(tn.appid); got.StableForced != 1 {
		t.Errorf("wxsim token counts %+v: want one forced refresh for two force_refresh calls 30 s apart at most", got)
	}

	e.mustStatus(e.do("PATCH", "/v1/tenants/"+tn.id, e.admin, map[string]any{"state": "STATE_DISABLED"}), 200)
	if m := stable(false); errcode(m) != 48001 {
		t.Errorf("a disabled tenant's token: %v, want 48001", m)
	}
}

// TestCompat_Idempotency: a compatible send with an Idempotency-Key is
// sent once; a repeat gets the first answer, the key with another body is
// refused, and WeChat's refusal is recorded and replayed like a success.
func TestCompat_Idempotency(t *testing.T) {
	e := newCompatEnv(t, 0)
	tn := e.wxTenant()
	tok, _ := e.token(tn.appid, tn.apiKey)
	e.push(tn, tn.appid, "o1", 1)
	send := func(key, body string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", e.url+"/wxapi/cgi-bin/message/custom/send?access_token="+tok, strings.NewReader(body))
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	body := `{"touser":"o1","msgtype":"text","text":{"content":"once"}}`
	for i := range 3 {
		if status, m := send("k1", body); status != 200 || errcode(m) != 0 || m["errmsg"] != "ok" {
			t.Fatalf("send %d with k1: %d %v", i+1, status, m)
		}
	}
	if n := len(e.sends()); n != 1 {
		t.Errorf("wxsim got %d sends for three calls with one key, want 1", n)
	}
	if status, m := send("k1", `{"touser":"o1","msgtype":"text","text":{"content":"other"}}`); status != 409 || errcode(m) != 40097 {
		t.Errorf("k1 with another body: %d %v, want 409 errcode 40097", status, m)
	}
	// WeChat refusing is an answer: recorded and replayed.
	e.sim.RejectSends("o1", 45015)
	if _, m := send("k2", body); errcode(m) != 45015 {
		t.Fatalf("refused send: %v", m)
	}
	e.sim.ClearFaults()
	if _, m := send("k2", body); errcode(m) != 45015 {
		t.Errorf("repeat of a refused send: %v, want the recorded 45015", m)
	}
}

// lazyRecorder passes records to a recorder made after the server.
type lazyRecorder struct{ r *calllog.Recorder }

func (l *lazyRecorder) Record(c calllog.Call) {
	if l.r != nil {
		l.r.Record(c)
	}
}

// TestCalls_RESTSendsListed: sends through the REST API are listed with the
// compatible API's, with WeChat's errcode (or the reply window's) when
// refused; a call with bad credentials is not the tenant's and is not.
func TestCalls_RESTSendsListed(t *testing.T) {
	e := newCompatEnv(t, 0)
	tn := e.wxTenant()
	e.push(tn, tn.appid, "o1", 1)
	e.mustStatus(e.do("POST", sendPath(tn.id), tn.apiKey, textBody("o1", "hi")), 200)
	e.sim.RejectSends("o1", 45015)
	e.do("POST", sendPath(tn.id), tn.apiKey, textBody("o1", "hi"))
	e.do("POST", sendPath(tn.id), "not-a-key", textBody("o1", "hi"))
	var calls []any
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && len(calls) < 2; time.Sleep(20 * time.Millisecond) {
		r := e.mustStatus(e.do("GET", "/v1/tenants/"+tn.id+"/calls", tn.apiKey, nil), 200)
		calls, _ = r.body["calls"].([]any)
	}
	time.Sleep(50 * time.Millisecond)
	r := e.mustStatus(e.do("GET", "/v1/tenants/"+tn.id+"/calls", tn.apiKey, nil), 200)
	calls, _ = r.body["calls"].([]any)
	if len(calls) != 2 {
		t.Fatalf("listed %d calls, want 2: %v", len(calls), calls)
	}
	refused, ok := calls[0].(map[string]any), calls[1].(map[string]any)
	if refused["path"] != sendPath(tn.id) || refused["errcode"] != float64(45015) || refused["http_status"] != float64(400) {
		t.Errorf("newest %v, want the refused REST send, 45015, 400", refused)
	}
	if ok["errcode"] != float64(0) || ok["http_status"] != float64(200) || ok["path_class"] != "send" {
		t.Errorf("oldest %v, want the send, errcode 0", ok)
	}
}

// bigImage is a PNG padded to over n bytes: it still sniffs as one.
func bigImage(t *testing.T, n int) []byte {
	t.Helper()
	var img bytes.Buffer
	if err := png.Encode(&img, image.NewRGBA(image.Rect(0, 0, 8, 8))); err != nil {
		t.Fatal(err)
	}
	img.Write(bytes.Repeat([]byte{0}, n))
	return img.Bytes()
}

// upload posts img as big.png to the compatible media upload, as SDKs do
// (multipart, field media), and decodes the answer.
func (e *compatEnv) upload(tok string, img []byte) map[string]any {
	e.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	part, _ := mw.CreateFormFile("media", "big.png")
	part.Write(img)
	mw.Close()
	req, _ := http.NewRequest("POST", e.url+"/wxapi/cgi-bin/media/upload?access_token="+tok+"&type=image", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return m
}
