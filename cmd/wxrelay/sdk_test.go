package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pwminiprogram "github.com/ArtisanCloud/PowerWeChat/v3/src/miniProgram"
	pwrequest "github.com/ArtisanCloud/PowerWeChat/v3/src/miniProgram/customerServiceMessage/request"
	"github.com/silenceper/wechat/v2/cache"
	spmini "github.com/silenceper/wechat/v2/miniprogram"
	spminiconfig "github.com/silenceper/wechat/v2/miniprogram/config"
	spmessage "github.com/silenceper/wechat/v2/miniprogram/message"
	spofficial "github.com/silenceper/wechat/v2/officialaccount"
	spofficialconfig "github.com/silenceper/wechat/v2/officialaccount/config"
	spcustomer "github.com/silenceper/wechat/v2/officialaccount/customerservice"
	spmaterial "github.com/silenceper/wechat/v2/officialaccount/material"
	sputil "github.com/silenceper/wechat/v2/util"
)

// The SDK tests run real, unmodified third-party WeChat SDKs from the Go
// module proxy against a real wxrelay serve, with wxsim as WeChat: each is
// pointed at the relay through its own settings, and given the tenant's
// api_key where it wants the AppSecret. wxsim must see one token fetch,
// the relay's, and every call the SDK made carrying the real token.

const (
	sdkAppID     = "wx5d0000000000a001"
	sdkAppSecret = "7ea17ea17ea17ea17ea17ea17ea17ea1"
	sdkUser      = "oSDKUser000000000000000001"
)

// sdkRelay is a relay with one tenant whose user has written, so that the
// reply window allows sends.
type sdkRelay struct {
	p      *process
	compat string // --wxapi-addr, the compatible API at the root
	tid    string
	apiKey string
}

func startSDKRelay(t *testing.T) *sdkRelay {
	t.Helper()
	dir := t.TempDir()
	compat := freePort(t)
	p := startServe(t, dir, "WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true", "WXRELAY_RETRY_SCHEDULE=1h", "WXRELAY_WXAPI_ADDR="+compat)
	p.sim.AddApp(sdkAppID, sdkAppSecret)
	hook := newHookServer(t)
	var created struct {
		Tenant struct {
			ID               string `json:"id"`
			WechatAPIBaseURL string `json:"wechat_api_base_url"`
		} `json:"tenant"`
		APIKey string `json:"api_key"`
	}
	body := `{"appid":"` + sdkAppID + `","app_secret":"` + sdkAppSecret + `","token":"PushToken1","encrypt_mode":"ENCRYPT_MODE_PLAINTEXT",
		"data_format":"DATA_FORMAT_JSON","webhook_url":"` + hook + `"}`
	if code := p.api(t, "POST", "/v1/tenants", adminTokenIn(t, dir), body, &created); code != 200 {
		t.Fatalf("create tenant: %d\n%s", code, p.stderr)
	}
	if !strings.HasSuffix(created.Tenant.WechatAPIBaseURL, "/wxapi") {
		t.Fatalf("wechat_api_base_url = %q, want {public_url}/wxapi", created.Tenant.WechatAPIBaseURL)
	}
	if err := pushUser(p, created.Tenant.ID, sdkUser, 1); err != nil {
		t.Fatal(err)
	}
	// The relay fetches the tenant's token once, at onboarding; the
	// record starts after it.
	waitForToken(t, p, adminTokenIn(t, dir), created.Tenant.ID)
	p.sim.Reset()
	return &sdkRelay{p: p, compat: compat, tid: created.Tenant.ID, apiKey: created.APIKey}
}

func newHookServer(t *testing.T) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/events"
}

