package wechat_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
)

const (
	appID     = "wx00000000000000c1"
	appSecret = "S3cretS3cretS3cretS3cretS3cret42"
	openID    = "oUser0000000000000000000001"
)

// unknownToken has the shape of a token wxsim issues (128 base64url
// characters) but was never issued: 40001.
var unknownToken = strings.Repeat("Unknown-", 16)

// start is 2025-06-01 18:00 in Beijing, far from the quota day's edge.
var start = time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)

// env is wxsim, the fake WeChat, with appID registered, served over HTTP,
// and a Client pointed at it.
type env struct {
	sim    *wxsim.Server
	clock  *clockwork.FakeClock
	client *wechat.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	c := clockwork.NewFakeClockAt(start)
	sim := wxsim.New(wxsim.Options{Now: c.Now})
	sim.AddApp(appID, appSecret)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	return &env{sim: sim, clock: c, client: &wechat.Client{BaseURL: ts.URL, HTTP: ts.Client()}}
}

// mustToken fetches a classic access token.
func (e *env) mustToken(t *testing.T) string {
	t.Helper()
	tok, err := e.client.Token(t.Context(), appID, appSecret)
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	return tok.Token
}

// mustUpload uploads a real PNG and returns its media id.
func (e *env) mustUpload(t *testing.T, token string) string {
	t.Helper()
	m, err := e.client.UploadTempMedia(t.Context(), token, wechat.MediaTypeImage, "thumb.png", "image/png", bytes.NewReader(pngBytes(t)))
	if err != nil {
		t.Fatalf("UploadTempMedia: %v", err)
	}
	return m.MediaID
}

// lastCall returns the latest call wxsim recorded on path.
func (e *env) lastCall(t *testing.T, path string) wxsim.Call {
	t.Helper()
	calls := e.sim.Calls()
	for i := len(calls) - 1; i >= 0; i-- {
		if calls[i].Path == path {
			return calls[i]
		}
	}
	t.Fatalf("no call to %s recorded", path)
	return wxsim.Call{}
}

// pngBytes encodes a real 4×3 PNG.
func pngBytes(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 4, 3))
	img.Set(1, 1, color.RGBA{R: 7, G: 193, B: 96, A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// mustEncode is wechat.EncodeJSON or a failed test.
func mustEncode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := wechat.EncodeJSON(v)
	if err != nil {
		t.Fatalf("EncodeJSON(%#v): %v", v, err)
	}
	return b
}

// checkErrcode fails the test unless err carries WeChat's errcode want (0:
// no error), as an *APIError and never a *TransportError.
func checkErrcode(t *testing.T, op string, err error, want int) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Fatalf("%s: unexpected error %v", op, err)
		}
		return
	}
	apiErr, ok := errors.AsType[*wechat.APIError](err)
	if !ok {
		t.Fatalf("%s: error = %v (%T), want an *APIError with errcode %d", op, err, err, want)
	}
	if got := apiErr.Code; got != want {
		t.Fatalf("%s: errcode = %d (%q), want %d", op, got, apiErr.Msg, want)
	}
	if got := wechat.Errcode(err); got != want {
		t.Errorf("%s: Errcode(err) = %d, want %d", op, got, want)
	}
	if _, ok := errors.AsType[*wechat.TransportError](err); ok {
		t.Errorf("%s: an *APIError is also a *TransportError", op)
	}
}

// checkNoCredentials fails the test if err's text shows a credential.
func checkNoCredentials(t *testing.T, err error, credentials ...string) {
	t.Helper()
	for _, c := range credentials {
		if strings.Contains(err.Error(), c) {
			t.Errorf("error text %q shows the credential %q", err, c)
		}
	}
}

// fetchers call the classic and the stable token endpoint.
var fetchers = []struct {
	name  string
	path  string
	fetch func(ctx context.Context, c *wechat.Client, appid, secret string) (wechat.AccessToken, error)
}{
	{"classic", "/cgi-bin/token", func(ctx context.Context, c *wechat.Client, appid, secret string) (wechat.AccessToken, error) {
		return c.Token(ctx, appid, secret)
	}},
	{"stable", "/cgi-bin/stable_token", func(ctx context.Context, c *wechat.Client, appid, secret string) (wechat.AccessToken, error) {
		return c.StableToken(ctx, appid, secret, false)
	}},
}

