package wxsim_test

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
)

const (
	appID  = "wx00000000000000a1"
	secret = "0123456789abcdef0123456789abcdef"
	openID = "oUser0000000000000000000001"
)

// start is 2025-06-01 18:00 in Beijing, far from the quota day's edge.
var start = time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)

// env is a simulator with one registered app, served over HTTP.
type env struct {
	sim   *wxsim.Server
	url   string
	clock *clockwork.FakeClock
}

// newEnv starts a simulator on a fake clock with the app appID registered.
func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, wxsim.Options{})
}

// newEnvWith is newEnv with options; a nil Now is replaced by the fake clock.
func newEnvWith(t *testing.T, opts wxsim.Options) *env {
	t.Helper()
	c := clockwork.NewFakeClockAt(start)
	if opts.Now == nil {
		opts.Now = c.Now
	}
	sim := wxsim.New(opts)
	sim.AddApp(appID, secret)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	return &env{sim: sim, url: ts.URL, clock: c}
}

// answer holds any field a WeChat endpoint answers with.
type answer struct {
	Errcode     int    `json:"errcode"`
	Errmsg      string `json:"errmsg"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	Type        string `json:"type"`
	MediaID     string `json:"media_id"`
	CreatedAt   int64  `json:"created_at"`
}

// do makes a request and decodes WeChat's JSON answer.
func (e *env) do(t *testing.T, method, pathAndQuery, contentType string, body io.Reader) answer {
	t.Helper()
	req, err := http.NewRequest(method, e.url+pathAndQuery, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: HTTP status %d, want 200 (WeChat answers errors with 200): %s", method, pathAndQuery, resp.StatusCode, data)
	}
	if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, "application/json") {
		t.Fatalf("%s %s: Content-Type %q, want application/json", method, pathAndQuery, got)
	}
	// Byte for byte WeChat's shape: the object and nothing after it (a
	// trailing newline broke a Node.js SDK's parsing of every answer).
	if !strings.HasPrefix(string(data), "{") || !strings.HasSuffix(string(data), "}") {
		t.Fatalf("%s %s: answer %q has bytes around its JSON object; WeChat's has none", method, pathAndQuery, data)
	}
	var a answer
	if err := json.Unmarshal(data, &a); err != nil {
		t.Fatalf("%s %s: answer %q is not JSON: %v", method, pathAndQuery, data, err)
	}
	return a
}

func (e *env) get(t *testing.T, pathAndQuery string) answer {
	t.Helper()
	return e.do(t, http.MethodGet, pathAndQuery, "", nil)
}

func (e *env) postJSON(t *testing.T, pathAndQuery, body string) answer {
	t.Helper()
	return e.do(t, http.MethodPost, pathAndQuery, "application/json", strings.NewReader(body))
}

// classicToken fetches a token from /cgi-bin/token, failing the test on error.
func (e *env) classicToken(t *testing.T) string {
	t.Helper()
	a := e.get(t, "/cgi-bin/token?"+url.Values{
		"grant_type": {"client_credential"}, "appid": {appID}, "secret": {secret},
	}.Encode())
	if a.Errcode != 0 || a.AccessToken == "" {
		t.Fatalf("classic token: got errcode %d %q, want a token", a.Errcode, a.Errmsg)
	}
	return a.AccessToken
}

// stableToken calls /cgi-bin/stable_token for appID.
func (e *env) stableToken(t *testing.T, force bool) answer {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"grant_type": "client_credential", "appid": appID, "secret": secret, "force_refresh": force,
	})
	return e.postJSON(t, "/cgi-bin/stable_token", string(body))
}

// tokenErrcode is the errcode a valid typing call with tok gets: 0 while
// tok works.
func (e *env) tokenErrcode(t *testing.T, tok string) int {
	t.Helper()
	return e.postJSON(t, "/cgi-bin/message/custom/typing?access_token="+url.QueryEscape(tok),
		`{"touser":"`+openID+`","command":"Typing"}`).Errcode
}

// send posts a send body with tok.
func (e *env) send(t *testing.T, tok, body string) answer {
	t.Helper()
	return e.postJSON(t, "/cgi-bin/message/custom/send?access_token="+url.QueryEscape(tok), body)
}

// multipartBody builds a multipart/form-data body with one file part; an
// empty filename or contentType leaves that header parameter out.
func multipartBody(t *testing.T, field, filename, contentType string, data []byte) (body *bytes.Buffer, formType string) {
	t.Helper()
	body = new(bytes.Buffer)
	mw := multipart.NewWriter(body)
	h := textproto.MIMEHeader{}
	disposition := `form-data; name="` + field + `"`
	if filename != "" {
		disposition += `; filename="` + filename + `"`
	}
	h.Set("Content-Disposition", disposition)
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	w, err := mw.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return body, mw.FormDataContentType()
}

// upload sends data as the "media" part of an image upload with tok.
func (e *env) upload(t *testing.T, tok string, data []byte) answer {
	t.Helper()
	body, formType := multipartBody(t, "media", "thumb.png", "image/png", data)
	return e.do(t, http.MethodPost, "/cgi-bin/media/upload?type=image&access_token="+url.QueryEscape(tok), formType, body)
}

// mustUpload uploads a tiny PNG and returns its media id.
func (e *env) mustUpload(t *testing.T, tok string) string {
	t.Helper()
	a := e.upload(t, tok, pngBytes(t))
	if a.Errcode != 0 || a.MediaID == "" {
		t.Fatalf("upload: got errcode %d %q, want a media_id", a.Errcode, a.Errmsg)
	}
	return a.MediaID
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

var ridSuffix = regexp.MustCompile(` rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$`)

// checkAnswer fails the test unless a carries errcode want, in WeChat's
// shape: errmsg "ok" for success, and an errmsg ending in a rid otherwise.
func checkAnswer(t *testing.T, a answer, want int) {
	t.Helper()
	if a.Errcode != want {
		t.Fatalf("errcode = %d (%q), want %d", a.Errcode, a.Errmsg, want)
	}
	if want != 0 && !ridSuffix.MatchString(a.Errmsg) {
		t.Errorf("errmsg = %q, want it to end in \" rid: xxxxxxxx-xxxxxxxx-xxxxxxxx\"", a.Errmsg)
	}
}

// lastCall returns the most recent call in the record.
func (e *env) lastCall(t *testing.T) wxsim.Call {
	t.Helper()
	calls := e.sim.Calls()
	if len(calls) == 0 {
		t.Fatal("no calls recorded")
	}
	return calls[len(calls)-1]
}
