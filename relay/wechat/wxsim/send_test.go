package wxsim_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
)

func TestSend_Validation(t *testing.T) {
	e := newEnv(t)
	tok := e.classicToken(t)
	media := e.mustUpload(t, tok)

	const otherApp = "wx00000000000000b2"
	e.sim.AddApp(otherApp, secret)
	otherTok := e.get(t, "/cgi-bin/token?grant_type=client_credential&appid="+otherApp+"&secret="+secret).AccessToken
	othersMedia := e.mustUpload(t, otherTok)

	msg := func(fields map[string]any) string {
		fields["touser"] = openID
		b, err := json.Marshal(fields)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	text := func(content string) string {
		return msg(map[string]any{"msgtype": "text", "text": map[string]any{"content": content}})
	}
	link := map[string]any{"title": "T", "description": "D", "url": "https://example.com/a", "thumb_url": "https://example.com/t.jpg"}
	withLink := func(drop string) string {
		l := map[string]any{}
		for k, v := range link {
			if k != drop {
				l[k] = v
			}
		}
		return msg(map[string]any{"msgtype": "link", "link": l})
	}
	card := func(title, pagepath, thumb string) string {
		return msg(map[string]any{"msgtype": "miniprogrampage", "miniprogrampage": map[string]any{
			"title": title, "pagepath": pagepath, "thumb_media_id": thumb,
		}})
	}
	image := func(id string) string {
		return msg(map[string]any{"msgtype": "image", "image": map[string]any{"media_id": id}})
	}

	for _, tt := range []struct {
		name string
		body string
		want int
	}{
		{"text", text("Hello, 你好"), 0},
		{"text with a mini-program link", text(`<a href="https://x" data-miniprogram-appid="` + appID + `" data-miniprogram-path="pages/index">open</a>`), 0},
		{"text of 2048 bytes", text(strings.Repeat("你", 682) + "ab"), 0},
		{"text of 2049 bytes", text(strings.Repeat("a", 2049)), 45002},
		{"empty text", text(""), 44004},
		{"text object missing", msg(map[string]any{"msgtype": "text"}), 44004},
		{"image", image(media), 0},
		{"image without media_id", image(""), 40007},
		{"image with an unknown media_id", image("nonexistent"), 40007},
		{"image with another app's media_id", image(othersMedia), 40007},
		{"link", msg(map[string]any{"msgtype": "link", "link": link}), 0},
		{"link without title", withLink("title"), 47001},
		{"link without description", withLink("description"), 47001},
		{"link without url", withLink("url"), 47001},
		{"link without thumb_url", withLink("thumb_url"), 47001},
		{"card", card("T", "pages/index/index?foo=bar", media), 0},
		{"card with an extra appid field", msg(map[string]any{"msgtype": "miniprogrampage", "miniprogrampage": map[string]any{
			"title": "T", "pagepath": "pages/index", "thumb_media_id": media, "appid": appID,
		}}), 0},
		{"card without title", card("", "pages/index", media), 47001},
		{"card without pagepath", card("T", "", media), 47001},
		{"card without thumb_media_id", card("T", "pages/index", ""), 40007},
		{"card with an unknown thumb_media_id", card("T", "pages/index", "nonexistent"), 40007},
		{"no touser", `{"msgtype":"text","text":{"content":"hi"}}`, 40003},
		{"empty touser", `{"touser":"","msgtype":"text","text":{"content":"hi"}}`, 40003},
		{"no msgtype", msg(map[string]any{"text": map[string]any{"content": "hi"}}), 40008},
		{"unsupported msgtype", msg(map[string]any{"msgtype": "voice", "voice": map[string]any{"media_id": media}}), 40008},
		{"empty body", "", 44002},
		{"truncated JSON", `{"touser":`, 47001},
		{"JSON string", `"hi"`, 47001},
		{"touser of the wrong type", `{"touser":42,"msgtype":"text","text":{"content":"hi"}}`, 47001},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checkAnswer(t, e.send(t, tok, tt.body), tt.want)
			c := e.lastCall(t)
			if got, want := c.Errcode, tt.want; got != want {
				t.Errorf("Call.Errcode = %d, want %d", got, want)
			}
			if tt.want != 0 && c.Note == "" {
				t.Error("Call.Note is empty, want the reason for the error")
			}
		})
	}

	t.Run("business/send", func(t *testing.T) {
		body := `{"touser":"` + openID + `","msgtype":"text","text":{"content":"hi"},"businessid":"1"}`
		checkAnswer(t, e.postJSON(t, "/cgi-bin/message/custom/business/send?access_token="+tok, body), 0)
	})
	t.Run("GET", func(t *testing.T) {
		checkAnswer(t, e.get(t, "/cgi-bin/message/custom/send?access_token="+tok), 43002)
	})
}