func TestClient_Token(t *testing.T) {
	for _, f := range fetchers {
		for _, tt := range []struct {
			name        string
			appid       string
			secret      string
			ipWhitelist bool
			want        int
		}{
			{"ok", appID, appSecret, false, 0},
			{"wrong secret", appID, "wrong-secret", false, wechat.CodeInvalidSecret},
			{"unknown appid", "wx000000000000dead", appSecret, false, wechat.CodeInvalidAppID},
			{"IP not whitelisted", appID, appSecret, true, wechat.CodeIPNotWhitelisted},
		} {
			t.Run(f.name+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t)
				e.sim.SetIPWhitelist(tt.ipWhitelist)

				tok, err := f.fetch(t.Context(), e.client, tt.appid, tt.secret)
				checkErrcode(t, f.name+" token", err, tt.want)
				if tt.want != 0 {
					if tok != (wechat.AccessToken{}) {
						t.Errorf("token = %v on error, want the zero AccessToken", tok)
					}
					apiErr, _ := errors.AsType[*wechat.APIError](err)
					if apiErr.RequestID() == "" || strings.Contains(apiErr.Message(), "rid:") {
						t.Errorf("errmsg %q: Message() = %q, RequestID() = %q; want the rid split off", apiErr.Msg, apiErr.Message(), apiErr.RequestID())
					}
					checkNoCredentials(t, err, tt.secret)
					return
				}
				if got, want := len(tok.Token), 128; got != want {
					t.Errorf("len(Token) = %d, want %d", got, want)
				}
				if got, want := tok.ExpiresIn, 2*time.Hour; got != want {
					t.Errorf("ExpiresIn = %v, want %v", got, want)
				}
				if got, want := e.sim.TokenCounts(appID).Total(), 1; got != want {
					t.Errorf("tokens issued = %d, want %d", got, want)
				}
				// The token works.
				if err := e.client.SetTyping(t.Context(), tok.Token, openID, wechat.Typing); err != nil {
					t.Errorf("SetTyping with the new token: %v", err)
				}
			})
		}
	}
}

func TestClient_TokenRequests(t *testing.T) {
	e := newEnv(t)
	if _, err := e.client.Token(t.Context(), appID, appSecret); err != nil {
		t.Fatal(err)
	}
	call := e.lastCall(t, "/cgi-bin/token")
	if got, want := call.Method, http.MethodGet; got != want {
		t.Errorf("classic: method = %s, want %s", got, want)
	}
	wantQuery := url.Values{"grant_type": {"client_credential"}, "appid": {appID}, "secret": {appSecret}}
	if got, want := call.Query.Encode(), wantQuery.Encode(); got != want {
		t.Errorf("classic: query = %s, want %s", got, want)
	}

	if _, err := e.client.StableToken(t.Context(), appID, appSecret, true); err != nil {
		t.Fatal(err)
	}
	call = e.lastCall(t, "/cgi-bin/stable_token")
	if got, want := call.Method, http.MethodPost; got != want {
		t.Errorf("stable: method = %s, want %s", got, want)
	}
	if len(call.Query) != 0 {
		t.Errorf("stable: query = %v, want none: the secret belongs in the body", call.Query)
	}
	if got, want := string(call.Body), `{"grant_type":"client_credential","appid":"`+appID+`","secret":"`+appSecret+`","force_refresh":true}`; got != want {
		t.Errorf("stable: body = %s, want %s", got, want)
	}
}

func TestClient_StableToken_ForceRefresh(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()

	first, err := e.client.StableToken(ctx, appID, appSecret, false)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	again, err := e.client.StableToken(ctx, appID, appSecret, false)
	if err != nil {
		t.Fatal(err)
	}
	if again.Token != first.Token {
		t.Error("a normal stable_token call changed the token")
	}
	if got, want := again.ExpiresIn, 2*time.Hour-time.Minute; got != want {
		t.Errorf("ExpiresIn a minute later = %v, want %v", got, want)
	}

	forced, err := e.client.StableToken(ctx, appID, appSecret, true)
	if err != nil {
		t.Fatal(err)
	}
	if forced.Token == first.Token {
		t.Fatal("force_refresh returned the old token")
	}
	if got, want := forced.ExpiresIn, 2*time.Hour; got != want {
		t.Errorf("forced ExpiresIn = %v, want %v", got, want)
	}
	if got, want := e.sim.TokenCounts(appID), (wxsim.TokenCounts{Stable: 1, StableForced: 1}); got != want {
		t.Errorf("TokenCounts = %+v, want %+v", got, want)
	}

	// force_refresh killed the old token at once.
	err = e.client.SetTyping(ctx, first.Token, openID, wechat.Typing)
	checkErrcode(t, "typing with the old token", err, wechat.CodeInvalidCredential)
	if !wechat.IsTokenInvalid(err) {
		t.Errorf("IsTokenInvalid(%v) = false, want true", err)
	}
	if err := e.client.SetTyping(ctx, forced.Token, openID, wechat.Typing); err != nil {
		t.Errorf("typing with the new token: %v", err)
	}
}