// checkWeChatSaw checks what wxsim got since onboarding: no token fetch
// (the relay's one, with the real AppSecret, was made at onboarding; the
// SDK's token calls are the relay's to answer), and every other call
// made with a token of the app (wxsim knows the real ones only) and
// accepted.
func (r *sdkRelay) checkWeChatSaw(t *testing.T, sdkToken string, wantPaths ...string) {
	t.Helper()
	if got := r.p.sim.TokenCounts(sdkAppID); got.Classic+got.Stable != 0 {
		t.Errorf("wxsim issued %+v tokens after onboarding, want none: the relay holds the one it fetched then", got)
	}
	seen := map[string]int{}
	for _, c := range r.p.sim.Calls() {
		switch c.Path {
		case "/cgi-bin/token", "/cgi-bin/stable_token":
			continue
		}
		seen[c.Path]++
		tok := c.Query.Get("access_token")
		if tok == sdkToken {
			t.Errorf("wxsim got the token the SDK holds on %s: the SDK holds the real token", c.Path)
		}
		if c.AppID != sdkAppID || c.Errcode != 0 || tok == "" {
			t.Errorf("wxsim got %s %s for app %q, errcode %d (%s): want the real token of %s, accepted", c.Method, c.Path, c.AppID, c.Errcode, c.Note, sdkAppID)
		}
	}
	for _, p := range wantPaths {
		if seen[p] == 0 {
			t.Errorf("wxsim never got %s; got %v", p, seen)
		}
	}
}

// testImage is a small PNG, which WeChat's upload takes as an image.
func testImage(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := range 8 {
		img.Set(i, i, color.RGBA{R: 200, A: 255})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// hostRewrite sends requests for api.weixin.qq.com to the relay's
// compatible listener instead: silenceper/wechat's API URLs are constants,
// and its HTTP client (util.DefaultHTTPClient) is the setting it offers.
type hostRewrite struct{ to string }

func (h hostRewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != "api.weixin.qq.com" {
		return nil, fmt.Errorf("the SDK called %s, not WeChat's API host", r.URL.Host)
	}
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host, out.Host = "http", h.to, h.to
	return http.DefaultTransport.RoundTrip(out)
}

func TestSDK_Silenceper(t *testing.T) {
	r := startSDKRelay(t)
	saved := sputil.DefaultHTTPClient
	sputil.DefaultHTTPClient = &http.Client{Transport: hostRewrite{to: r.compat}}
	t.Cleanup(func() { sputil.DefaultHTTPClient = saved })

	mem := cache.NewMemory()
	mini := spmini.NewMiniProgram(&spminiconfig.Config{AppID: sdkAppID, AppSecret: r.apiKey, Cache: mem, UseStableAK: true})
	tok, err := mini.GetContext().GetAccessToken()
	if err != nil {
		t.Fatalf("fetch a token: %v", err)
	}
	if strings.Contains(r.p.stderr.String(), tok) {
		t.Error("the relay token appears in the relay's log")
	}
	cm := mini.GetCustomerMessage()
	if err := cm.Send(spmessage.NewCustomerTextMessage(sdkUser, "Your order <1234> ships today & arrives Friday")); err != nil {
		t.Fatalf("send text: %v", err)
	}

	// Typing and media uploads are in the official-account module, on the
	// same WeChat endpoints that mini programs use.
	oa := spofficial.NewOfficialAccount(&spofficialconfig.Config{AppID: sdkAppID, AppSecret: r.apiKey, Cache: mem})
	imgPath := filepath.Join(t.TempDir(), "receipt.png")
	if err := os.WriteFile(imgPath, testImage(t), 0o600); err != nil {
		t.Fatal(err)
	}
	media, err := oa.GetMaterial().MediaUpload(spmaterial.MediaTypeImage, imgPath)
	if err != nil || media.MediaID == "" {
		t.Fatalf("upload media: %+v %v", media, err)
	}
	if err := cm.Send(spmessage.NewCustomerImgMessage(sdkUser, media.MediaID)); err != nil {
		t.Fatalf("send image: %v", err)
	}
	if err := oa.GetCustomerServiceManager().SendTypingStatus(sdkUser, spcustomer.Typing); err != nil {
		t.Fatalf("typing: %v", err)
	}
	r.checkWeChatSaw(t, tok, "/cgi-bin/message/custom/send", "/cgi-bin/media/upload", "/cgi-bin/message/custom/typing")

	// WeChat revokes the real token while 50 sends are under way: each
	// still succeeds, and the relay fetches one new token for them all.
	if err := pushUsers(r, 50); err != nil {
		t.Fatal(err)
	}
	before := r.p.sim.TokenCounts(sdkAppID)
	if err := r.p.sim.InvalidateTokens(sdkAppID); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- cm.Send(spmessage.NewCustomerTextMessage(manyUser(i), "hello"))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a send after the token was revoked: %v", err)
		}
	}
	after := r.p.sim.TokenCounts(sdkAppID)
	if fetched := after.Classic + after.Stable - before.Classic - before.Stable; fetched != 1 {
		t.Errorf("the relay fetched %d tokens after the revocation, want 1", fetched)
	}
}

