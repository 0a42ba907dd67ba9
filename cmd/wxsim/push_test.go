package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
)

// The mini program of these tests (the official push example's token and
// key, docs/protocol.md §4).
const (
	testToken  = "AAAAA"
	testAppID  = "wxba5fad812f8e6fb9"
	testAESKey = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
)

// noEnv is a lookupEnv with no variables set.
func noEnv(string) (string, bool) { return "", false }

// mapEnv is a lookupEnv reading m.
func mapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// received is one push as a relay saw it.
type received struct {
	query       url.Values
	body        []byte
	contentType string
	msg         *wechat.Message
	err         error // from Receiver.Receive
}

// fakeRelay is a push endpoint built on relay/wechat's Receiver, configured
// like the test mini program in one mode, with wxsim's default original ID.
type fakeRelay struct {
	*httptest.Server
	rcv *wechat.Receiver

	mu  sync.Mutex
	got []received
	// answer writes the answer to a push that Receive accepted; nil
	// answers success.
	answer func(w http.ResponseWriter, r *http.Request, m *wechat.Message)
}

func newFakeRelay(t *testing.T, mode wechat.Mode) *fakeRelay {
	t.Helper()
	c, err := wechat.NewCipher(testAESKey, testAppID)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRelay{rcv: &wechat.Receiver{
		Token: testToken, Mode: mode, Cipher: c, OriginalID: defaultOriginalID(testAppID),
	}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m, err := f.rcv.Receive(r.URL.Query(), body)
		f.mu.Lock()
		f.got = append(f.got, received{r.URL.Query(), body, r.Header.Get("Content-Type"), m, err})
		f.mu.Unlock()
		switch {
		case errors.Is(err, wechat.ErrBadSignature):
			http.Error(w, err.Error(), http.StatusUnauthorized)
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadRequest)
		case f.answer != nil:
			f.answer(w, r, m)
		default:
			io.WriteString(w, wechat.Success)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

// last returns the last push received.
func (f *fakeRelay) last(t *testing.T) received {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.got) == 0 {
		t.Fatal("the relay received no push")
	}
	return f.got[len(f.got)-1]
}

// runCmd runs wxsim with args and no environment.
func runCmd(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	lookup := noEnv
	if env != nil {
		lookup = mapEnv(env)
	}
	switch args[0] {
	case "push":
		err = push(context.Background(), args[1:], lookup, &out, &errOut)
	case "verify":
		err = verify(context.Background(), args[1:], lookup, &out, &errOut)
	case "load":
		err = loadCmd(context.Background(), args[1:], lookup, &out, &errOut)
	default:
		err = run(context.Background(), args, &out, &errOut)
	}
	return out.String(), errOut.String(), err
}

// data decodes a message's Data, numbers as json.Number.
func data(t *testing.T, m *wechat.Message) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(m.Data))
	d.UseNumber()
	var v map[string]any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestPush_ModesFormatsKinds(t *testing.T) {
	const msgID = "6054768590064713728"
	kinds := []struct {
		name    string
		args    []string
		msgType string
		event   string
		fields  map[string]string // in Data, besides the common ones
	}{
		{"text", []string{"--text", "hi <b>&</b> ]]> 你好"}, "text", "", map[string]string{"Content": "hi <b>&</b> ]]> 你好", "MsgId": msgID}},
		{"image", []string{"--image", "MEDIA_1"}, "image", "", map[string]string{"MediaId": "MEDIA_1", "PicUrl": "http://mmbiz.qpic.cn/mmbiz_jpg/wxsim/MEDIA_1/0", "MsgId": msgID}},
		{"miniprogrampage", []string{"--miniprogrampage", "A card", "--pagepath", "pages/a?x=1", "--thumb-media-id", "THUMB"}, "miniprogrampage", "",
			map[string]string{"Title": "A card", "AppId": testAppID, "PagePath": "pages/a?x=1", "ThumbMediaId": "THUMB", "MsgId": msgID}},
		{"user_enter_tempsession", []string{"--event", "user_enter_tempsession", "--session-from", "btn-1"}, "event", "user_enter_tempsession",
			map[string]string{"SessionFrom": "btn-1"}},
		{"unknown event", []string{"--event", "debug_demo", "--field", "debug_str=hello ]]> world", "--field", "n=1"}, "event", "debug_demo",
			map[string]string{"debug_str": "hello ]]> world", "n": "1"}},
	}
	for _, mode := range []wechat.Mode{wechat.ModePlaintext, wechat.ModeCompatible, wechat.ModeSafe} {
		for _, format := range []wechat.Format{wechat.FormatXML, wechat.FormatJSON} {
			for _, k := range kinds {
				t.Run(mode.String()+"/"+format.String()+"/"+k.name, func(t *testing.T) {
					relay := newFakeRelay(t, mode)
					args := []string{"push", "--url", relay.URL + "/wx/t1", "--token", testToken, "--appid", testAppID,
						"--mode", mode.String(), "--format", format.String(), "--timestamp", "1714112445", "--nonce", "415670741"}
					if mode != wechat.ModePlaintext {
						args = append(args, "--aes-key", testAESKey)
					}
					if k.msgType != "event" {
						args = append(args, "--msg-id", msgID)
					}
					stdout, stderr, err := runCmd(t, nil, append(args, k.args...)...)
					if err != nil {
						t.Fatalf("push: %v\nstderr: %s", err, stderr)
					}
					if want := "HTTP/1.1 200 OK\nsuccess\n"; stdout != want {
						t.Errorf("stdout = %q, want %q", stdout, want)
					}

					got := relay.last(t)
					if got.err != nil {
						t.Fatalf("Receive: %v", got.err)
					}
					if want := format.ContentType(); got.contentType != want {
						t.Errorf("Content-Type = %q, want %q", got.contentType, want)
					}
					if f, err := wechat.DetectFormat(got.body); err != nil || f != format {
						t.Errorf("body format = %v, %v; want %v", f, err, format)
					}
					wantKeys := "nonce signature timestamp"
					if mode != wechat.ModePlaintext {
						wantKeys = "encrypt_type msg_signature nonce openid signature timestamp"
						if got.query.Get("encrypt_type") != "aes" || got.query.Get("openid") != defaultOpenID {
							t.Errorf("query %v: want encrypt_type=aes and openid=%s", got.query, defaultOpenID)
						}
					}
					if keys := sortedKeys(got.query); keys != wantKeys {
						t.Errorf("query keys = %q, want %q", keys, wantKeys)
					}
					if !wechat.VerifySignature(got.query.Get("signature"), testToken, "1714112445", "415670741") {
						t.Error("signature does not verify")
					}
					if mode == wechat.ModeSafe && strings.Contains(string(got.body), "MsgType") {
						t.Errorf("safe-mode body carries plaintext fields: %s", got.body)
					}

					m := got.msg
					if m.MsgType != k.msgType || m.Event != k.event || m.Format != format {
						t.Errorf("MsgType, Event, Format = %q, %q, %v; want %q, %q, %v", m.MsgType, m.Event, m.Format, k.msgType, k.event, format)
					}
					if m.FromUserName != defaultOpenID || m.ToUserName != defaultOriginalID(testAppID) || m.CreateTime != 1714112445 {
						t.Errorf("header = %q, %q, %d", m.FromUserName, m.ToUserName, m.CreateTime)
					}
					wantID := ""
					if k.msgType != "event" {
						wantID = msgID
					}
					if m.MsgID != wantID {
						t.Errorf("MsgID = %q, want %q", m.MsgID, wantID)
					}
					d := data(t, m)
					for name, want := range k.fields {
						if got := d[name]; got == nil || toString(got) != want {
							t.Errorf("Data[%s] = %v, want %q (Data %s)", name, got, want, m.Data)
						}
					}
				})
			}
		}
	}
}