func TestClient_SendCustomMessage_Kinds(t *testing.T) {
	e := newEnv(t)
	tok := e.mustToken(t)
	media := e.mustUpload(t, tok)

	for _, tt := range []struct {
		name string
		msg  wxsim.Message
	}{
		{"text", wxsim.Message{MsgType: "text", Text: &wxsim.Text{Content: "Hello, 你好 👋"}}},
		{"image", wxsim.Message{MsgType: "image", Image: &wxsim.Image{MediaID: media}}},
		{"link", wxsim.Message{MsgType: "link", Link: &wxsim.Link{
			Title: "T", Description: "D", URL: "https://example.com/a?x=1&y=2", ThumbURL: "https://example.com/t.jpg",
		}}},
		{"miniprogrampage", wxsim.Message{MsgType: "miniprogrampage", MiniProgramPage: &wxsim.MiniProgramPage{
			Title: "T", PagePath: "pages/index/index?foo=bar", ThumbMediaID: media,
		}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.msg.ToUser = openID
			body := mustEncode(t, tt.msg)
			if err := e.client.SendCustomMessage(t.Context(), tok, body); err != nil {
				t.Fatalf("SendCustomMessage(%s): %v", body, err)
			}
			call := e.lastCall(t, "/cgi-bin/message/custom/send")
			if got, want := call.Errcode, 0; got != want {
				t.Errorf("wxsim answered errcode %d (%s), want %d", got, call.Note, want)
			}
			if got, want := call.Query.Get("access_token"), tok; got != want {
				t.Errorf("access_token = %q, want the token", got)
			}
			if got, want := string(call.Body), string(body); got != want {
				t.Errorf("body arrived as %s, want %s", got, want)
			}
		})
	}
}

func TestClient_SendCustomMessage_NoHTMLEscaping(t *testing.T) {
	const content = `Open <a href="https://x?a=1&b=2" data-miniprogram-appid="` + appID + `" data-miniprogram-path="pages/index">this</a> & more`
	msg := wxsim.Message{ToUser: openID, MsgType: "text", Text: &wxsim.Text{Content: content}}

	for _, tt := range []struct {
		name        string
		encode      func(any) ([]byte, error)
		wantEscaped bool
	}{
		{"EncodeJSON", wechat.EncodeJSON, false},
		// The control: wxsim does notice what json.Marshal does.
		{"json.Marshal", json.Marshal, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tok := e.mustToken(t)
			body, err := tt.encode(msg)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.client.SendCustomMessage(t.Context(), tok, body); err != nil {
				t.Fatalf("SendCustomMessage: %v", err)
			}
			call := e.lastCall(t, "/cgi-bin/message/custom/send")
			if got, want := call.HTMLEscaped, tt.wantEscaped; got != want {
				t.Errorf("HTMLEscaped = %t, want %t; body %s", got, want, call.Body)
			}
			var got wxsim.Message
			if err := json.Unmarshal(call.Body, &got); err != nil {
				t.Fatal(err)
			}
			if got.Text == nil || got.Text.Content != content {
				t.Errorf("content arrived as %+v, want %q", got.Text, content)
			}
			if got, want := bytes.Contains(call.Body, []byte(`<a href=\"https://x?a=1&b=2\"`)), !tt.wantEscaped; got != want {
				t.Errorf("body holds the link literally: %t, want %t; body %s", got, want, call.Body)
			}
		})
	}
}

