package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/api/throttle"
	"github.com/wxrelay/wxrelay/api/wxapi"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/tenant"
)

// wxFrom is wx with the call coming from client, if set (as a trusted
// proxy on loopback says in X-Forwarded-For), and with header.
func (e *compatEnv) wxFrom(client, method, path string, body []byte, header http.Header) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.url+"/wxapi"+path, bytes.NewReader(body))
	for k, vs := range header {
		req.Header[k] = vs
	}
	if client != "" {
		req.Header.Set("X-Forwarded-For", client)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		e.t.Fatalf("%s %s: %d %q is not JSON", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, m
}

// TestCompat_StrangersCostTheTenantNothing: a flood of token requests
// with a victim's appid and wrong secrets neither spends the victim's rate
// limit nor appears in its call list; the flooding address is slowed to
// its budget of failures, and other addresses are not.
func TestCompat_StrangersCostTheTenantNothing(t *testing.T) {
	e := newCompatEnvWith(t, 5, func(o *wxapi.Options) { o.Proxies = throttle.DefaultProxies })
	victim := e.wxTenant()
	const stranger, sdk = "203.0.113.7", "198.51.100.1"
	tokenPath := func(secret string) string {
		return "/cgi-bin/token?grant_type=client_credential&appid=" + victim.appid + "&secret=" + secret
	}
	blocked := 0
	for range 200 {
		_, m := e.wxFrom(stranger, "GET", tokenPath("nope"), nil, nil)
		switch errcode(m) {
		case 40125:
		case 45011:
			if msg, _ := m["errmsg"].(string); !strings.Contains(msg, "failed authentications") {
				t.Fatalf("the stranger got the tenant's 45011: %v", m)
			}
			blocked++
		default:
			t.Fatalf("wrong secret answered %v", m)
		}
	}
	if blocked < 150 {
		t.Errorf("%d of 200 failed attempts were refused unread, want most past the budget of 20", blocked)
	}
	// The tenant's own SDK, elsewhere, is untouched: a burst of its
	// limit's size all pass.
	for i := range 5 {
		if _, m := e.wxFrom(sdk, "GET", tokenPath(victim.apiKey), nil, nil); errcode(m) != 0 {
			t.Fatalf("the tenant's call %d after the flood: %v, want a token", i, m)
		}
	}
	// And the flood is not in the tenant's call list.
	time.Sleep(50 * time.Millisecond) // the recorder's interval is 10 ms
	calls, err := store.NewCallStore(e.db).ListCalls(t.Context(), tenant.ID(victim.id), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 5 {
		t.Errorf("the tenant's call list holds %d calls, want its own 5", len(calls))
	}
	for _, c := range calls {
		if c.Errcode != 0 {
			t.Errorf("listed call %+v, want only the tenant's successful ones", c)
		}
	}
}

// headerRecorder is WeChat as seen through a recording proxy: every
// request's headers are kept, and the call is served by wxsim.
type headerRecorder struct {
	next http.Handler
	mu   sync.Mutex
	got  []http.Header
}

func (h *headerRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.got = append(h.got, r.Header.Clone())
	h.mu.Unlock()
	h.next.ServeHTTP(w, r)
}

// TestCompat_ForwardsOnlyAllowedHeaders: of a caller's headers only those
// describing the body reach WeChat; its address, proxies' headers,
// method overrides and the headers its Connection names do not.
func TestCompat_ForwardsOnlyAllowedHeaders(t *testing.T) {
	rec := &headerRecorder{}
	e := newCompatEnvWith(t, 0, func(o *wxapi.Options) {
		srv := httptest.NewServer(rec)
		t.Cleanup(srv.Close)
		o.Upstream = srv.URL
	})
	rec.next = e.sim
	tn := e.wxTenant()
	tok, _ := e.token(tn.appid, tn.apiKey)
	h := http.Header{}
	leaky := []string{"X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server", "Via", "True-Client-Ip",
		"Cf-Connecting-Ip", "X-Client-Ip", "X-Original-Url", "X-Http-Method-Override", "X-Custom", "Cookie",
		"Authorization", "Forwarded", "X-Real-Ip"}
	for _, k := range leaky {
		h.Set(k, "leak")
	}
	h.Set("Connection", "X-Custom")
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "sdk/1.0")
	_, m := e.wxFrom("198.51.100.1", "POST", "/cgi-bin/message/custom/send?access_token="+tok, []byte(`{"touser":"o1","msgtype":"text","text":{"content":"hi"}}`), h)
	if errcode(m) != 0 {
		t.Fatalf("send: %v", m)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.got) != 1 {
		t.Fatalf("WeChat got %d calls, want 1", len(rec.got))
	}
	got := rec.got[0]
	for _, k := range append(leaky, "X-Forwarded-For") {
		if v := got.Get(k); v != "" {
			t.Errorf("WeChat received %s: %q", k, v)
		}
	}
	if got.Get("Content-Type") != "application/json" || got.Get("User-Agent") != "sdk/1.0" {
		t.Errorf("WeChat received Content-Type %q, User-Agent %q: want the caller's", got.Get("Content-Type"), got.Get("User-Agent"))
	}
}

// TestCompat_ChunkedUploadOverLimit: an upload over the limit is refused
// alike whether its length is declared or not: 413 with WeChat's 45001,
// never the -1 that SDKs retry.
func TestCompat_ChunkedUploadOverLimit(t *testing.T) {
	e := newCompatEnv(t, 0)
	tn := e.wxTenant()
	tok, _ := e.token(tn.appid, tn.apiKey)
	for _, chunked := range []bool{false, true} {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		part, _ := mw.CreateFormFile("media", "huge.png")
		part.Write(bigImage(t, 12<<20))
		mw.Close()
		var r io.Reader = &body
		if chunked {
			r = io.MultiReader(&body) // hides the length: sent chunked
		}
		req, _ := http.NewRequest("POST", e.url+"/wxapi/cgi-bin/media/upload?access_token="+tok+"&type=image", r)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || errcode(m) != 45001 {
			t.Errorf("chunked=%v: %d %v, want 413 with errcode 45001", chunked, resp.StatusCode, m)
		}
	}
}

// TestCompat_RealTokenNeverAnswered: WeChat's rid/get answers a failed
// call's URL, real access token included; through the relay the caller
// gets it with the token redacted, and no answer carries the real token.
func TestCompat_RealTokenNeverAnswered(t *testing.T) {
	e := newCompatEnv(t, 0)
	tn := e.wxTenant()
	tok, _ := e.token(tn.appid, tn.apiKey)
	real, err := e.srvKeeper().Token(t.Context(), tenant.ID(tn.id))
	if err != nil {
		t.Fatal(err)
	}
	// A send WeChat refuses (no such media) ends its errmsg in a rid.
	_, m := e.wx("POST", "/cgi-bin/message/custom/send?access_token="+tok, []byte(`{"touser":"o1","msgtype":"image","image":{"media_id":"nope"}}`))
	msg, _ := m["errmsg"].(string)
	_, rid, ok := strings.Cut(msg, " rid: ")
	if errcode(m) == 0 || !ok {
		t.Fatalf("refused send answered %v, want an errmsg ending in a rid", m)
	}
	if strings.Contains(msg, real) {
		t.Fatalf("the errmsg carries the real token")
	}
	req, _ := http.NewRequest("POST", e.url+"/wxapi/cgi-bin/openapi/rid/get?access_token="+tok, strings.NewReader(`{"rid":"`+rid+`"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(raw, []byte(real)) {
		t.Fatalf("rid/get through the relay answered the real token: %s", raw)
	}
	var info struct {
		Errcode int `json:"errcode"`
		Request struct {
			RequestURL string `json:"request_url"`
		} `json:"request"`
	}
	if err := json.Unmarshal(raw, &info); err != nil || info.Errcode != 0 || !strings.Contains(info.Request.RequestURL, "access_token=REDACTED") {
		t.Fatalf("rid/get answered %s (%v), want the request with its access_token redacted", raw, err)
	}
	if resp.ContentLength != int64(len(raw)) {
		t.Errorf("Content-Length %d for %d bytes", resp.ContentLength, len(raw))
	}
}

// TestIdempotencyIsOneRuleAcrossAPIs: a key used on the REST send and on
// the compatible API for the same message, however its JSON is written,
// is one send; for another message it is refused on either. (The REST
// send fingerprinted canonical JSON and the compatible API the raw body,
// so the same message read as a different one.)
func TestIdempotencyIsOneRuleAcrossAPIs(t *testing.T) {
	e := newCompatEnv(t, 0)
	tn := e.wxTenant()
	tok, _ := e.token(tn.appid, tn.apiKey)
	e.push(tn, tn.appid, "o1", 1)
	rest := func(key, body string) response {
		req, _ := http.NewRequest("POST", e.url+sendPath(tn.id), strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tn.apiKey)
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return response{status: resp.StatusCode, raw: string(raw)}
	}
	compat := func(key, body string) (int, map[string]any) {
		return e.wxFrom("", "POST", "/cgi-bin/message/custom/send?access_token="+tok, []byte(body), http.Header{"Idempotency-Key": {key}})
	}
	if r := rest("k1", `{"touser":"o1","msgtype":"text","text":{"content":"once"}}`); r.status != 200 {
		t.Fatalf("REST send: %d %s", r.status, r.raw)
	}
	// The same message, spaced and ordered otherwise, on the other API.
	if status, m := compat("k1", `{ "msgtype": "text", "text": {"content": "once"}, "touser": "o1" }`); status != 200 || errcode(m) != 0 {
		t.Errorf("the same message under the key on the compatible API: %d %v, want the recorded success", status, m)
	}
	if n := len(e.sends()); n != 1 {
		t.Errorf("wxsim got %d sends, want 1", n)
	}
	if status, m := compat("k1", `{"touser":"o1","msgtype":"text","text":{"content":"another"}}`); status != 409 || errcode(m) != 40097 {
		t.Errorf("another message under the key on the compatible API: %d %v, want 409 (40097)", status, m)
	}
	// And the other way: a refusal recorded by the compatible API is
	// replayed by the REST send as its own answer to WeChat's refusal.
	e.sim.RejectSends("o1", 45015)
	if _, m := compat("k2", `{"touser":"o1","msgtype":"text","text":{"content":"x"}}`); errcode(m) != 45015 {
		t.Fatalf("refused send: %v", m)
	}
	e.sim.ClearFaults()
	r := rest("k2", `{"msgtype":"text","touser":"o1","text":{"content":"x"}}`)
	if r.status == 200 || !strings.Contains(r.raw, "45015") {
		t.Errorf("the REST send under the compatible API's key: %d %s, want WeChat's 45015 replayed", r.status, r.raw)
	}
	if n := len(e.sends()); n != 2 {
		t.Errorf("wxsim got %d sends, want 2 (the replay sends nothing)", n)
	}
}