func toString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return ""
}

func sortedKeys(q url.Values) string {
	return strings.Join(slices.Sorted(maps.Keys(q)), " ")
}

func TestPush_Defaults(t *testing.T) {
	relay := newFakeRelay(t, wechat.ModeSafe)
	before := time.Now().Unix()
	// No --mode: safe, since there is a key. No --format: xml.
	_, stderr, err := runCmd(t, nil, "push", "--url", relay.URL, "--token", testToken, "--appid", testAppID, "--aes-key", testAESKey, "--text", "hi")
	if err != nil {
		t.Fatalf("push: %v\n%s", err, stderr)
	}
	got := relay.last(t)
	if got.err != nil {
		t.Fatalf("Receive: %v", got.err)
	}
	if got.msg.Format != wechat.FormatXML {
		t.Errorf("format = %v, want xml", got.msg.Format)
	}
	id, err := strconv.ParseInt(got.msg.MsgID, 10, 64)
	if err != nil || id <= 1<<53 {
		t.Errorf("MsgId = %q, want a number above 2^53", got.msg.MsgID)
	}
	if ts := got.msg.CreateTime; ts < before || ts > time.Now().Unix() {
		t.Errorf("CreateTime = %d, want now", ts)
	}
	if got.query.Get("nonce") == "" || got.query.Get("timestamp") != strconv.FormatInt(got.msg.CreateTime, 10) {
		t.Errorf("query %v: want a nonce and the CreateTime as timestamp", got.query)
	}
	if want := "gh_"; !strings.HasPrefix(got.msg.ToUserName, want) || len(got.msg.ToUserName) != 15 {
		t.Errorf("ToUserName = %q, want gh_ and 12 hex digits", got.msg.ToUserName)
	}

	// Plaintext without a key.
	plain := newFakeRelay(t, wechat.ModePlaintext)
	if _, stderr, err := runCmd(t, nil, "push", "--url", plain.URL, "--token", testToken, "--appid", testAppID, "--event", "user_enter_tempsession"); err != nil {
		t.Fatalf("push: %v\n%s", err, stderr)
	}
	if got := plain.last(t); got.err != nil || got.msg.Event != "user_enter_tempsession" {
		t.Errorf("plaintext push: %v, %+v", got.err, got.msg)
	}

	// Two pushes get different MsgIds.
	if _, _, err := runCmd(t, nil, "push", "--url", relay.URL, "--token", testToken, "--appid", testAppID, "--aes-key", testAESKey, "--text", "hi"); err != nil {
		t.Fatal(err)
	}
	if again := relay.last(t); again.msg.MsgID == got.msg.MsgID {
		t.Errorf("two pushes share MsgId %s", got.msg.MsgID)
	}
}