func TestEncodeJSON(t *testing.T) {
	for _, tt := range []struct {
		name string
		v    any
		want string
	}{
		{"HTML characters stay", map[string]string{"content": `<a href="https://x?a=1&b=2">x</a>`}, `{"content":"<a href=\"https://x?a=1&b=2\">x</a>"}`},
		{"UTF-8 stays raw", map[string]string{"content": "你好 café"}, `{"content":"你好 café"}`},
		{"RawMessage is not re-escaped", map[string]json.RawMessage{"text": json.RawMessage(`{"content": "<b>"}`)}, `{"text":{"content":"<b>"}}`},
		{"no trailing newline", "x", `"x"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wechat.EncodeJSON(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("EncodeJSON = %s, want %s", got, tt.want)
			}
		})
	}
	if _, err := wechat.EncodeJSON(func() {}); err == nil {
		t.Error("EncodeJSON(func) succeeded, want an error")
	}
}

func TestClient_SendCustomMessage_Passthrough(t *testing.T) {
	e := newEnv(t)
	tok := e.mustToken(t)
	// Odd spacing, key order, escapes json.Marshal would not write and a
	// field WeChat ignores: none of it may be touched.
	body := []byte("{ \"msgtype\" : \"text\",\n\t\"touser\":\"" + openID + "\", \"text\":{\"content\":\"caf\\u00e9 \\u003cb\\u003e &amp; 你好\"} , \"extra\": [1, 2.50, true]}")
	if err := e.client.SendCustomMessage(t.Context(), tok, body); err != nil {
		t.Fatalf("SendCustomMessage: %v", err)
	}
	call := e.lastCall(t, "/cgi-bin/message/custom/send")
	if !bytes.Equal(call.Body, body) {
		t.Errorf("body arrived as\n%s\nwant byte for byte\n%s", call.Body, body)
	}
	if !call.HTMLEscaped {
		t.Error("the caller's \\u003c escapes were rewritten; a passthrough body must arrive as sent")
	}
}

func TestClient_SendCustomMessage_Errors(t *testing.T) {
	const rejected = "oUser0000000000000000000002"
	text := func(to string) wxsim.Message {
		return wxsim.Message{ToUser: to, MsgType: "text", Text: &wxsim.Text{Content: "hi"}}
	}

	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, e *env) (token string, body []byte)
		want  int
		// wantInvalid is what IsTokenInvalid must say.
		wantInvalid bool
		wantMessage string
	}{
		{
			name: "window closed",
			setup: func(t *testing.T, e *env) (string, []byte) {
				if err := e.sim.RejectSends(rejected, wechat.CodeOutOfWindow); err != nil {
					t.Fatal(err)
				}
				return e.mustToken(t), mustEncode(t, text(rejected))
			},
			want:        wechat.CodeOutOfWindow,
			wantMessage: "response out of time limit or subscription is canceled",
		},
		{
			name: "reply quota used up",
			setup: func(t *testing.T, e *env) (string, []byte) {
				if err := e.sim.RejectSends(rejected, wechat.CodeOutOfResponses); err != nil {
					t.Fatal(err)
				}
				return e.mustToken(t), mustEncode(t, text(rejected))
			},
			want:        wechat.CodeOutOfResponses,
			wantMessage: "out of response count limit",
		},
		{
			name: "system error",
			setup: func(t *testing.T, e *env) (string, []byte) {
				tok := e.mustToken(t)
				e.sim.FailNext(1, "/cgi-bin/message/custom/send")
				return tok, mustEncode(t, text(openID))
			},
			want:        wechat.CodeSystemError,
			wantMessage: "system error",
		},
		{
			name: "tokens invalidated",
			setup: func(t *testing.T, e *env) (string, []byte) {
				tok := e.mustToken(t)
				if err := e.sim.InvalidateTokens(appID); err != nil {
					t.Fatal(err)
				}
				return tok, mustEncode(t, text(openID))
			},
			want:        wechat.CodeInvalidCredential,
			wantInvalid: true,
		},
		{
			name: "token superseded over five minutes ago",
			setup: func(t *testing.T, e *env) (string, []byte) {
				old := e.mustToken(t)
				e.mustToken(t)
				e.clock.Advance(5*time.Minute + time.Second)
				return old, mustEncode(t, text(openID))
			},
			want:        wechat.CodeInvalidCredential,
			wantInvalid: true,
		},
		{
			name: "token unknown",
			setup: func(t *testing.T, e *env) (string, []byte) {
				return unknownToken, mustEncode(t, text(openID))
			},
			want:        wechat.CodeInvalidCredential,
			wantInvalid: true,
		},
		{
			name: "token malformed",
			setup: func(t *testing.T, e *env) (string, []byte) {
				return "not-a-token", mustEncode(t, text(openID))
			},
			want:        wechat.CodeInvalidToken,
			wantInvalid: true,
		},
		{
			name: "token expired",
			setup: func(t *testing.T, e *env) (string, []byte) {
				tok := e.mustToken(t)
				e.clock.Advance(2*time.Hour + time.Second)
				return tok, mustEncode(t, text(openID))
			},
			want:        wechat.CodeTokenExpired,
			wantInvalid: true,
		},
		{
			name: "empty body",
			setup: func(t *testing.T, e *env) (string, []byte) {
				return e.mustToken(t), nil
			},
			want: wechat.CodeEmptyPostData,
		},
		{
			name: "no touser",
			setup: func(t *testing.T, e *env) (string, []byte) {
				return e.mustToken(t), mustEncode(t, text(""))
			},
			want: wechat.CodeInvalidOpenID,
		},
		{
			name: "unknown media id",
			setup: func(t *testing.T, e *env) (string, []byte) {
				return e.mustToken(t), mustEncode(t, wxsim.Message{ToUser: openID, MsgType: "image", Image: &wxsim.Image{MediaID: "nope"}})
			},
			want: wechat.CodeInvalidMediaID,
		},
		{
			name: "text too long",
			setup: func(t *testing.T, e *env) (string, []byte) {
				m := text(openID)
				m.Text.Content = strings.Repeat("a", 2049)
				return e.mustToken(t), mustEncode(t, m)
			},
			want: wechat.CodeContentTooLong,
		},
		{
			name: "not an object",
			setup: func(t *testing.T, e *env) (string, []byte) {
				return e.mustToken(t), []byte(`["touser"]`)
			},
			want: wechat.CodeDataFormat,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tok, body := tt.setup(t, e)
			err := e.client.SendCustomMessage(t.Context(), tok, body)
			checkErrcode(t, "SendCustomMessage", err, tt.want)
			if got, want := wechat.IsTokenInvalid(err), tt.wantInvalid; got != want {
				t.Errorf("IsTokenInvalid(%v) = %t, want %t", err, got, want)
			}
			apiErr, _ := errors.AsType[*wechat.APIError](err)
			if tt.wantMessage != "" && apiErr.Message() != tt.wantMessage {
				t.Errorf("Message() = %q, want %q (Msg %q)", apiErr.Message(), tt.wantMessage, apiErr.Msg)
			}
			if !strings.HasPrefix(apiErr.Msg, apiErr.Message()+" rid: ") {
				t.Errorf("Msg = %q, want it kept as sent: Message() + \" rid: …\"", apiErr.Msg)
			}
			checkNoCredentials(t, err, tok)
		})
	}
}

func TestClient_SetTyping(t *testing.T) {
	e := newEnv(t)
	tok := e.mustToken(t)

	for _, tt := range []struct {
		name    string
		touser  string
		command string
		want    int
	}{
		{"typing", openID, wechat.Typing, 0},
		{"cancel", openID, wechat.CancelTyping, 0},
		{"bad command", openID, "typing", wechat.CodeBadTypingCommand},
		{"empty command", openID, "", wechat.CodeBadTypingCommand},
		{"no touser", "", wechat.Typing, wechat.CodeInvalidOpenID},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := e.client.SetTyping(t.Context(), tok, tt.touser, tt.command)
			checkErrcode(t, "SetTyping", err, tt.want)
			call := e.lastCall(t, "/cgi-bin/message/custom/typing")
			want := `{"touser":"` + tt.touser + `","command":"` + tt.command + `"}`
			if got := string(call.Body); got != want {
				t.Errorf("body = %s, want %s", got, want)
			}
		})
	}
}

func TestClient_UploadTempMedia(t *testing.T) {
	e := newEnv(t)
	tok := e.mustToken(t)
	img := pngBytes(t)

	for _, tt := range []struct {
		name            string
		mediaType       string
		filename        string
		contentType     string
		content         []byte
		want            int
		wantFilename    string
		wantContentType string
	}{
		{"png", wechat.MediaTypeImage, "thumb.png", "image/png", img, 0, "thumb.png", "image/png"},
		{"label sniffed, name defaulted", wechat.MediaTypeImage, "", "", img, 0, "media", "image/png"},
		{"quotes in the filename", wechat.MediaTypeImage, `a "b".png`, "image/png", img, 0, `a "b".png`, "image/png"},
		{"not an image", wechat.MediaTypeImage, "notes.txt", "text/plain", []byte("hello, not an image"), wechat.CodeInvalidMediaType, "notes.txt", "text/plain"},
		{"image mislabelled as text", wechat.MediaTypeImage, "x.txt", "text/plain", img, 0, "x.txt", "text/plain"},
		{"type video", "video", "thumb.png", "image/png", img, wechat.CodeInvalidMediaType, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := e.client.UploadTempMedia(t.Context(), tok, tt.mediaType, tt.filename, tt.contentType, bytes.NewReader(tt.content))
			checkErrcode(t, "UploadTempMedia", err, tt.want)
			call := e.lastCall(t, "/cgi-bin/media/upload")
			if tt.wantFilename != "" {
				if call.Upload == nil {
					t.Fatal("wxsim saw no media part")
				}
				if got, want := *call.Upload, (wxsim.Upload{Filename: tt.wantFilename, ContentType: tt.wantContentType, Size: int64(len(tt.content)), MediaID: m.MediaID}); got != want {
					t.Errorf("upload arrived as %+v, want %+v", got, want)
				}
			}
			if tt.want != 0 {
				return
			}
			if got, want := m, (wechat.Media{Type: "image", MediaID: m.MediaID, CreatedAt: start}); got != want || m.MediaID == "" {
				t.Errorf("Media = %+v, want %+v with a MediaID", got, want)
			}
			// The media id is good for an image send.
			body := mustEncode(t, wxsim.Message{ToUser: openID, MsgType: "image", Image: &wxsim.Image{MediaID: m.MediaID}})
			if err := e.client.SendCustomMessage(t.Context(), tok, body); err != nil {
				t.Errorf("image send with the uploaded media id: %v", err)
			}
		})
	}
}

func TestClient_UploadTempMedia_TooLarge(t *testing.T) {
	e := newEnv(t)
	tok := e.mustToken(t)
	_, err := e.client.UploadTempMedia(t.Context(), tok, wechat.MediaTypeImage, "big.png", "image/png", bytes.NewReader(make([]byte, wechat.MaxUploadBytes+1)))
	if !errors.Is(err, wechat.ErrMediaTooLarge) {
		t.Fatalf("error = %v, want ErrMediaTooLarge", err)
	}
	for _, c := range e.sim.Calls() {
		if c.Path == "/cgi-bin/media/upload" {
			t.Fatal("an oversized file was sent")
		}
	}
}

func TestClient_TransportErrors_ClosedServer(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	ts.Close()
	client := &wechat.Client{BaseURL: ts.URL}
	const token = "TokenTokenTokenTokenTokenTokenTokenTokenTokenTokenTokenTokenTokenToken"

	for _, tt := range []struct {
		name   string
		call   func(ctx context.Context) error
		secret string // must not show
	}{
		{"Token", func(ctx context.Context) error {
			_, err := client.Token(ctx, appID, appSecret)
			return err
		}, appSecret},
		{"StableToken", func(ctx context.Context) error {
			_, err := client.StableToken(ctx, appID, appSecret, false)
			return err
		}, appSecret},
		{"SendCustomMessage", func(ctx context.Context) error {
			return client.SendCustomMessage(ctx, token, []byte(`{}`))
		}, token},
		{"SetTyping", func(ctx context.Context) error {
			return client.SetTyping(ctx, token, openID, wechat.Typing)
		}, token},
		{"UploadTempMedia", func(ctx context.Context) error {
			_, err := client.UploadTempMedia(ctx, token, wechat.MediaTypeImage, "x.png", "image/png", strings.NewReader("x"))
			return err
		}, token},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(t.Context())
			te, ok := errors.AsType[*wechat.TransportError](err)
			if !ok {
				t.Fatalf("error = %v (%T), want a *TransportError", err, err)
			}
			if _, ok := errors.AsType[*wechat.APIError](err); ok || wechat.Errcode(err) != 0 {
				t.Errorf("a transport failure reads as a WeChat answer: %v", err)
			}
			if got, want := te.StatusCode, 0; got != want {
				t.Errorf("StatusCode = %d, want %d", got, want)
			}
			checkNoCredentials(t, err, tt.secret)
			if ue, ok := errors.AsType[*url.Error](err); !ok {
				t.Errorf("error %v wraps no *url.Error", err)
			} else if strings.Contains(ue.URL, tt.secret) {
				t.Errorf("the wrapped *url.Error shows the credential: %s", ue.URL)
			} else if strings.Contains(ue.URL, "?") && !strings.Contains(ue.URL, "=REDACTED") {
				t.Errorf("the wrapped *url.Error's URL %s is not redacted", ue.URL)
			}
		})
	}
}

func TestClient_TransportErrors_Timeout(t *testing.T) {
	e := newEnv(t)
	tok := e.mustToken(t)
	e.sim.SetLatency(2 * time.Second)

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := e.client.SendCustomMessage(ctx, tok, mustEncode(t, wxsim.Message{ToUser: openID, MsgType: "text", Text: &wxsim.Text{Content: "hi"}}))
	if _, ok := errors.AsType[*wechat.TransportError](err); !ok {
		t.Fatalf("error = %v (%T), want a *TransportError", err, err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false", err)
	}
	checkNoCredentials(t, err, tok)

	// The client's own timeout behaves alike.
	client := &wechat.Client{BaseURL: e.client.BaseURL, HTTP: &http.Client{Timeout: 50 * time.Millisecond}}
	_, err = client.Token(t.Context(), appID, appSecret)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Token past HTTP.Timeout: errors.Is(%v, context.DeadlineExceeded) = false", err)
	}
	checkNoCredentials(t, err, appSecret)
}

// TestClient_TransportErrors_Answers covers answers wxsim never gives
// because WeChat never does, but a proxy or a broken network in front of
// WeChat might. The handlers are not fakes of WeChat, just of such failures.
func TestClient_TransportErrors_Answers(t *testing.T) {
	followed := 0
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		followed++
		w.Write([]byte(`{"access_token":"stolen","expires_in":7200}`))
	}))
	t.Cleanup(elsewhere.Close)

	answer := func(status int, contentType, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.WriteHeader(status)
			io.WriteString(w, body)
		}
	}
	for _, tt := range []struct {
		name       string
		handler    http.Handler
		wantStatus int
		wantErr    string // in the error text
	}{
		{"bad gateway", answer(http.StatusBadGateway, "text/html", "<html>502</html>"), 502, "HTTP status 502 Bad Gateway"},
		{"HTML with 200", answer(http.StatusOK, "text/html", "<html>hi</html>"), 200, "not a JSON object"},
		{"empty 200", answer(http.StatusOK, "application/json", ""), 200, "not a JSON object"},
		{"JSON null", answer(http.StatusOK, "application/json", "null"), 200, "not a JSON object"},
		{"JSON array", answer(http.StatusOK, "application/json", "[]"), 200, "not a JSON object"},
		{"truncated JSON", answer(http.StatusOK, "application/json", `{"access_token":"x","exp`), 200, "not WeChat's JSON"},
		{"errcode not a number", answer(http.StatusOK, "application/json", `{"errcode":"40001"}`), 200, "not WeChat's JSON"},
		{"no access_token", answer(http.StatusOK, "application/json", `{"expires_in":7200}`), 200, "no access_token"},
		{"no expires_in", answer(http.StatusOK, "application/json", `{"access_token":"x"}`), 200, "expires_in"},
		{"expires_in not a number", answer(http.StatusOK, "application/json", `{"access_token":"x","expires_in":"soon"}`), 200, "not WeChat's JSON"},
		{"over 1 MiB", answer(http.StatusOK, "application/json", `{"access_token":"`+strings.Repeat("a", 1<<20)+`","expires_in":7200}`), 200, "over 1048576 bytes"},
		{"redirect", http.RedirectHandler(elsewhere.URL+"/cgi-bin/token", http.StatusFound), 302, "HTTP status 302 Found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(tt.handler)
			t.Cleanup(ts.Close)
			// A client that would follow redirects: the Client must not.
			hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return nil }}
			client := &wechat.Client{BaseURL: ts.URL, HTTP: hc}

			tok, err := client.Token(t.Context(), appID, appSecret)
			te, ok := errors.AsType[*wechat.TransportError](err)
			if !ok {
				t.Fatalf("Token = %v, %v (%T); want a *TransportError", tok, err, err)
			}
			if got, want := te.StatusCode, tt.wantStatus; got != want {
				t.Errorf("StatusCode = %d, want %d", got, want)
			}
			if got, want := te.Op, "GET /cgi-bin/token"; got != want {
				t.Errorf("Op = %q, want %q", got, want)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %q, want it to mention %q", err, tt.wantErr)
			}
			if wechat.Errcode(err) != 0 {
				t.Errorf("Errcode(%v) = %d, want 0", err, wechat.Errcode(err))
			}
			checkNoCredentials(t, err, appSecret)
			if followed != 0 {
				t.Errorf("the redirect was followed %d times", followed)
			}
			if hc.CheckRedirect == nil {
				t.Error("the caller's http.Client was modified")
			}
		})
	}
}