func TestSDK_PowerWeChat(t *testing.T) {
	r := startSDKRelay(t)
	base := "http://" + r.p.http + "/wxapi/"
	app, err := pwminiprogram.NewMiniProgram(&pwminiprogram.UserConfig{
		AppID:  sdkAppID,
		Secret: r.apiKey,
		Http:   pwminiprogram.Http{BaseURI: base},
		Log:    pwminiprogram.Log{Level: "error", File: filepath.Join(t.TempDir(), "sdk.log"), Error: filepath.Join(t.TempDir(), "sdk-error.log")},
	})
	if err != nil {
		t.Fatal(err)
	}
	// PowerWeChat joins BaseURI to its API paths, but spells the token
	// endpoint as a whole URL, in a field of its own.
	app.AccessToken.EndpointToGetToken = base + "cgi-bin/token"
	ctx := context.Background()
	tok, err := app.AccessToken.GetToken(ctx, false)
	if err != nil || tok.AccessToken == "" || tok.ExpiresIn <= 0 {
		t.Fatalf("fetch a token: %+v %v", tok, err)
	}

	cs := app.CustomerServiceMessage
	if res, err := cs.SendText(ctx, sdkUser, &pwrequest.CustomerServiceMsgText{Content: "Your order ships today"}); err != nil || res.ErrCode != 0 {
		t.Fatalf("send text: %+v %v", res, err)
	}
	imgPath := filepath.Join(t.TempDir(), "receipt.png")
	if err := os.WriteFile(imgPath, testImage(t), 0o600); err != nil {
		t.Fatal(err)
	}
	up, err := cs.UploadTempMedia(ctx, "image", imgPath, nil)
	if err != nil || up.MediaID == "" {
		t.Fatalf("upload media: %+v %v", up, err)
	}
	if res, err := cs.SendImage(ctx, sdkUser, &pwrequest.CustomerServiceMsgImage{MediaID: up.MediaID}); err != nil || res.ErrCode != 0 {
		t.Fatalf("send image: %+v %v", res, err)
	}
	if res, err := cs.SetTyping(ctx, sdkUser, "Typing"); err != nil || res.ErrCode != 0 {
		t.Fatalf("typing: %+v %v", res, err)
	}
	r.checkWeChatSaw(t, tok.AccessToken, "/cgi-bin/message/custom/send", "/cgi-bin/media/upload", "/cgi-bin/message/custom/typing")

	// (A send the reply window refuses, answered 45015 or 45047 in
	// WeChat's shape without calling WeChat, is tested in api/wxapi on a
	// clock that can move: a tenant onboarded a moment ago has not been
	// watched for long enough to know any window closed.)
}

// pushUsers has n more users write to the tenant, so that each may be
// answered.
func pushUsers(r *sdkRelay, n int) error {
	for i := range n {
		if err := pushUser(r.p, r.tid, manyUser(i), int64(100+i)); err != nil {
			return err
		}
	}
	return nil
}

func manyUser(i int) string { return fmt.Sprintf("oSDKMany%018d", i) }

// waitForToken waits until the relay holds tenant tid's access token.
func waitForToken(t *testing.T, p *process, admin, tid string) {
	t.Helper()
	var got struct {
		TokenStatus struct {
			ExpireTime string `json:"expire_time"`
		} `json:"token_status"`
	}
	for deadline := time.Now().Add(10 * time.Second); got.TokenStatus.ExpireTime == ""; time.Sleep(20 * time.Millisecond) {
		p.api(t, "GET", "/v1/tenants/"+tid, admin, "", &got)
		if time.Now().After(deadline) {
			t.Fatalf("the relay holds no token for %s 10 s after onboarding\n%s", tid, p.stderr)
		}
	}
}