func TestPush_Env(t *testing.T) {
	relay := newFakeRelay(t, wechat.ModeCompatible)
	env := map[string]string{
		"WXSIM_URL":     relay.URL,
		"WXSIM_TOKEN":   testToken,
		"WXSIM_APPID":   testAppID,
		"WXSIM_AES_KEY": testAESKey,
		"WXSIM_MODE":    "compatible",
		"WXSIM_FORMAT":  "xml",
		"WXSIM_FROM":    "o_env_user",
	}
	// The flag wins over WXSIM_FORMAT.
	if _, stderr, err := runCmd(t, env, "push", "--format", "json", "--text", "hi"); err != nil {
		t.Fatalf("push: %v\n%s", err, stderr)
	}
	got := relay.last(t)
	if got.err != nil {
		t.Fatalf("Receive: %v", got.err)
	}
	if got.msg.Format != wechat.FormatJSON || got.msg.FromUserName != "o_env_user" {
		t.Errorf("format %v, from %q; want json (the flag) and o_env_user (the variable)", got.msg.Format, got.msg.FromUserName)
	}

	env["WXSIM_TIMEOUT"] = "soon"
	_, stderr, err := runCmd(t, env, "push", "--text", "hi")
	if !errors.Is(err, errUsage) || !strings.Contains(stderr, "$WXSIM_TIMEOUT") {
		t.Errorf("bad WXSIM_TIMEOUT: err %v, stderr %q; want a usage error naming the variable", err, stderr)
	}
	_, stderr, _ = runCmd(t, nil, "push", "-h")
	if !strings.Contains(stderr, "[$WXSIM_AES_KEY]") {
		t.Errorf("push -h does not mention WXSIM_AES_KEY:\n%s", stderr)
	}
}

func TestPush_ContentTypeOverride(t *testing.T) {
	relay := newFakeRelay(t, wechat.ModeSafe)
	// JSON labelled text/xml, as WeChat has been seen to send it.
	if _, stderr, err := runCmd(t, nil, "push", "--url", relay.URL, "--token", testToken, "--appid", testAppID, "--aes-key", testAESKey,
		"--format", "json", "--content-type", "text/xml", "--text", "hi", "--verbose"); err != nil {
		t.Fatalf("push: %v\n%s", err, stderr)
	} else if !strings.Contains(stderr, "Content-Type: text/xml") || !strings.Contains(stderr, `"Encrypt":`) {
		t.Errorf("--verbose did not print the request:\n%s", stderr)
	}
	if got := relay.last(t); got.contentType != "text/xml" || got.err != nil || got.msg.Format != wechat.FormatJSON {
		t.Errorf("got Content-Type %q, err %v; want text/xml and a JSON message", got.contentType, got.err)
	}
}