func TestClient_TolerantAnswers(t *testing.T) {
	for _, tt := range []struct {
		name string
		body string
		want wechat.AccessToken
	}{
		{"documented", `{"access_token":"tok","expires_in":7200}`, wechat.AccessToken{Token: "tok", ExpiresIn: 2 * time.Hour}},
		{"errcode 0 and extra fields", `{"errcode":0,"errmsg":"ok","access_token":"tok","expires_in":300,"scope":{"a":[1,2]}}`, wechat.AccessToken{Token: "tok", ExpiresIn: 5 * time.Minute}},
		{"expires_in as a string", `{"access_token":"tok","expires_in":"7200"}`, wechat.AccessToken{Token: "tok", ExpiresIn: 2 * time.Hour}},
		{"whitespace around", "\n {\"access_token\":\"tok\",\"expires_in\":7200}\n", wechat.AccessToken{Token: "tok", ExpiresIn: 2 * time.Hour}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain") // WeChat's labels vary; the body decides
				io.WriteString(w, tt.body)
			}))
			t.Cleanup(ts.Close)
			got, err := (&wechat.Client{BaseURL: ts.URL}).Token(t.Context(), appID, appSecret)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Token = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestClient_BaseURL(t *testing.T) {
	sim := wxsim.New(wxsim.Options{})
	sim.AddApp(appID, appSecret)
	mux := http.NewServeMux()
	mux.Handle("/wechat/", http.StripPrefix("/wechat", sim))
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)

	for _, tt := range []struct {
		name    string
		baseURL string
		wantErr error
	}{
		{"path prefix", ts.URL + "/wechat", nil},
		{"path prefix with a slash", ts.URL + "/wechat/", nil},
		{"no scheme", "api.weixin.qq.com", wechat.ErrInvalidConfig},
		{"ftp", "ftp://api.weixin.qq.com", wechat.ErrInvalidConfig},
		{"query", ts.URL + "/wechat?x=1", wechat.ErrInvalidConfig},
		{"unparsable, with a password", "http://user:hunter2@host:port\x7f/", wechat.ErrInvalidConfig},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := (&wechat.Client{BaseURL: tt.baseURL}).Token(t.Context(), appID, appSecret)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Token: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Token: error = %v, want %v", err, tt.wantErr)
			}
			checkNoCredentials(t, err, appSecret, "hunter2")
		})
	}
}

