package wxsim_test

import (
	"bytes"
	"image"
	"image/gif"
	"image/jpeg"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
)

func TestMedia_RoundTrip(t *testing.T) {
	e := newEnv(t)
	tok := e.classicToken(t)

	img := image.NewGray(image.Rect(0, 0, 8, 8))
	var jpg, gf bytes.Buffer
	if err := jpeg.Encode(&jpg, img, nil); err != nil {
		t.Fatal(err)
	}
	if err := gif.Encode(&gf, img, nil); err != nil {
		t.Fatal(err)
	}
	bmp := append([]byte("BM"), make([]byte, 64)...) // the signature is what is sniffed

	for _, tt := range []struct {
		name     string
		data     []byte
		wantType string
		wantExt  string
	}{
		{"PNG", pngBytes(t), "image/png", "png"},
		{"JPEG", jpg.Bytes(), "image/jpeg", "jpg"},
		{"GIF", gf.Bytes(), "image/gif", "gif"},
		{"BMP", bmp, "image/bmp", "bmp"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The label says PNG for all; the bytes decide.
			up := e.upload(t, tok, tt.data)
			checkAnswer(t, up, 0)
			if up.Type != "image" || up.MediaID == "" || up.CreatedAt != start.Unix() {
				t.Fatalf("upload answer = %+v, want type image, a media_id and created_at %d", up, start.Unix())
			}
			if got, want := e.lastCall(t).Upload, (&wxsim.Upload{Filename: "thumb.png", ContentType: "image/png", Size: int64(len(tt.data)), MediaID: up.MediaID}); *got != *want {
				t.Errorf("Call.Upload = %+v, want %+v", got, want)
			}

			resp, err := http.Get(e.url + "/cgi-bin/media/get?access_token=" + tok + "&media_id=" + up.MediaID)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if !bytes.Equal(got, tt.data) {
				t.Errorf("media/get returned %d bytes, want the %d uploaded", len(got), len(tt.data))
			}
			if got := resp.Header.Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", got, tt.wantType)
			}
			if got, want := resp.Header.Get("Content-Disposition"), `attachment; filename="`+up.MediaID+"."+tt.wantExt+`"`; got != want {
				t.Errorf("Content-disposition = %q, want %q", got, want)
			}
		})
	}
}

func TestUpload_Errors(t *testing.T) {
	e := newEnvWith(t, wxsim.Options{MaxUploadBytes: 1024})
	tok := e.classicToken(t)
	png := pngBytes(t)
	big := append(pngBytes(t), make([]byte, 1024)...)

	// bodyOverCap puts 1.1 MiB of another field before the image, so the
	// whole body exceeds the cap though the image is small.
	bodyOverCap := func() (*bytes.Buffer, string) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		mw.WriteField("junk", strings.Repeat("x", 1100<<10))
		w, _ := mw.CreateFormFile("media", "a.png")
		w.Write(png)
		mw.Close()
		return &b, mw.FormDataContentType()
	}

	for _, tt := range []struct {
		name   string
		method string
		typ    string
		body   func() (*bytes.Buffer, string)
		want   int
	}{
		{"ok", "POST", "image", func() (*bytes.Buffer, string) { return multipartBody(t, "media", "a.png", "image/png", png) }, 0},
		{"octet-stream label on real PNG bytes", "POST", "image", func() (*bytes.Buffer, string) {
			return multipartBody(t, "media", "a.png", "application/octet-stream", png)
		}, 0},
		{"type voice", "POST", "voice", func() (*bytes.Buffer, string) { return multipartBody(t, "media", "a.png", "image/png", png) }, 40004},
		{"no type", "POST", "", func() (*bytes.Buffer, string) { return multipartBody(t, "media", "a.png", "image/png", png) }, 40004},
		{"text labelled as PNG", "POST", "image", func() (*bytes.Buffer, string) {
			return multipartBody(t, "media", "a.png", "image/png", []byte("hello, not an image"))
		}, 40004},
		{"not multipart", "POST", "image", func() (*bytes.Buffer, string) { return bytes.NewBuffer(png), "image/png" }, 41005},
		{"part named file", "POST", "image", func() (*bytes.Buffer, string) { return multipartBody(t, "file", "a.png", "image/png", png) }, 41005},
		{"media part without filename", "POST", "image", func() (*bytes.Buffer, string) { return multipartBody(t, "media", "", "image/png", png) }, 41005},
		{"media part without Content-Type", "POST", "image", func() (*bytes.Buffer, string) { return multipartBody(t, "media", "a.png", "", png) }, 40005},
		{"empty file", "POST", "image", func() (*bytes.Buffer, string) { return multipartBody(t, "media", "a.png", "image/png", nil) }, 44001},
		{"image over MaxUploadBytes", "POST", "image", func() (*bytes.Buffer, string) { return multipartBody(t, "media", "a.png", "image/png", big) }, 40009},
		{"body over the cap", "POST", "image", bodyOverCap, 40009},
		{"GET", "GET", "image", func() (*bytes.Buffer, string) { return new(bytes.Buffer), "" }, 43002},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, formType := tt.body()
			a := e.do(t, tt.method, "/cgi-bin/media/upload?type="+tt.typ+"&access_token="+tok, formType, body)
			checkAnswer(t, a, tt.want)
		})
	}
}

func TestGetMedia_Errors(t *testing.T) {
	e := newEnv(t)
	tok := e.classicToken(t)
	media := e.mustUpload(t, tok)

	const otherApp = "wx00000000000000b2"
	e.sim.AddApp(otherApp, secret)
	otherTok := e.get(t, "/cgi-bin/token?grant_type=client_credential&appid="+otherApp+"&secret="+secret).AccessToken

	for _, tt := range []struct {
		name    string
		method  string
		advance time.Duration
		token   string // "" for a fresh one after advance
		mediaID string
		want    int
	}{
		{"no media_id", "GET", 0, tok, "", 40007},
		{"unknown media_id", "GET", 0, tok, "nonexistent", 40007},
		{"another app's media", "GET", 0, otherTok, media, 40007},
		{"POST", "POST", 0, tok, media, 43001},
		{"after three days", "GET", 72 * time.Hour, "", media, 40007},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Advance(tt.advance)
			if tt.token == "" {
				tt.token = e.stableToken(t, false).AccessToken
			}
			// e.do insists on a JSON answer: errors never come as image bytes.
			a := e.do(t, tt.method, "/cgi-bin/media/get?access_token="+tt.token+"&media_id="+tt.mediaID, "", nil)
			checkAnswer(t, a, tt.want)
		})
	}
}