func TestPush_EncryptedReply(t *testing.T) {
	for _, mode := range []wechat.Mode{wechat.ModeCompatible, wechat.ModeSafe} {
		for _, format := range []wechat.Format{wechat.FormatXML, wechat.FormatJSON} {
			t.Run(mode.String()+"/"+format.String(), func(t *testing.T) {
				relay := newFakeRelay(t, mode)
				relay.answer = func(w http.ResponseWriter, r *http.Request, m *wechat.Message) {
					reply, err := relay.rcv.Reply(r.URL.Query(), m.Format, wechat.TransferReply(m, m.Format, 1714112446), 1714112446)
					if err != nil {
						t.Error(err)
					}
					w.Write(reply)
				}
				stdout, stderr, err := runCmd(t, nil, "push", "--url", relay.URL, "--token", testToken, "--appid", testAppID, "--aes-key", testAESKey,
					"--mode", mode.String(), "--format", format.String(), "--text", "help")
				if err != nil {
					t.Fatalf("push: %v\n%s", err, stderr)
				}
				lines := strings.SplitN(stdout, "\n", 4)
				if len(lines) < 4 || lines[0] != "HTTP/1.1 200 OK" || !strings.Contains(lines[1], "MsgSignature") ||
					lines[2] != "-- encrypted reply: MsgSignature verifies; decrypted:" {
					t.Fatalf("stdout:\n%s", stdout)
				}
				reply, err := wechat.DecodeMessage([]byte(strings.TrimSpace(lines[3])))
				if err != nil {
					t.Fatalf("decrypted reply %q: %v", lines[3], err)
				}
				if reply.MsgType != "transfer_customer_service" || reply.ToUserName != defaultOpenID || reply.Format != format {
					t.Errorf("decrypted reply = %+v", reply)
				}
			})
		}
	}
}

func TestPush_BadEncryptedReply(t *testing.T) {
	relay := newFakeRelay(t, wechat.ModeSafe)
	relay.answer = func(w http.ResponseWriter, r *http.Request, m *wechat.Message) {
		// Signed with the wrong token.
		c, _ := wechat.NewCipher(testAESKey, testAppID)
		reply, err := wechat.SealReply(c, "not-the-token", wechat.TransferReply(m, m.Format, 1), 1, "1")
		if err != nil {
			t.Error(err)
		}
		w.Write(reply.Encode(m.Format))
	}
	stdout, _, err := runCmd(t, nil, "push", "--url", relay.URL, "--token", testToken, "--appid", testAppID, "--aes-key", testAESKey, "--text", "help")
	if err == nil || !strings.Contains(err.Error(), "does not verify") || !errors.Is(err, wechat.ErrBadSignature) {
		t.Fatalf("push = %v, want a bad-signature error", err)
	}
	if exitCode(err) != 1 {
		t.Errorf("exit code %d, want 1", exitCode(err))
	}
	if !strings.HasPrefix(stdout, "HTTP/1.1 200 OK\n<xml><Encrypt>") || strings.Contains(stdout, "decrypted") {
		t.Errorf("stdout:\n%s", stdout)
	}

	// In safe mode a plain reply is not valid: a warning, but WeChat got a 2xx.
	relay.answer = func(w http.ResponseWriter, r *http.Request, m *wechat.Message) {
		w.Write(wechat.TransferReply(m, m.Format, 1))
	}
	_, stderr, err := runCmd(t, nil, "push", "--url", relay.URL, "--token", testToken, "--appid", testAppID, "--aes-key", testAESKey, "--text", "help")
	if err != nil || !strings.Contains(stderr, "warning: in safe mode") {
		t.Errorf("plain reply in safe mode: err %v, stderr %q; want nil and a warning", err, stderr)
	}
}

