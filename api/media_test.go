package api_test

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
	"github.com/wxrelay/wxrelay/relay/wechat"
)

func mediaPath(id string) string { return "/v1/tenants/" + id + "/media" }

func smallPNG(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 8, 8))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// upload posts content as the multipart part field (none if field is "").
func (e *env) upload(id, token, field, filename string, content []byte) response {
	e.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("note", "ignored")
	if field != "" {
		fw, err := mw.CreateFormFile(field, filename)
		if err != nil {
			e.t.Fatal(err)
		}
		fw.Write(content)
	}
	mw.Close()
	req, err := http.NewRequest("POST", e.url+mediaPath(id), &body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		e.t.Errorf("Content-Type = %q", ct)
	}
	return out
}

func (e *env) uploads() int {
	n := 0
	for _, c := range e.sim.Calls() {
		if c.Path == "/cgi-bin/media/upload" {
			n++
		}
	}
	return n
}

func TestUploadMedia(t *testing.T) {
	e := newEnv(t)
	tn := e.wxTenant()
	r := e.mustStatus(e.upload(tn.id, tn.apiKey, "media", "photo.png", smallPNG(t)), 200)
	if len(r.body) != 3 || r.body["type"] != "image" {
		t.Errorf("answer %s, want type, media_id, created_at", r.raw)
	}
	id, _ := r.body["media_id"].(string)
	if id == "" {
		t.Fatalf("no media_id in %s", r.raw)
	}
	if ts, ok := r.body["created_at"].(float64); !ok || ts < 1e9 {
		t.Errorf("created_at = %#v, want unix seconds as a number", r.body["created_at"])
	}
	calls := e.sim.Calls()
	last := calls[len(calls)-1]
	if last.Path != "/cgi-bin/media/upload" || last.Upload == nil || last.Upload.Filename != "photo.png" || last.AppID != tn.appid {
		t.Errorf("wxsim saw %+v", last)
	}
	// The media_id works in an image send.
	e.mustStatus(e.do("POST", sendPath(tn.id), tn.apiKey, `{"touser":"o1","msgtype":"image","image":{"media_id":"`+id+`"}}`), 200)
	if s := e.sends(); len(s) != 1 || s[0].Errcode != 0 {
		t.Errorf("sends = %+v", s)
	}
}

func TestUploadMediaInvalid(t *testing.T) {
	e := newEnv(t)
	tn := e.wxTenant()
	r := e.mustStatus(e.upload(tn.id, tn.apiKey, "media", "notes.txt", []byte("just some text, not an image\n")), 400)
	if msg, _ := r.body["message"].(string); !strings.HasPrefix(msg, "media:") || !strings.Contains(msg, "text/plain") {
		t.Errorf("message %q", msg)
	}
	if r.body["code"] != float64(codes.InvalidArgument) {
		t.Errorf("code = %v", r.body["code"])
	}
	r = e.mustStatus(e.upload(tn.id, tn.apiKey, "", "", nil), 400)
	if msg, _ := r.body["message"].(string); !strings.HasPrefix(msg, "media:") {
		t.Errorf("message %q", msg)
	}
	e.mustStatus(e.upload(tn.id, tn.apiKey, "file", "photo.png", smallPNG(t)), 400)
	e.mustStatus(e.upload(tn.id, tn.apiKey, "media", "empty.png", nil), 400)

	big := append(smallPNG(t), make([]byte, wechat.MaxUploadBytes)...)
	r = e.mustStatus(e.upload(tn.id, tn.apiKey, "media", "big.png", big), 413)
	if msg, _ := r.body["message"].(string); !strings.HasPrefix(msg, "media:") {
		t.Errorf("message %q", msg)
	}
	// A body far over the limit is refused on its Content-Length.
	r = e.mustStatus(e.upload(tn.id, tn.apiKey, "media", "big.png", append(big, make([]byte, 1<<20)...)), 413)
	if r.body["code"] != float64(codes.InvalidArgument) {
		t.Errorf("code = %v", r.body["code"])
	}
	// Not multipart at all.
	e.mustStatus(e.do("POST", mediaPath(tn.id), tn.apiKey, `{"media":"x"}`), 400)

	if n := e.uploads(); n != 0 {
		t.Errorf("wxsim saw %d uploads", n)
	}
}

func TestUploadMediaScope(t *testing.T) {
	e := newEnv(t)
	a, b := e.wxTenant(), e.wxTenant()
	img := smallPNG(t)
	e.mustStatus(e.upload(b.id, a.apiKey, "media", "p.png", img), 403)
	e.mustStatus(e.upload(b.id, "", "media", "p.png", img), 401)
	e.mustStatus(e.upload(b.id, "not-a-token", "media", "p.png", img), 401)
	if n := e.uploads(); n != 0 {
		t.Errorf("wxsim saw %d uploads", n)
	}
	// An admin may upload as any tenant.
	e.mustStatus(e.upload(b.id, e.admin, "media", "p.png", img), 200)
	e.mustStatus(e.upload("tn_missing", e.admin, "media", "p.png", img), 404)
}

func TestUploadMediaRefreshesInvalidToken(t *testing.T) {
	e := newEnv(t)
	tn := e.wxTenant()
	e.mustStatus(e.upload(tn.id, tn.apiKey, "media", "p.png", smallPNG(t)), 200)
	if err := e.sim.InvalidateTokens(tn.appid); err != nil {
		t.Fatal(err)
	}
	e.mustStatus(e.upload(tn.id, tn.apiKey, "media", "p.png", smallPNG(t)), 200)
	if n := e.uploads(); n != 3 {
		t.Errorf("wxsim saw %d uploads, want 3 (ok, refused token, retry)", n)
	}
}

func TestGRPCUploadMedia(t *testing.T) {
	e := newEnv(t)
	tn := e.wxTenant()
	c := wxrelayv1.NewMessageServiceClient(e.grpcClient())
	m, err := c.UploadMedia(withToken(tn.apiKey), &wxrelayv1.UploadMediaRequest{Id: tn.id, Filename: "p.png", ContentType: "image/png", Content: smallPNG(t)})
	if err != nil {
		t.Fatalf("UploadMedia: %v", err)
	}
	if m.GetType() != "image" || m.GetMediaId() == "" || m.GetCreatedAt() == 0 {
		t.Errorf("media = %v", m)
	}
	// Over gRPC's default 4 MiB message limit, under WeChat's 10 MiB.
	large := append(smallPNG(t), make([]byte, 6<<20)...)
	if _, err := c.UploadMedia(withToken(tn.apiKey), &wxrelayv1.UploadMediaRequest{Id: tn.id, Filename: "l.png", Content: large}); err != nil {
		t.Fatalf("UploadMedia 6 MiB: %v", err)
	}
	_, err = c.UploadMedia(withToken(tn.apiKey), &wxrelayv1.UploadMediaRequest{Id: tn.id, Filename: "t.txt", Content: []byte("hello")})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("text: %v, want InvalidArgument", err)
	}
	_, err = c.UploadMedia(withToken(tn.apiKey), &wxrelayv1.UploadMediaRequest{Id: "tn_other", Content: smallPNG(t)})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("other tenant: %v, want PermissionDenied", err)
	}
	if n := e.uploads(); n != 2 {
		t.Errorf("wxsim saw %d uploads, want 2", n)
	}
}
