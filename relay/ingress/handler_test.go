package ingress_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/relay/ingress"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

const (
	pushToken  = "AAAAA"
	aesKey     = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	appID      = "wx2c2769f8efd9abc2"
	originalID = "gh_10f6c3c3ac5a"
	openID     = "oyORnuP8q7ou2gfYjqLzSIWZf0rs"
)

// relayEnv is the push endpoint on a real, migrated SQLite database.
type relayEnv struct {
	t       *testing.T
	db      *store.DB
	url     string
	tenants *tenant.Service
	events  *relay.Events
	logs    *bytes.Buffer
}

func newRelayEnv(t *testing.T) *relayEnv { return newRelayEnvCached(t, 0) }

// anyTimestamp is a MaxSkew that accepts the fixed timestamps of the
// protocol's test vectors (2024) and of hand-made pushes (1970).
const anyTimestamp = 100 * 365 * 24 * time.Hour

// newRelayEnvCached caches tenants for ttl, as production does (tests that
// change tenants use 0). It accepts any timestamp.
func newRelayEnvCached(t *testing.T, ttl time.Duration) *relayEnv {
	return newRelayEnvWith(t, ttl, anyTimestamp, nil)
}

// newRelayEnvWith is the push endpoint with tenants cached for ttl,
// timestamps checked against now (nil: time.Now) within maxSkew.
func newRelayEnvWith(t *testing.T, ttl, maxSkew time.Duration, now func() time.Time, change ...func(*ingress.Options)) *relayEnv {
	t.Helper()
	db := storetest.New(t)
	ts := store.NewTenantStore(db)
	key := make([]byte, 32)
	rand.Read(key)
	auth, err := tenant.NewAuthenticator(key, ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := tenant.NewService(ts, auth, false, now)
	cache := tenant.NewCache(svc, ttl, nil)
	svc.OnChange(cache.Forget)
	es := store.NewEventStore(db)
	ing := relay.NewIngestor(es, relay.IngestorOptions{})
	t.Cleanup(ing.Close)
	logs := &bytes.Buffer{}
	mux := http.NewServeMux()
	opts := ingress.Options{
		Tenants: cache, Events: ing, MaxSkew: maxSkew, Now: now, Nonces: store.NewNonceStore(db),
		Logger: slog.New(slog.NewJSONHandler(&lockedWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, c := range change {
		c(&opts)
	}
	mux.Handle("/wx/{id}", ingress.New(opts))
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return &relayEnv{t: t, db: db, url: hs.URL, tenants: svc, events: relay.NewEvents(es), logs: logs}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (e *relayEnv) newTenant(mode tenant.EncryptMode, format tenant.DataFormat, change ...func(*tenant.Tenant)) *tenant.Tenant {
	e.t.Helper()
	in := &tenant.Tenant{
		AppID: appID, OriginalID: originalID, EncryptMode: mode, DataFormat: format,
		WebhookURL: "https://hooks.example.com/x",
		Secrets:    tenant.Secrets{AppSecret: "5ec2e7005ec2e7005ec2e7005ec2e700", Token: pushToken, EncodingAESKey: aesKey},
	}
	for _, c := range change {
		c(in)
	}
	t, _, err := e.tenants.Create(context.Background(), in)
	if err != nil {
		e.t.Fatal(err)
	}
	return t
}

var wechatModes = map[tenant.EncryptMode]wechat.Mode{
	tenant.EncryptPlaintext: wechat.ModePlaintext, tenant.EncryptCompatible: wechat.ModeCompatible, tenant.EncryptSafe: wechat.ModeSafe,
}

// pusher plays WeChat for tenant t.
func pusher(t *testing.T, tn *tenant.Tenant) *wechat.Pusher {
	t.Helper()
	p := &wechat.Pusher{Token: tn.Secrets.Token, Mode: wechatModes[tn.EncryptMode]}
	if p.Mode != wechat.ModePlaintext {
		c, err := wechat.NewCipher(tn.Secrets.EncodingAESKey, tn.AppID)
		if err != nil {
			t.Fatal(err)
		}
		p.Cipher = c
	}
	return p
}

type answer struct {
	status int
	body   string
}

func (e *relayEnv) post(id tenant.ID, req *wechat.PushRequest) answer {
	e.t.Helper()
	return e.postRaw(id, req.RawQuery(), req.ContentType, req.Body)
}

func (e *relayEnv) postRaw(id tenant.ID, query, contentType string, body []byte) answer {
	e.t.Helper()
	resp, err := http.Post(e.url+"/wx/"+string(id)+"?"+query, contentType, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b)}
}

func (e *relayEnv) stored(id tenant.ID) []*relay.Event {
	e.t.Helper()
	evs, _, err := e.events.List(context.Background(), id, relay.MaxPageSize, "", relay.EventFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func header(createTime int64) wechat.Header {
	return wechat.Header{ToUserName: originalID, FromUserName: openID, CreateTime: createTime}
}

func TestVerifyURL(t *testing.T) {
	e := newRelayEnv(t)
	tn := e.newTenant(tenant.EncryptSafe, tenant.FormatJSON)
	// The official example (protocol notes, section 1).
	q := "signature=f464b24fc39322e44b38aa78f5edd27bd1441696&timestamp=1714036504&nonce=1514711492&echostr=4375120948345356249"
	resp, err := http.Get(e.url + "/wx/" + string(tn.ID) + "?" + q)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "4375120948345356249" {
		t.Errorf("verify = %d %q, want 200 and the bare echostr", resp.StatusCode, b)
	}
	resp, err = http.Get(e.url + "/wx/" + string(tn.ID) + "?" + strings.Replace(q, "f464", "0000", 1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("bad signature: status %d, want 401", resp.StatusCode)
	}
}

func TestPushEveryModeAndFormat(t *testing.T) {
	e := newRelayEnv(t)
	kinds := []struct {
		name     string
		build    func(f wechat.Format, h wechat.Header, msgID int64) []byte
		wantType string
	}{
		{"text", func(f wechat.Format, h wechat.Header, id int64) []byte {
			return wechat.TextMessage(f, h, "hi <a href=\"x\">&</a>", id)
		}, "message.text"},
		{"image", func(f wechat.Format, h wechat.Header, id int64) []byte {
			return wechat.ImageMessage(f, h, "https://mmbiz.qpic.cn/x", "MEDIA", id)
		}, "message.image"},
		{"miniprogrampage", func(f wechat.Format, h wechat.Header, id int64) []byte {
			return wechat.MiniProgramPageMessage(f, h, wechat.MiniProgramPage{Title: "t", AppID: appID, PagePath: "pages/i", ThumbURL: "u", ThumbMediaID: "m"}, id)
		}, "message.miniprogrampage"},
		{"enter session", func(f wechat.Format, h wechat.Header, _ int64) []byte {
			return wechat.EnterTempSessionEvent(f, h, "from-button")
		}, "event.user_enter_tempsession"},
	}
	msgID := int64(6054768590064713728)
	for mode := tenant.EncryptPlaintext; mode <= tenant.EncryptSafe; mode++ {
		for _, format := range []tenant.DataFormat{tenant.FormatJSON, tenant.FormatXML} {
			tn := e.newTenant(mode, format, func(t *tenant.Tenant) { t.AppID = fmt.Sprintf("wx%016x", int(mode)*10+int(format)) })
			p := pusher(t, tn)
			wf := wechat.FormatXML
			if format == tenant.FormatJSON {
				wf = wechat.FormatJSON
			}
			for i, k := range kinds {
				t.Run(fmt.Sprintf("%s/%s/%s", p.Mode, wf, k.name), func(t *testing.T) {
					msgID++
					// A nonce of its own: a plaintext query signs one push.
					req, err := p.Push(k.build(wf, header(1714037059+int64(i)), msgID), 1714037059, fmt.Sprint(486452656+i))
					if err != nil {
						t.Fatal(err)
					}
					if a := e.post(tn.ID, req); a.status != 200 || a.body != "success" {
						t.Fatalf("answer = %d %q, want 200 success", a.status, a.body)
					}
				})
			}
			evs := e.stored(tn.ID)
			if len(evs) != len(kinds) {
				t.Fatalf("%s/%s: %d events stored, want %d", p.Mode, wf, len(evs), len(kinds))
			}
			for i, k := range kinds {
				ev := evs[len(kinds)-1-i] // newest first
				if ev.Type != k.wantType || ev.OpenID != openID || ev.State != relay.StatePending {
					t.Errorf("%s/%s event %d = %s %s %v", p.Mode, wf, i, ev.Type, ev.OpenID, ev.State)
				}
			}
		}
	}
}

// TestOfficialSafeModeVector replays the official safe-mode push (protocol
// notes, O3) byte for byte.
func TestOfficialSafeModeVector(t *testing.T) {
	e := newRelayEnv(t)
	tn := e.newTenant(tenant.EncryptSafe, tenant.FormatJSON, func(t *tenant.Tenant) {
		t.AppID = "wxba5fad812f8e6fb9"
		t.OriginalID = "gh_97417a04a28d"
		t.Secrets.EncodingAESKey = strings.Repeat("A", 43)
	})
	q := "signature=6c5c811b55cc85e0e1b54100749188c20beb3f5d&timestamp=1714112445&nonce=415670741&openid=o9AgO5Kd5ggOC-bXrbNODIiE3bGY&encrypt_type=aes&msg_signature=046e02f8204d34f8ba5fa3b1db94908f3df2e9b3"
	body := `{"ToUserName":"gh_97417a04a28d","Encrypt":"+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNqJ4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04="}`
	// WeChat has been seen labelling JSON as text/xml: the body decides.
	if a := e.postRaw(tn.ID, q, "text/xml", []byte(body)); a.status != 200 || a.body != "success" {
		t.Fatalf("answer = %d %q", a.status, a.body)
	}
	evs := e.stored(tn.ID)
	if len(evs) != 1 {
		t.Fatalf("%d events stored, want 1", len(evs))
	}
	ev, err := e.events.Get(context.Background(), tn.ID, evs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	var payload map[string]any
	if err := json.Unmarshal(ev.Payload, &payload); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"id": string(ev.ID), "type": "event.debug_demo", "tenant_id": string(tn.ID), "appid": "wxba5fad812f8e6fb9",
		"openid": "o9AgO5Kd5ggOC-bXrbNODIiE3bGY", "create_time": "2024-04-26T06:20:45Z",
	} {
		if payload[k] != want {
			t.Errorf("payload.%s = %v, want %v", k, payload[k], want)
		}
	}
	data, _ := payload["data"].(map[string]any)
	if data["debug_str"] != "hello world" || data["Event"] != "debug_demo" {
		t.Errorf("payload.data = %v", data)
	}
	if string(ev.Raw) != body {
		t.Errorf("raw body not kept verbatim")
	}
}

func TestDuplicatePushIsStoredOnce(t *testing.T) {
	e := newRelayEnv(t)
	tn := e.newTenant(tenant.EncryptSafe, tenant.FormatXML)
	p := pusher(t, tn)
	msg := wechat.TextMessage(wechat.FormatXML, header(1714037059), "hello", 9007199254740993) // 2^53 + 1
	ev := wechat.EnterTempSessionEvent(wechat.FormatXML, header(1714037060), "btn")
	for _, m := range [][]byte{msg, ev} {
		var first answer
		for attempt := range 3 { // WeChat retries with a fresh nonce each time
			req, err := p.Push(m, 1714037059+int64(attempt), fmt.Sprint(1000+attempt))
			if err != nil {
				t.Fatal(err)
			}
			a := e.post(tn.ID, req)
			if attempt == 0 {
				first = a
			} else if a != first {
				t.Errorf("retry %d answered %v, the original %v", attempt, a, first)
			}
		}
	}
	evs := e.stored(tn.ID)
	if len(evs) != 2 {
		t.Fatalf("%d events stored, want 2 (one message, one event)", len(evs))
	}
	full, _ := e.events.Get(context.Background(), tn.ID, evs[1].ID)
	if !bytes.Contains(full.Payload, []byte(`"MsgId":9007199254740993`)) {
		t.Errorf("MsgId not kept exact: %s", full.Payload)
	}
}

func TestRejectedPushesStoreNothing(t *testing.T) {
	e := newRelayEnv(t)
	safe := e.newTenant(tenant.EncryptSafe, tenant.FormatJSON)
	plain := e.newTenant(tenant.EncryptPlaintext, tenant.FormatXML, func(t *tenant.Tenant) { t.AppID = "wx0000000000000001" })
	msg := wechat.TextMessage(wechat.FormatJSON, header(1714037059), "hi", 1)
	good, err := pusher(t, safe).Push(msg, 1714037059, "1")
	if err != nil {
		t.Fatal(err)
	}
	otherApp, _ := wechat.NewCipher(aesKey, "wx9999999999999999")
	forOther, _ := (&wechat.Pusher{Token: pushToken, Mode: wechat.ModeSafe, Cipher: otherApp}).Push(msg, 1714037059, "1")
	wrongTo, _ := pusher(t, safe).Push(wechat.TextMessage(wechat.FormatJSON, wechat.Header{ToUserName: "gh_other", FromUserName: openID, CreateTime: 1}, "hi", 2), 1, "1")
	plainReq, _ := pusher(t, plain).Push(wechat.TextMessage(wechat.FormatXML, header(1), "hi", 3), 1, "1")

	tamperedSig := strings.Replace(good.RawQuery(), "msg_signature=", "msg_signature=0", 1)
	for _, tt := range []struct {
		name   string
		id     tenant.ID
		query  string
		body   []byte
		status int
		says   string // in the answer, when set
	}{
		{"wrong msg_signature", safe.ID, tamperedSig, good.Body, 401, ""},
		{"no signature", safe.ID, "timestamp=1&nonce=2", good.Body, 401, ""},
		{"plaintext signature wrong", plain.ID, strings.Replace(plainReq.RawQuery(), "signature=", "signature=f", 1), plainReq.Body, 401, ""},
		{"encrypted for another appid", safe.ID, forOther.RawQuery(), forOther.Body, 403, ""},
		{"ToUserName is not the original_id", safe.ID, wrongTo.RawQuery(), wrongTo.Body, 403, ""},
		{"unparseable body", plain.ID, signedQuery(pushToken), []byte("not xml or json"), 400, ""},
		{"truncated XML", plain.ID, signedQuery(pushToken), []byte("<xml><MsgType>te"), 400, ""},
		{"plaintext body to a safe tenant", safe.ID, signedQuery(pushToken), plainReq.Body, 400, "expects safe mode"},
		{"body over 1 MiB", plain.ID, signedQuery(pushToken), bytes.Repeat([]byte("x"), ingress.MaxBodyBytes+1), 413, ""},
		{"unknown tenant", "tn_nosuchtenant", plainReq.RawQuery(), plainReq.Body, 404, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := e.postRaw(tt.id, tt.query, "text/xml", tt.body)
			if a.status != tt.status {
				t.Errorf("status = %d %q, want %d", a.status, a.body, tt.status)
			}
			if !strings.Contains(a.body, tt.says) {
				t.Errorf("answer %q does not say %q", a.body, tt.says)
			}
			if a.body == "success" {
				t.Errorf("answered success to a rejected push")
			}
		})
	}
	if n := len(e.stored(safe.ID)) + len(e.stored(plain.ID)); n != 0 {
		t.Errorf("%d events stored from rejected pushes", n)
	}
}

// signedQuery is a plaintext-mode query whose signature holds.
func signedQuery(token string) string { return signedQueryNonce(token, "42") }

// signedQueryNonce is signedQuery with another nonce: a plaintext query
// signs one push.
func signedQueryNonce(token, nonce string) string {
	q := url.Values{"timestamp": {"1714037059"}, "nonce": {nonce}}
	q.Set("signature", wechat.Sign(token, "1714037059", nonce))
	return q.Encode()
}

func TestStoreFailureIsNeverSuccess(t *testing.T) {
	e := newRelayEnv(t)
	tn := e.newTenant(tenant.EncryptPlaintext, tenant.FormatJSON)
	req, _ := pusher(t, tn).Push(wechat.TextMessage(wechat.FormatJSON, header(1), "hi", 1), 1, "1")
	// Load the tenant into nothing: the cache is off, so the closed
	// database fails the tenant read or the commit; either way no success.
	e.db.Close()
	a := e.post(tn.ID, req)
	if a.status != 500 || a.body == "success" {
		t.Errorf("answer with the database down = %d %q, want 500", a.status, a.body)
	}
}

func TestTransferCustomerServiceReply(t *testing.T) {
	e := newRelayEnv(t)
	for _, tt := range []struct {
		mode   tenant.EncryptMode
		format tenant.DataFormat
	}{
		{tenant.EncryptSafe, tenant.FormatJSON},
		{tenant.EncryptSafe, tenant.FormatXML},
		{tenant.EncryptPlaintext, tenant.FormatXML},
		{tenant.EncryptPlaintext, tenant.FormatJSON},
	} {
		tn := e.newTenant(tt.mode, tt.format, func(t *tenant.Tenant) {
			t.AppID = fmt.Sprintf("wx%016x", int(tt.mode)*10+int(tt.format))
			t.ReplyMode = tenant.ReplyTransferCustomerService
		})
		p := pusher(t, tn)
		wf := wechat.FormatXML
		if tt.format == tenant.FormatJSON {
			wf = wechat.FormatJSON
		}
		t.Run(fmt.Sprintf("%s/%s", p.Mode, wf), func(t *testing.T) {
			req, _ := p.Push(wechat.TextMessage(wf, header(1714037059), "help", 77), 1714037059, "415670741")
			a := e.post(tn.ID, req)
			if a.status != 200 {
				t.Fatalf("status %d %q", a.status, a.body)
			}
			reply := []byte(a.body)
			if p.Mode == wechat.ModeSafe {
				sealed, err := wechat.ParseEncryptedReply(reply)
				if err != nil {
					t.Fatalf("reply %q is not an encrypted reply: %v", a.body, err)
				}
				if sealed.Nonce != "415670741" {
					t.Errorf("reply nonce = %q, want the push's", sealed.Nonce)
				}
				if reply, err = sealed.Open(p.Cipher, pushToken); err != nil {
					t.Fatalf("open reply: %v", err)
				}
			}
			m, err := wechat.DecodeMessage(reply)
			if err != nil {
				t.Fatalf("reply %q: %v", reply, err)
			}
			if m.MsgType != "transfer_customer_service" || m.ToUserName != openID || m.FromUserName != originalID || m.Format != wf {
				t.Errorf("reply = %+v", m)
			}
			// Events still get success.
			req, _ = p.Push(wechat.EnterTempSessionEvent(wf, header(1714037060), "x"), 1714037060, "1")
			if a := e.post(tn.ID, req); a.body != "success" {
				t.Errorf("event answered %q, want success", a.body)
			}
		})
	}
}

func TestUnknownKindsAreKept(t *testing.T) {
	e := newRelayEnv(t)
	tn := e.newTenant(tenant.EncryptPlaintext, tenant.FormatXML)
	body := []byte(`<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA[` + openID + `]]></FromUserName><CreateTime>1714037059</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe_msg_popup_event]]></Event><List><PopupScene>2</PopupScene><SubscribeStatusString><![CDATA[accept]]></SubscribeStatusString></List></xml>`)
	a := e.postRaw(tn.ID, signedQuery(pushToken), "text/xml", body)
	if a.body != "success" {
		t.Fatalf("answer %d %q", a.status, a.body)
	}
	voice := []byte(`{"ToUserName":"gh_10f6c3c3ac5a","FromUserName":"` + openID + `","CreateTime":1714037059,"MsgType":"voice","MsgId":"123"}`)
	if a := e.postRaw(tn.ID, signedQueryNonce(pushToken, "43"), "application/json", voice); a.body != "success" {
		t.Fatalf("voice answer %d %q", a.status, a.body)
	}
	evs := e.stored(tn.ID)
	if len(evs) != 2 || evs[0].Type != "message.voice" || evs[1].Type != "event.subscribe_msg_popup_event" {
		t.Fatalf("stored %v", evs)
	}
	full, _ := e.events.Get(context.Background(), tn.ID, evs[1].ID)
	if !bytes.Contains(full.Payload, []byte(`"List":{"PopupScene":2,"SubscribeStatusString":"accept"}`)) {
		t.Errorf("nested fields not forwarded: %s", full.Payload)
	}
}

func TestConcurrentPushesAllStored(t *testing.T) {
	e := newRelayEnv(t)
	tn := e.newTenant(tenant.EncryptSafe, tenant.FormatJSON)
	p := pusher(t, tn)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := p.Push(wechat.TextMessage(wechat.FormatJSON, header(1714037059), "secret words", int64(1e18)+int64(i)), 1, "1")
			if a := e.post(tn.ID, req); a.body != "success" {
				errs <- fmt.Sprintf("push %d: %d %q", i, a.status, a.body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(e.stored(tn.ID)); got != n {
		t.Errorf("%d events stored, want %d", got, n)
	}
	if strings.Contains(e.logs.String(), "secret words") {
		t.Errorf("decrypted content reached the logs")
	}
}

// A push whose sender is not valid text is refused alone; pushes committed
// beside it are stored.
func TestInvalidTextRefusedAlone(t *testing.T) {
	e := newRelayEnv(t)
	tn := e.newTenant(tenant.EncryptPlaintext, tenant.FormatJSON)
	bad := []byte("{\"ToUserName\":\"gh_10f6c3c3ac5a\",\"FromUserName\":\"o\\u0000x\",\"CreateTime\":1,\"MsgType\":\"text\",\"Content\":\"x\",\"MsgId\":5}")
	if a := e.postRaw(tn.ID, signedQuery(pushToken), "application/json", bad); a.status != 400 {
		t.Errorf("NUL in FromUserName: %d %q, want 400", a.status, a.body)
	}
	good, _ := pusher(t, tn).Push(wechat.TextMessage(wechat.FormatJSON, header(1), "fine", 6), 1, "1")
	if a := e.post(tn.ID, good); a.body != "success" {
		t.Errorf("good push after a bad one: %d %q", a.status, a.body)
	}
	if n := len(e.stored(tn.ID)); n != 1 {
		t.Errorf("%d events stored, want 1", n)
	}
}