func TestPush_Non2xx(t *testing.T) {
	relay := newFakeRelay(t, wechat.ModeSafe)
	// The relay expects another token: 401.
	stdout, _, err := runCmd(t, nil, "push", "--url", relay.URL, "--token", "wrong", "--appid", testAppID, "--aes-key", testAESKey, "--text", "hi")
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "401 Unauthorized") {
		t.Errorf("push = %v (exit %d), want a 401 error and exit 1", err, exitCode(err))
	}
	if !strings.HasPrefix(stdout, "HTTP/1.1 401 Unauthorized\nwechat: bad signature") {
		t.Errorf("stdout = %q", stdout)
	}

	// Nobody listening.
	relay.Close()
	_, _, err = runCmd(t, nil, "push", "--url", relay.URL, "--token", testToken, "--appid", testAppID, "--aes-key", testAESKey, "--text", "hi")
	if err == nil || exitCode(err) != 1 {
		t.Errorf("push to a closed server = %v, want exit 1", err)
	}
}

func TestPush_BadInput(t *testing.T) {
	base := []string{"push", "--url", "http://127.0.0.1:1/wx/t", "--token", testToken, "--appid", testAppID}
	for _, tt := range []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"safe without a key", []string{"--mode", "safe", "--text", "hi"}, "--aes-key is required in compatible and safe mode"},
		{"compatible without a key", []string{"--mode", "compatible", "--text", "hi"}, "--aes-key is required"},
		{"short key", []string{"--aes-key", testAESKey[1:], "--text", "hi"}, "want 43 characters, got 42"},
		{"key with a bad character", []string{"--aes-key", "+" + testAESKey[1:], "--text", "hi"}, "only the characters A-Z"},
		{"bad mode", []string{"--mode", "secure", "--text", "hi"}, `--mode "secure"`},
		{"bad format", []string{"--format", "yaml", "--text", "hi"}, `--format "yaml"`},
		{"no message", nil, "say what to send"},
		{"two messages", []string{"--text", "hi", "--image", "M"}, "not --text and --image"},
		{"empty event", []string{"--event", ""}, "event name is empty"},
		{"empty image", []string{"--image", ""}, "media id is empty"},
		{"msg-id on an event", []string{"--event", "debug_demo", "--msg-id", "5"}, "events carry no MsgId"},
		{"negative msg-id", []string{"--text", "hi", "--msg-id", "-5"}, "want a positive number"},
		{"session-from on text", []string{"--text", "hi", "--session-from", "x"}, "--session-from applies to --event only"},
		{"session-from on another event", []string{"--event", "debug_demo", "--session-from", "x"}, "only user_enter_tempsession"},
		{"field on text", []string{"--text", "hi", "--field", "a=b"}, "--field applies to --event only"},
		{"field on user_enter_tempsession", []string{"--event", "user_enter_tempsession", "--field", "a=b"}, "fixed fields"},
		{"field without =", []string{"--event", "x", "--field", "ab"}, "want NAME=VALUE"},
		{"field overriding Event", []string{"--event", "x", "--field", "Event=y"}, "Event is set by other flags"},
		{"pagepath on an image", []string{"--image", "M", "--pagepath", "p"}, "--pagepath applies to --miniprogrampage only"},
		{"bad timestamp", []string{"--text", "hi", "--timestamp", "0"}, "want Unix seconds"},
		{"argument", []string{"--text", "hi", "extra"}, `unexpected argument "extra"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, err := runCmd(t, nil, append(base, tt.args...)...)
			if !errors.Is(err, errUsage) {
				t.Fatalf("push = %v, want errUsage", err)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.wantStderr)
			}
		})
	}
	for _, tt := range []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"no url", []string{"push", "--token", "t", "--appid", testAppID, "--text", "hi"}, "--url is required"},
		{"bad url", []string{"push", "--url", "localhost:8080/wx", "--token", "t", "--appid", testAppID, "--text", "hi"}, "want an http:// or https:// URL"},
		{"no token", []string{"push", "--url", "http://x", "--appid", testAppID, "--text", "hi"}, "--token is required"},
		{"no appid", []string{"push", "--url", "http://x", "--token", "t", "--text", "hi"}, "--appid is required"},
		{"bad appid", []string{"push", "--url", "http://x", "--token", "t", "--appid", "wx123", "--text", "hi"}, "wx and 16 hex digits"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, err := runCmd(t, nil, tt.args...)
			if !errors.Is(err, errUsage) || !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("push = %v, stderr %q; want errUsage and %q", err, stderr, tt.wantStderr)
			}
		})
	}
	_, stderr, err := runCmd(t, nil, "push", "-h")
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr, "Usage: wxsim push") {
		t.Errorf("push -h = %v, stderr %q", err, stderr)
	}
}

func TestVerify(t *testing.T) {
	// The official example (docs/protocol.md §1).
	var gotQuery string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotQuery = r.URL.RawQuery
		echostr, err := wechat.VerifyURL("AAAAA", r.URL.Query())
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if r.URL.Query().Get("mangle") != "" {
			echostr += "\n"
		}
		io.WriteString(w, echostr)
	}))
	defer srv.Close()
	args := []string{"verify", "--url", srv.URL + "/wx/t1", "--timestamp", "1714036504", "--nonce", "1514711492", "--echostr", "4375120948345356249"}

	stdout, stderr, err := runCmd(t, nil, append(args, "--token", "AAAAA")...)
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, stderr)
	}
	if want := "HTTP/1.1 200 OK\n4375120948345356249\n-- echostr matches\n"; stdout != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}
	if want := "signature=f464b24fc39322e44b38aa78f5edd27bd1441696&timestamp=1714036504&nonce=1514711492&echostr=4375120948345356249"; gotQuery != want {
		t.Errorf("query = %q, want %q", gotQuery, want)
	}

	// Another token: 401, exit 1.
	stdout, _, err = runCmd(t, nil, append(args, "--token", "BBBBB")...)
	if err == nil || exitCode(err) != 1 || !strings.HasPrefix(stdout, "HTTP/1.1 401 Unauthorized") {
		t.Errorf("verify with another token = %v, stdout %q; want exit 1 and the 401", err, stdout)
	}

	// An echo that is not exact (a trailing newline).
	_, _, err = runCmd(t, nil, "verify", "--url", srv.URL+"/wx/t1?mangle=1", "--token", "AAAAA")
	if err == nil || !strings.Contains(err.Error(), "not exactly the echostr") {
		t.Errorf("verify of a mangled echo = %v, want a mismatch", err)
	}

	// Defaults and the environment: a random echostr, echoed.
	stdout, stderr, err = runCmd(t, map[string]string{"WXSIM_URL": srv.URL, "WXSIM_TOKEN": "AAAAA"}, "verify")
	if err != nil || !strings.HasSuffix(stdout, "-- echostr matches\n") {
		t.Errorf("verify from the environment = %v, stdout %q, stderr %q", err, stdout, stderr)
	}

	_, stderr, err = runCmd(t, nil, "verify", "--url", srv.URL)
	if !errors.Is(err, errUsage) || !strings.Contains(stderr, "--token is required") {
		t.Errorf("verify without a token = %v, stderr %q", err, stderr)
	}
}

func TestEventMessage_RoundTrip(t *testing.T) {
	h := wechat.Header{ToUserName: "gh_1", FromUserName: "o_1", CreateTime: 1714037059}
	fields := [][2]string{{"debug_str", "a ]]> b <c> & \"d\""}, {"x", ""}}
	for _, f := range []wechat.Format{wechat.FormatXML, wechat.FormatJSON} {
		m, err := wechat.DecodeMessage(eventMessage(f, h, "debug_demo", fields))
		if err != nil {
			t.Fatalf("%v: %v", f, err)
		}
		if want := `{"CreateTime":1714037059,"Event":"debug_demo","FromUserName":"o_1","MsgType":"event","ToUserName":"gh_1","debug_str":"a ]]> b <c> & \"d\"","x":""}`; string(m.Data) != want {
			t.Errorf("%v: Data = %s, want %s", f, m.Data, want)
		}
	}
	// The official plaintext example's body, byte for byte (docs/protocol.md §4, O2).
	h = wechat.Header{ToUserName: "gh_97417a04a28d", FromUserName: "o9AgO5Kd5ggOC-bXrbNODIiE3bGY", CreateTime: 1714037059}
	got := eventMessage(wechat.FormatJSON, h, "debug_demo", [][2]string{{"debug_str", "hello world"}})
	if want := `{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714037059,"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}`; string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