func TestAPIError(t *testing.T) {
	for _, tt := range []struct {
		msg         string
		wantMessage string
		wantID      string
	}{
		{"invalid appsecret rid: 6650a1b2-1a2b3c4d-5e6f7a8b", "invalid appsecret", "6650a1b2-1a2b3c4d-5e6f7a8b"},
		{"invalid credential, access_token is invalid or not latest hint: [Vh1xVa0981vr20]", "invalid credential, access_token is invalid or not latest", "Vh1xVa0981vr20"},
		{"invalid ip 101.45.43.1 ipv6 ::ffff:101.45.43.1, not in whitelist rid: 6650a1b2-1a2b3c4d-5e6f7a8b", "invalid ip 101.45.43.1 ipv6 ::ffff:101.45.43.1, not in whitelist", "6650a1b2-1a2b3c4d-5e6f7a8b"},
		{"system error hint: [abc] rid: def", "system error", "def"},
		{"rid: 6650a1b2-1a2b3c4d-5e6f7a8b", "", "6650a1b2-1a2b3c4d-5e6f7a8b"},
		{"a rid: in the middle of a sentence", "a rid: in the middle of a sentence", ""},
		{"hint: [not a suffix] really", "hint: [not a suffix] really", ""},
		{"system error", "system error", ""},
		{"", "", ""},
	} {
		t.Run(tt.msg, func(t *testing.T) {
			e := &wechat.APIError{Code: -1, Msg: tt.msg}
			if got, want := e.Message(), tt.wantMessage; got != want {
				t.Errorf("Message() = %q, want %q", got, want)
			}
			if got, want := e.RequestID(), tt.wantID; got != want {
				t.Errorf("RequestID() = %q, want %q", got, want)
			}
			if got := e.Error(); !strings.Contains(got, tt.msg) || !strings.Contains(got, "-1") {
				t.Errorf("Error() = %q, want the code and Msg as sent", got)
			}
		})
	}
}