func TestSend_RecordsBody(t *testing.T) {
	e := newEnv(t)
	tok := e.classicToken(t)
	body := `{"touser":"` + openID + `","msgtype":"text","text":{"content":"hi <b>"}}`
	checkAnswer(t, e.send(t, tok, body), 0)

	c := e.lastCall(t)
	if got, want := string(c.Body), body; got != want {
		t.Errorf("Call.Body = %s, want %s", got, want)
	}
	var m wxsim.Message
	if err := json.Unmarshal(c.Body, &m); err != nil {
		t.Fatal(err)
	}
	if m.ToUser != openID || m.MsgType != "text" || m.Text == nil || m.Text.Content != "hi <b>" {
		t.Errorf("decoded Call.Body = %+v, want the text sent", m)
	}
}

func TestSend_HTMLEscapedFlag(t *testing.T) {
	e := newEnv(t)
	tok := e.classicToken(t)
	link := `<a href="https://x?a=1&b=2">go</a>`

	goDefault, _ := json.Marshal(wxsim.Message{ToUser: openID, MsgType: "text", Text: &wxsim.Text{Content: link}})
	var raw bytes.Buffer
	enc := json.NewEncoder(&raw)
	enc.SetEscapeHTML(false)
	enc.Encode(wxsim.Message{ToUser: openID, MsgType: "text", Text: &wxsim.Text{Content: link}})

	wrap := func(content string) string {
		return `{"touser":"` + openID + `","msgtype":"text","text":{"content":"` + content + `"}}`
	}
	for _, tt := range []struct {
		name string
		body string
		want bool
	}{
		{"encoding/json defaults", string(goDefault), true},
		{"Encoder with SetEscapeHTML(false)", raw.String(), false},
		{`\u003c`, wrap(`\u003ca\u003e`), true},
		{`upper-case \u003C`, wrap(`\u003Cb`), true},
		{`\u0026 alone`, wrap(`fish \u0026 chips`), true},
		{"raw <, > and &", wrap(`<a href=\"x\">fish & chips</a>`), false},
		{`escaped backslash before u003c`, wrap(`C:\\u003c`), false},
		{`non-HTML \u escapes`, wrap(`\u4f60\u597d \u2028`), false},
		{"raw UTF-8", wrap(`你好`), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checkAnswer(t, e.send(t, tok, tt.body), 0) // WeChat accepts standard JSON either way
			if got := e.lastCall(t).HTMLEscaped; got != tt.want {
				t.Errorf("HTMLEscaped = %t, want %t for body %s", got, tt.want, tt.body)
			}
		})
	}
}

func TestSend_MediaExpiry(t *testing.T) {
	e := newEnv(t)
	tok := e.stableToken(t, false).AccessToken
	media := e.mustUpload(t, tok)
	body := `{"touser":"` + openID + `","msgtype":"image","image":{"media_id":"` + media + `"}}`

	e.clock.Advance(72*time.Hour - time.Second)
	tok = e.stableToken(t, false).AccessToken
	checkAnswer(t, e.send(t, tok, body), 0)
	e.clock.Advance(time.Second)
	checkAnswer(t, e.send(t, tok, body), 40007)
}

func TestTyping(t *testing.T) {
	e := newEnv(t)
	tok := e.classicToken(t)
	for _, tt := range []struct {
		name, path, body string
		want             int
	}{
		{"Typing", "/cgi-bin/message/custom/typing", `{"touser":"` + openID + `","command":"Typing"}`, 0},
		{"CancelTyping", "/cgi-bin/message/custom/typing", `{"touser":"` + openID + `","command":"CancelTyping"}`, 0},
		{"business Typing", "/cgi-bin/message/custom/business/typing", `{"touser":"` + openID + `","command":"Typing"}`, 0},
		{"lower-case command", "/cgi-bin/message/custom/typing", `{"touser":"` + openID + `","command":"typing"}`, 45072},
		{"no command", "/cgi-bin/message/custom/typing", `{"touser":"` + openID + `"}`, 45072},
		{"no touser", "/cgi-bin/message/custom/typing", `{"command":"Typing"}`, 40003},
		{"empty body", "/cgi-bin/message/custom/typing", ``, 44002},
		{"bad JSON", "/cgi-bin/message/custom/typing", `{command}`, 47001},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checkAnswer(t, e.postJSON(t, tt.path+"?access_token="+tok, tt.body), tt.want)
		})
	}
}
