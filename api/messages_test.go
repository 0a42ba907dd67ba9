package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
)

// wxTenant creates a tenant whose app is registered in the env's wxsim.
func (e *env) wxTenant() created {
	e.t.Helper()
	body := validTenant()
	e.sim.AddApp(body["appid"].(string), testSecret)
	c := e.createTenant(body)
	c.appid = body["appid"].(string)
	return c
}

// uploadImage uploads a small PNG for appid straight to wxsim and returns
// its media_id, for image and card sends.
func (e *env) uploadImage(appid string) string {
	e.t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 8, 8))); err != nil {
		e.t.Fatal(err)
	}
	wx := &wechat.Client{BaseURL: e.wxURL}
	ctx := context.Background()
	tok, err := wx.StableToken(ctx, appid, testSecret, false)
	if err != nil {
		e.t.Fatal(err)
	}
	m, err := wx.UploadTempMedia(ctx, tok.Token, wechat.MediaTypeImage, "thumb.png", "image/png", &buf)
	if err != nil {
		e.t.Fatal(err)
	}
	return m.MediaID
}

// sends returns wxsim's record of send calls.
func (e *env) sends() []wxsim.Call {
	var out []wxsim.Call
	for _, c := range e.sim.Calls() {
		if c.Path == "/cgi-bin/message/custom/send" {
			out = append(out, c)
		}
	}
	return out
}

func sendPath(id string) string { return "/v1/tenants/" + id + "/messages:send" }

// errorInfo returns the metadata of the WECHAT_ERROR ErrorInfo in r's details.
func errorInfo(t *testing.T, r response) map[string]any {
	t.Helper()
	details, _ := r.body["details"].([]any)
	for _, d := range details {
		m, _ := d.(map[string]any)
		if m["@type"] == "type.googleapis.com/google.rpc.ErrorInfo" && m["reason"] == "WECHAT_ERROR" && m["domain"] == "api.weixin.qq.com" {
			md, _ := m["metadata"].(map[string]any)
			return md
		}
	}
	t.Fatalf("no WECHAT_ERROR ErrorInfo in %s", r.raw)
	return nil
}