func TestErrcode(t *testing.T) {
	for _, tt := range []struct {
		name        string
		err         error
		wantCode    int
		wantInvalid bool
	}{
		{"nil", nil, 0, false},
		{"other error", errors.New("boom"), 0, false},
		{"transport", &wechat.TransportError{Op: "GET /cgi-bin/token", StatusCode: 502}, 0, false},
		{"40001 wrapped", fmt.Errorf("send: %w", &wechat.APIError{Code: wechat.CodeInvalidCredential}), 40001, true},
		{"40014", &wechat.APIError{Code: wechat.CodeInvalidToken}, 40014, true},
		{"42001", &wechat.APIError{Code: wechat.CodeTokenExpired}, 42001, true},
		{"41001 token missing", &wechat.APIError{Code: 41001}, 41001, false},
		{"45015", &wechat.APIError{Code: wechat.CodeOutOfWindow}, 45015, false},
		{"-1", &wechat.APIError{Code: wechat.CodeSystemError}, -1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := wechat.Errcode(tt.err), tt.wantCode; got != want {
				t.Errorf("Errcode = %d, want %d", got, want)
			}
			if got, want := wechat.IsTokenInvalid(tt.err), tt.wantInvalid; got != want {
				t.Errorf("IsTokenInvalid = %t, want %t", got, want)
			}
		})
	}
}

func TestAccessToken_HidesToken(t *testing.T) {
	const secretToken = "VerySecretAccessTokenValue"
	tok := wechat.AccessToken{Token: secretToken, ExpiresIn: 2 * time.Hour}

	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("fetched", "token", tok)
	for _, got := range []string{
		fmt.Sprint(tok),
		fmt.Sprintf("%v %+v %#v %s", tok, tok, tok, tok),
		fmt.Sprintf("%v", &tok),
		logged.String(),
	} {
		if strings.Contains(got, secretToken) {
			t.Errorf("%q shows the token", got)
		}
		if !strings.Contains(got, "REDACTED") {
			t.Errorf("%q does not say the token is redacted", got)
		}
	}
}

func TestClient_Concurrent(t *testing.T) {
	e := newEnv(t)
	tok := e.mustToken(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		body := mustEncode(t, wxsim.Message{ToUser: openID, MsgType: "text", Text: &wxsim.Text{Content: fmt.Sprint("hi ", i)}})
		wg.Go(func() {
			errs <- e.client.SendCustomMessage(t.Context(), tok, body)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