func TestSendMessageKinds(t *testing.T) {
	e := newEnv(t)
	tn := e.wxTenant()
	media := e.uploadImage(tn.appid)
	bodies := []string{
		`{"touser":"o1","msgtype":"text","text":{"content":"hello"}}`,
		`{"touser":"o1","msgtype":"image","image":{"media_id":"` + media + `"}}`,
		`{"touser":"o1","msgtype":"link","link":{"title":"t","description":"d","url":"https://example.com/a","thumb_url":"https://example.com/t.png"}}`,
		`{"touser":"o1","msgtype":"miniprogrampage","miniprogrampage":{"title":"t","pagepath":"pages/index/index?foo=bar","thumb_media_id":"` + media + `"}}`,
	}
	for i, b := range bodies {
		r := e.mustStatus(e.do("POST", sendPath(tn.id), tn.apiKey, b), 200)
		if strings.TrimSpace(r.raw) != "{}" {
			t.Errorf("body %d: answer %s, want {}", i, r.raw)
		}
		sends := e.sends()
		if len(sends) != i+1 {
			t.Fatalf("after %d sends wxsim saw %d", i+1, len(sends))
		}
		last := sends[i]
		if last.Errcode != 0 || last.AppID != tn.appid {
			t.Errorf("body %d: wxsim answered %d for %s (%s)", i, last.Errcode, last.AppID, last.Note)
		}
		var got, want any
		json.Unmarshal(last.Body, &got)
		json.Unmarshal([]byte(b), &want)
		if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
			t.Errorf("body %d: WeChat got %s, want %s", i, g, w)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSendMessageNotHTMLEscaped(t *testing.T) {
	e := newEnv(t)
	tn := e.wxTenant()
	content := `see <a href="https://x?a=1&b=2">here</a>`
	e.mustStatus(e.do("POST", sendPath(tn.id), tn.apiKey, map[string]any{
		"touser": "o1", "msgtype": "text", "text": map[string]any{"content": content},
	}), 200)
	sends := e.sends()
	if len(sends) != 1 {
		t.Fatalf("wxsim saw %d sends", len(sends))
	}
	if sends[0].HTMLEscaped {
		t.Errorf("body was HTML-escaped: %s", sends[0].Body)
	}
	if !bytes.Contains(sends[0].Body, []byte(`<a href=\"https://x?a=1&b=2\">`)) {
		t.Errorf("link not intact in %s", sends[0].Body)
	}
}

func TestSendMessageWeChatErrors(t *testing.T) {
	e := newEnv(t)
	tn := e.wxTenant()
	text := func(to string) string {
		return `{"touser":"` + to + `","msgtype":"text","text":{"content":"hi"}}`
	}

	if err := e.sim.RejectSends("closed", wechat.CodeOutOfWindow); err != nil {
		t.Fatal(err)
	}
	r := e.mustStatus(e.do("POST", sendPath(tn.id), tn.apiKey, text("closed")), 400)
	if md := errorInfo(t, r); md["errcode"] != "45015" || !strings.Contains(md["errmsg"].(string), "response out of time limit") {
		t.Errorf("metadata = %v", md)
	}
	if r.body["code"] != float64(9) { // FAILED_PRECONDITION
		t.Errorf("code = %v, want 9", r.body["code"])
	}

	if err := e.sim.RejectSends("quota", wechat.CodeOutOfResponses); err != nil {
		t.Fatal(err)
	}
	r = e.mustStatus(e.do("POST", sendPath(tn.id), tn.apiKey, text("quota")), 429)
	if md := errorInfo(t, r); md["errcode"] != "45047" {
		t.Errorf("metadata = %v", md)
	}

	e.sim.FailNext(1, "/cgi-bin/message/custom/send")
	r = e.mustStatus(e.do("POST", sendPath(tn.id), tn.apiKey, text("o1")), 503)
	if md := errorInfo(t, r); md["errcode"] != "-1" {
		t.Errorf("metadata = %v", md)
	}
	// The fault is used up: the next send goes through.
	e.mustStatus(e.do("POST", sendPath(tn.id), tn.apiKey, text("o1")), 200)
}

func TestSendMessageRefreshesInvalidToken(t *testing.T) {
	e := newEnv(t)
	tn := e.wxTenant()
	body := `{"touser":"o1","msgtype":"text","text":{"content":"hi"}}`
	e.mustStatus(e.do("POST", sendPath(tn.id), tn.apiKey, body), 200)
	if err := e.sim.InvalidateTokens(tn.appid); err != nil {
		t.Fatal(err)
	}
	e.mustStatus(e.do("POST", sendPath(tn.id), tn.apiKey, body), 200)

	sends := e.sends()
	if len(sends) != 3 {
		t.Fatalf("wxsim saw %d sends, want 3 (ok, refused token, retry)", len(sends))
	}
	if sends[1].Errcode != wechat.CodeInvalidCredential || sends[2].Errcode != 0 {
		t.Errorf("errcodes = %d, %d; want 40001, 0", sends[1].Errcode, sends[2].Errcode)
	}
	if n := e.sim.TokenCounts(tn.appid).Total(); n != 2 {
		t.Errorf("tokens issued = %d, want 2", n)
	}
}

func TestSendMessageTenantScope(t *testing.T) {
	e := newEnv(t)
	a, b := e.wxTenant(), e.wxTenant()
	body := `{"touser":"o1","msgtype":"text","text":{"content":"hi"}}`
	e.mustStatus(e.do("POST", sendPath(b.id), a.apiKey, body), 403)
	e.mustStatus(e.do("POST", "/v1/tenants/"+b.id+"/typing", a.apiKey, `{"touser":"o1","command":"Typing"}`), 403)
	e.mustStatus(e.do("POST", sendPath(b.id), "", body), 401)
	if n := len(e.sends()); n != 0 {
		t.Errorf("wxsim saw %d sends", n)
	}
	// An admin may send as any tenant.
	e.mustStatus(e.do("POST", sendPath(b.id), e.admin, body), 200)
	e.mustStatus(e.do("POST", sendPath("tn_missing"), e.admin, body), 404)
}

func TestSendMessageInvalid(t *testing.T) {
	e := newEnv(t)
	tn := e.wxTenant()
	for body, field := range map[string]string{
		`{"msgtype":"text","text":{"content":"hi"}}`:                                  "touser",
		`{"touser":"o1","text":{"content":"hi"}}`:                                     "msgtype",
		`{"touser":"o1","msgtype":"video"}`:                                           "msgtype",
		`{"touser":"o1","msgtype":"text"}`:                                            "text",
		`{"touser":"o1","msgtype":"text","text":{}}`:                                  "text.content",
		`{"touser":"o1","msgtype":"image","image":{}}`:                                "image.media_id",
		`{"touser":"o1","msgtype":"link","link":{"title":"t","description":"d"}}`:     "link.url",
		`{"touser":"o1","msgtype":"miniprogrampage","miniprogrampage":{"title":"t"}}`: "miniprogrampage.pagepath",
	} {
		r := e.mustStatus(e.do("POST", sendPath(tn.id), tn.apiKey, body), 400)
		if msg, _ := r.body["message"].(string); !strings.HasPrefix(msg, field+":") {
			t.Errorf("%s: message %q does not name %s", body, msg, field)
		}
	}
	if n := len(e.sends()); n != 0 {
		t.Errorf("wxsim saw %d sends", n)
	}
}

func TestSetTyping(t *testing.T) {
	e := newEnv(t)
	tn := e.wxTenant()
	r := e.mustStatus(e.do("POST", "/v1/tenants/"+tn.id+"/typing", tn.apiKey, `{"touser":"o1","command":"Typing"}`), 200)
	if strings.TrimSpace(r.raw) != "{}" {
		t.Errorf("answer %s", r.raw)
	}
	var typing []wxsim.Call
	for _, c := range e.sim.Calls() {
		if c.Path == "/cgi-bin/message/custom/typing" {
			typing = append(typing, c)
		}
	}
	if len(typing) != 1 || typing[0].Errcode != 0 || !bytes.Contains(typing[0].Body, []byte(`"command":"Typing"`)) {
		t.Errorf("typing calls = %+v", typing)
	}
	r = e.mustStatus(e.do("POST", "/v1/tenants/"+tn.id+"/typing", tn.apiKey, `{"touser":"o1","command":"Dance"}`), 400)
	if msg, _ := r.body["message"].(string); !strings.HasPrefix(msg, "command:") {
		t.Errorf("message %q", msg)
	}
}

// The send route skips the gateway but not the interceptors: the call
// metrics count its calls by code, the path's tenant wins over the body's,
// and bad bodies get the gateway's answers.
func TestSendRouteKeepsTheInterceptors(t *testing.T) {
	e := newEnv(t)
	tn := e.wxTenant()
	other := e.wxTenant()
	e.mustStatus(e.do("POST", sendPath(tn.id), tn.apiKey, `{"touser":"o1","msgtype":"text","text":{"content":"hi"}}`), 200)
	// A body naming another tenant is sent as the path's tenant: the
	// key of tn cannot reach other through it.
	e.mustStatus(e.do("POST", sendPath(tn.id), tn.apiKey, `{"id":"`+other.id+`","touser":"o1","msgtype":"text","text":{"content":"hi"}}`), 200)
	if sends := e.sends(); len(sends) != 2 || sends[1].AppID != tn.appid {
		t.Errorf("sends %+v, want both as %s", sends, tn.appid)
	}
	e.mustStatus(e.do("POST", sendPath(other.id), tn.apiKey, `{"touser":"o1","msgtype":"text","text":{"content":"hi"}}`), 403)
	r := e.mustStatus(e.do("POST", sendPath(tn.id), tn.apiKey, `{"touser":"o1","colour":"red"}`), 400)
	if msg, _ := r.body["message"].(string); !strings.Contains(msg, "colour") || r.body["code"] != float64(3) {
		t.Errorf("unknown field: %s", r.raw)
	}
	e.mustStatus(e.do("POST", sendPath(tn.id), tn.apiKey, `{"touser":`), 400)
	e.mustStatus(e.do("POST", sendPath(tn.id), tn.apiKey, `{"touser":"o\u0000","msgtype":"text","text":{"content":"hi"}}`), 400)

	metrics := e.metrics()
	for code, n := range map[string]int{"OK": 2, "PermissionDenied": 1, "InvalidArgument": 1} {
		want := fmt.Sprintf(`grpc_server_handled_total{grpc_code=%q,grpc_method="SendMessage",grpc_service="wxrelay.v1.MessageService",grpc_type="unary"} %d`, code, n)
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestDisabledTenantCannotSend: a disabled tenant's send, typing and upload
// are refused over REST and gRPC without a call to WeChat, with
// FAILED_PRECONDITION naming the state; enabled again, it sends.
func TestDisabledTenantCannotSend(t *testing.T) {
	e := newEnv(t)
	tn := e.wxTenant()
	e.mustStatus(e.do("POST", sendPath(tn.id), tn.apiKey, `{"touser":"o1","msgtype":"text","text":{"content":"hi"}}`), 200)
	e.mustStatus(e.do("PATCH", "/v1/tenants/"+tn.id, e.admin, map[string]any{"state": "STATE_DISABLED"}), 200)
	before := len(e.sim.Calls())

	for _, tt := range []struct{ name, path, body string }{
		{"send", sendPath(tn.id), `{"touser":"o1","msgtype":"text","text":{"content":"hi"}}`},
		{"typing", "/v1/tenants/" + tn.id + "/typing", `{"touser":"o1","command":"Typing"}`},
	} {
		r := e.mustStatus(e.do("POST", tt.path, tn.apiKey, tt.body), 400)
		if msg, _ := r.body["message"].(string); r.body["code"] != float64(codes.FailedPrecondition) || !strings.Contains(msg, "disabled") {
			t.Errorf("%s of a disabled tenant: %s, want FAILED_PRECONDITION saying it is disabled", tt.name, r.raw)
		}
	}
	msgs := wxrelayv1.NewMessageServiceClient(e.grpcClient())
	_, err := msgs.SendMessage(withToken(tn.apiKey), &wxrelayv1.SendMessageRequest{Id: tn.id,
		Msgtype: "text", Text: &wxrelayv1.TextContent{Content: "hi"}, Touser: "o1"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("gRPC send of a disabled tenant: %v, want FailedPrecondition", err)
	}
	_, err = msgs.UploadMedia(withToken(tn.apiKey), &wxrelayv1.UploadMediaRequest{Id: tn.id, Filename: "a.png", ContentType: "image/png", Content: smallPNG(t)})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("gRPC upload of a disabled tenant: %v, want FailedPrecondition", err)
	}
	if after := len(e.sim.Calls()); after != before {
		t.Errorf("WeChat received %d calls for a disabled tenant, want 0", after-before)
	}

	e.mustStatus(e.do("PATCH", "/v1/tenants/"+tn.id, e.admin, map[string]any{"state": "STATE_ACTIVE"}), 200)
	e.mustStatus(e.do("POST", sendPath(tn.id), tn.apiKey, `{"touser":"o1","msgtype":"text","text":{"content":"hi"}}`), 200)
}
