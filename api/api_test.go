package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jonboulle/clockwork"

	"github.com/wxrelay/wxrelay/api"
	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/relay/delivery"
	"github.com/wxrelay/wxrelay/relay/ingress"
	"github.com/wxrelay/wxrelay/relay/message"
	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

// env is a running API on a real, migrated SQLite database, reached through
// the real HTTP mux, gateway and interceptors.
type env struct {
	t      *testing.T
	key    []byte
	url    string
	admin  string
	srv    *api.Server
	db     *store.DB
	logBuf *bytes.Buffer
	// sim is the fake WeChat the relay sends through, at wxURL.
	sim   *wxsim.Server
	wxURL string
	// clock is the reply-window check's; it starts at the real now.
	clock *clockwork.FakeClock
	// keeper and messages are the server's, for other handlers to share.
	keeper   *token.Keeper
	messages *message.Service
}

func newEnv(t *testing.T) *env { t.Helper(); return newEnvWith(t, nil) }

// newEnvWith is newEnv with the server's options changed by change.
func newEnvWith(t *testing.T, change func(*api.Options)) *env {
	t.Helper()
	db := storetest.New(t)
	key := make([]byte, 32)
	rand.Read(key)
	tenants := store.NewTenantStore(db)
	auth, err := tenant.NewAuthenticator(key, tenants, nil)
	if err != nil {
		t.Fatal(err)
	}
	logBuf := &bytes.Buffer{}
	log := slog.New(slog.NewJSONHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc := tenant.NewService(tenants, auth, false, nil)
	events := store.NewEventStore(db)
	ingestor := relay.NewIngestor(events, relay.IngestorOptions{})
	t.Cleanup(ingestor.Close)
	// A dispatcher that is not running: the API only queues redeliveries.
	dispatcher, err := delivery.New(delivery.Options{
		Store:   store.NewDeliveryStore(db),
		Tenants: tenant.NewCache(svc, 0, nil),
		Sender:  delivery.NewSender(delivery.SenderOptions{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	clock := clockwork.NewFakeClockAt(time.Now().UTC())
	sim := wxsim.New(wxsim.Options{})
	wxs := httptest.NewServer(sim)
	t.Cleanup(wxs.Close)
	wx := &wechat.Client{BaseURL: wxs.URL}
	keeper := token.NewKeeper(store.NewTokenStore(db), wx, tenant.NewCache(svc, 0, nil), token.Options{Log: log})
	messages := message.NewService(keeper, wx).WithReplyWindows(message.WindowOptions{
		Store: store.NewWindowStore(db), Tenants: tenant.NewCache(svc, 0, nil), Clock: clock})
	opts := api.Options{
		Logger:  log,
		Auth:    auth,
		Tenants: svc,
		// The real component store.
		Components:     tenant.NewComponentService(store.NewComponentStore(db), nil),
		Authorizations: store.NewComponentStore(db),
		Events:         relay.NewEvents(events),
		Redeliver:      dispatcher,
		Appender:       ingestor,
		Recoveries:     store.NewRecoveryStore(db),
		Operators:      store.NewOperatorStore(db),
		Audit:          store.NewAuditStore(db),
		// The operator's search across tenants.
		Finder: struct {
			*store.TenantStore
			*store.EventStore
		}{tenants, events},
		Messages: messages,
		// Idempotency keys of sends.
		Idempotency: store.NewIdempotencyStore(db),
		// Call records of the compatible API.
		Calls: store.NewCallStore(db),
		// The real keeper, so that GetTenant's token_status is its own.
		TokenStatus: keeper,
		// check_credentials, as the relay checks them.
		CheckCredentials: api.CheckWithStableToken(wx),
		PublicURL:        "https://relay.example.com/",
		Ready:            db.Ping,
		Routes: map[string]http.Handler{
			"/wx/{id}": ingress.New(ingress.Options{Tenants: tenant.NewCache(svc, 0, nil), Events: ingestor, Logger: log}),
		},
	}
	if change != nil {
		change(&opts)
	}
	srv, err := api.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	admin, err := auth.IssueAdminToken(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, key: key, url: hs.URL, admin: admin, srv: srv, db: db, logBuf: logBuf, sim: sim, wxURL: wxs.URL, clock: clock, keeper: keeper, messages: messages}
}

// response is a decoded REST answer.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (e *env) do(method, path, token string, body any) response {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	return out
}

// metrics scrapes the server's metrics handler.
func (e *env) metrics() string {
	e.t.Helper()
	rec := httptest.NewRecorder()
	e.srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		e.t.Fatalf("metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

func (e *env) mustStatus(r response, want int) response {
	e.t.Helper()
	if r.status != want {
		e.t.Fatalf("status = %d, want %d; body %s", r.status, want, r.raw)
	}
	return r
}

const (
	testSecret = "0123456789abcdef0123456789abcdef"
	testToken  = "PushToken123"
	testAESKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
)

// appSeq gives each test tenant its own appid.
var appSeq = 0

// validTenant returns a creatable tenant body with a fresh appid.
func validTenant() map[string]any {
	appSeq++
	return map[string]any{
		"display_name":     "Shop",
		"appid":            fmt.Sprintf("wx%016x", appSeq),
		"app_secret":       testSecret,
		"token":            testToken,
		"encoding_aes_key": testAESKey,
		"encrypt_mode":     "ENCRYPT_MODE_SAFE",
		"data_format":      "DATA_FORMAT_JSON",
		"webhook_url":      "https://hooks.example.com/wechat",
	}
}

type created struct {
	id, apiKey, webhookSecret string
	appid                     string // set by wxTenant
}

func (e *env) createTenant(body map[string]any) created {
	e.t.Helper()
	return e.createTenantWith(e.admin, body)
}

// createTenantWith onboards body with the bearer token admin.
func (e *env) createTenantWith(admin string, body map[string]any) created {
	e.t.Helper()
	r := e.mustStatus(e.do("POST", "/v1/tenants", admin, body), 200)
	tn := r.body["tenant"].(map[string]any)
	return created{id: tn["id"].(string), apiKey: r.body["api_key"].(string), webhookSecret: r.body["webhook_secret"].(string)}
}

func TestCreateTenant(t *testing.T) {
	e := newEnv(t)
	body := validTenant()
	r := e.mustStatus(e.do("POST", "/v1/tenants", e.admin, body), 200)

	tn, _ := r.body["tenant"].(map[string]any)
	if tn == nil {
		t.Fatalf("no tenant in %s", r.raw)
	}
	id, _ := tn["id"].(string)
	if !strings.HasPrefix(id, "tn_") {
		t.Errorf("id = %q, want tn_...", id)
	}
	for field, want := range map[string]any{
		"appid": body["appid"], "display_name": "Shop", "encrypt_mode": "ENCRYPT_MODE_SAFE",
		"data_format": "DATA_FORMAT_JSON", "reply_mode": "REPLY_MODE_SUCCESS", "state": "STATE_ACTIVE",
		"push_url": "https://relay.example.com/wx/" + id, "webhook_url": body["webhook_url"],
		"wechat_api_base_url": "https://relay.example.com/wxapi",
	} {
		if got := tn[field]; got != want {
			t.Errorf("tenant.%s = %v, want %v", field, got, want)
		}
	}
	for _, f := range []string{"create_time", "update_time"} {
		if _, err := time.Parse(time.RFC3339Nano, tn[f].(string)); err != nil {
			t.Errorf("tenant.%s = %v: not RFC 3339", f, tn[f])
		}
	}
	// Secrets are input only.
	for _, secret := range []string{testSecret, testToken, testAESKey} {
		if strings.Contains(r.raw, secret) {
			t.Errorf("create response reveals a secret: %s", r.raw)
		}
	}
	ws, _ := r.body["webhook_secret"].(string)
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(ws, "whsec_"))
	if !strings.HasPrefix(ws, "whsec_") || err != nil || len(raw) < 24 || len(raw) > 64 {
		t.Errorf("webhook_secret = %q, want whsec_ + base64 of 24..64 bytes", ws)
	}
	if k, _ := r.body["api_key"].(string); strings.Count(k, ".") != 2 {
		t.Errorf("api_key = %q, want a JWT", k)
	}

	got := e.mustStatus(e.do("GET", "/v1/tenants/"+id, e.admin, nil), 200)
	if got.body["appid"] != body["appid"] || got.body["id"] != id {
		t.Errorf("GET tenant = %s", got.raw)
	}
	for _, secret := range []string{testSecret, testToken, testAESKey} {
		if strings.Contains(got.raw, secret) {
			t.Errorf("GET reveals a secret: %s", got.raw)
		}
	}
	if strings.Contains(e.logBuf.String(), testSecret) || strings.Contains(e.logBuf.String(), testAESKey) {
		t.Errorf("logs reveal a secret")
	}
}

func TestCreateTenantDefaults(t *testing.T) {
	e := newEnv(t)
	body := validTenant()
	delete(body, "encrypt_mode")
	delete(body, "data_format")
	delete(body, "encoding_aes_key")
	r := e.mustStatus(e.do("POST", "/v1/tenants", e.admin, body), 200)
	tn := r.body["tenant"].(map[string]any)
	if tn["encrypt_mode"] != "ENCRYPT_MODE_PLAINTEXT" || tn["data_format"] != "DATA_FORMAT_XML" {
		t.Errorf("defaults = %v/%v, want the console's plaintext/XML", tn["encrypt_mode"], tn["data_format"])
	}
}

func TestCreateTenantInvalid(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		name      string
		change    func(map[string]any)
		wantField string
	}{
		{"appid missing", func(b map[string]any) { delete(b, "appid") }, "appid"},
		{"appid short", func(b map[string]any) { b["appid"] = "wx123" }, "appid"},
		{"appid not hex", func(b map[string]any) { b["appid"] = "wxzzzzzzzzzzzzzzzz" }, "appid"},
		{"secret missing", func(b map[string]any) { delete(b, "app_secret") }, "app_secret"},
		{"secret short", func(b map[string]any) { b["app_secret"] = "abc" }, "app_secret"},
		{"secret not hex", func(b map[string]any) { b["app_secret"] = "0123456789abcdef0123456789abcdeg" }, "app_secret"},
		{"secret is the token", func(b map[string]any) { b["app_secret"] = b["token"] }, "app_secret"},
		{"token missing", func(b map[string]any) { delete(b, "token") }, "token"},
		{"aes key missing in safe mode", func(b map[string]any) { delete(b, "encoding_aes_key") }, "encoding_aes_key"},
		{"aes key missing in compatible mode", func(b map[string]any) {
			delete(b, "encoding_aes_key")
			b["encrypt_mode"] = "ENCRYPT_MODE_COMPATIBLE"
		}, "encoding_aes_key"},
		{"aes key without a mode", func(b map[string]any) { delete(b, "encrypt_mode") }, "encrypt_mode"},
		{"aes key 42 chars", func(b map[string]any) { b["encoding_aes_key"] = testAESKey[:42] }, "encoding_aes_key"},
		{"aes key bad chars", func(b map[string]any) { b["encoding_aes_key"] = testAESKey[:42] + "+" }, "encoding_aes_key"},
		{"webhook missing", func(b map[string]any) { delete(b, "webhook_url") }, "webhook_url"},
		{"webhook not a URL", func(b map[string]any) { b["webhook_url"] = "::nope" }, "webhook_url"},
		{"webhook plain http", func(b map[string]any) { b["webhook_url"] = "http://hooks.example.com/" }, "webhook_url"},
		{"webhook ftp", func(b map[string]any) { b["webhook_url"] = "ftp://hooks.example.com/" }, "webhook_url"},
		{"webhook loopback", func(b map[string]any) { b["webhook_url"] = "https://127.0.0.1/hook" }, "webhook_url"},
		{"webhook localhost", func(b map[string]any) { b["webhook_url"] = "https://localhost:8443/hook" }, "webhook_url"},
		{"webhook private", func(b map[string]any) { b["webhook_url"] = "https://10.1.2.3/hook" }, "webhook_url"},
		{"webhook link-local v6", func(b map[string]any) { b["webhook_url"] = "https://[fe80::1]/hook" }, "webhook_url"},
		{"original id", func(b map[string]any) { b["original_id"] = "nope" }, "original_id"},
		{"webhook loopback as a number", func(b map[string]any) { b["webhook_url"] = "https://2130706433/hook" }, "webhook_url"},
		{"webhook loopback in hex", func(b map[string]any) { b["webhook_url"] = "https://0x7f000001/hook" }, "webhook_url"},
		{"webhook loopback in octal", func(b map[string]any) { b["webhook_url"] = "https://0177.0.0.1/hook" }, "webhook_url"},
		{"webhook loopback shortened", func(b map[string]any) { b["webhook_url"] = "https://127.1/hook" }, "webhook_url"},
		{"webhook zero", func(b map[string]any) { b["webhook_url"] = "https://0/hook" }, "webhook_url"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := validTenant()
			tt.change(body)
			r := e.mustStatus(e.do("POST", "/v1/tenants", e.admin, body), 400)
			if msg, _ := r.body["message"].(string); !strings.HasPrefix(msg, tt.wantField+":") {
				t.Errorf("message = %q, want it to name %s", msg, tt.wantField)
			}
			if !strings.Contains(r.raw, "BadRequest") {
				t.Errorf("details lack a BadRequest field violation: %s", r.raw)
			}
		})
	}
	list := e.mustStatus(e.do("GET", "/v1/tenants", e.admin, nil), 200)
	if ts, _ := list.body["tenants"].([]any); len(ts) != 0 {
		t.Errorf("failed creates left %d tenants behind", len(ts))
	}
}

// TestEncodingAESKeyWithoutMode: a key given without a mode would leave
// the tenant plaintext and the key unused; it is refused, on create and on
// a PATCH of a plaintext tenant, and accepted with the mode beside it.
func TestEncodingAESKeyWithoutMode(t *testing.T) {
	e := newEnv(t)
	body := validTenant()
	delete(body, "encrypt_mode")
	r := e.mustStatus(e.do("POST", "/v1/tenants", e.admin, body), 400)
	if msg, _ := r.body["message"].(string); !strings.HasPrefix(msg, "encrypt_mode: is required with encoding_aes_key") ||
		!strings.Contains(msg, "ENCRYPT_MODE_SAFE") {
		t.Errorf("create with a key and no mode: %q", msg)
	}
	plain := validTenant()
	delete(plain, "encoding_aes_key")
	plain["encrypt_mode"] = "ENCRYPT_MODE_PLAINTEXT"
	c := e.createTenant(plain)
	r = e.mustStatus(e.do("PATCH", "/v1/tenants/"+c.id, e.admin, map[string]any{"encoding_aes_key": testAESKey}), 400)
	if msg, _ := r.body["message"].(string); !strings.HasPrefix(msg, "encrypt_mode: the tenant is ENCRYPT_MODE_PLAINTEXT") {
		t.Errorf("PATCH of a key alone on a plaintext tenant: %q", msg)
	}
	r = e.mustStatus(e.do("PATCH", "/v1/tenants/"+c.id, e.admin, map[string]any{"encoding_aes_key": testAESKey, "encrypt_mode": "ENCRYPT_MODE_SAFE"}), 200)
	if r.body["encrypt_mode"] != "ENCRYPT_MODE_SAFE" {
		t.Errorf("PATCH of key and mode: %s", r.raw)
	}
	// A safe tenant's key can be rotated alone.
	e.mustStatus(e.do("PATCH", "/v1/tenants/"+c.id, e.admin, map[string]any{"encoding_aes_key": strings.Repeat("b", 43)}), 200)
	// Without a key, no mode still means plaintext.
	delete(body, "encoding_aes_key")
	r = e.mustStatus(e.do("POST", "/v1/tenants", e.admin, body), 200)
	if tn, _ := r.body["tenant"].(map[string]any); tn["encrypt_mode"] != "ENCRYPT_MODE_PLAINTEXT" {
		t.Errorf("create with neither key nor mode: %s", r.raw)
	}
}

// TestBadEnumValues: an enum value the API does not know is answered as
// the other validation errors are, naming the field as clients write it
// and listing the values it takes, in a body and in a query.
func TestBadEnumValues(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		field, value, want string
	}{
		{"encrypt_mode", "SAFE", `encrypt_mode: "SAFE" is not one of ENCRYPT_MODE_PLAINTEXT, ENCRYPT_MODE_COMPATIBLE, ENCRYPT_MODE_SAFE`},
		{"data_format", "json", `data_format: "json" is not one of DATA_FORMAT_JSON, DATA_FORMAT_XML`},
		{"reply_mode", "TRANSFER", `reply_mode: "TRANSFER" is not one of REPLY_MODE_SUCCESS, REPLY_MODE_TRANSFER_CUSTOMER_SERVICE`},
		{"token_endpoint", "STABLE", `token_endpoint: "STABLE" is not one of TOKEN_ENDPOINT_STABLE, TOKEN_ENDPOINT_CLASSIC`},
	} {
		body := validTenant()
		body[tt.field] = tt.value
		r := e.mustStatus(e.do("POST", "/v1/tenants", e.admin, body), 400)
		if msg, _ := r.body["message"].(string); msg != tt.want {
			t.Errorf("%s=%q: message %q, want %q", tt.field, tt.value, msg, tt.want)
		}
		if !strings.Contains(r.raw, "BadRequest") || !strings.Contains(r.raw, `"field":"`+tt.field+`"`) {
			t.Errorf("%s=%q: details lack the field violation: %s", tt.field, tt.value, r.raw)
		}
	}
	// In a PATCH, and in a query parameter.
	c := e.createTenant(validTenant())
	r := e.mustStatus(e.do("PATCH", "/v1/tenants/"+c.id, e.admin, map[string]any{"encrypt_mode": "safe"}), 400)
	if msg, _ := r.body["message"].(string); !strings.HasPrefix(msg, `encrypt_mode: "safe" is not one of ENCRYPT_MODE_PLAINTEXT`) {
		t.Errorf("PATCH with a bad encrypt_mode: %q", msg)
	}
	r = e.mustStatus(e.do("GET", "/v1/tenants/"+c.id+"/events?state=FAILED", e.admin, nil), 400)
	if msg, _ := r.body["message"].(string); msg != `state: "FAILED" is not one of STATE_PENDING, STATE_DELIVERED, STATE_FAILED` {
		t.Errorf("a bad state filter: %q", msg)
	}
}

// TestUnknownFields: a field the body may not hold is answered with the
// nearest one it may (a typo, or a name cut short), as a field violation.
func TestUnknownFields(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		field, want string
	}{
		{"webhook", `webhook: unknown field "webhook": did you mean "webhook_url"?`},
		{"encrypt_mod", `encrypt_mod: unknown field "encrypt_mod": did you mean "encrypt_mode"?`},
		{"appsecret", `appsecret: unknown field "appsecret": did you mean "app_secret"?`},
		{"zzzzzzzz", `zzzzzzzz: unknown field "zzzzzzzz"`},
	} {
		body := validTenant()
		body[tt.field] = "x"
		r := e.mustStatus(e.do("POST", "/v1/tenants", e.admin, body), 400)
		if msg, _ := r.body["message"].(string); msg != tt.want {
			t.Errorf("%s: message %q, want %q", tt.field, msg, tt.want)
		}
		if !strings.Contains(r.raw, `"field":"`+tt.field+`"`) {
			t.Errorf("%s: details lack the field violation: %s", tt.field, r.raw)
		}
	}
}

func TestBadBodies(t *testing.T) {
	e := newEnv(t)
	big := validTenant()
	big["display_name"] = strings.Repeat("x", api.MaxBodyBytes)
	for _, tt := range []struct {
		name    string
		body    any
		want    int
		message string
	}{
		{"malformed JSON", `{"appid": "wx`, 400, "line 1, column 14, after `{\"appid\": \"wx`: the body ends inside its JSON"},
		{"a comma too many", "{\"appid\": \"wx0123456789abcdef\",\n \"token\": \"x\",,}", 400, "line 2, column 15, after"},
		{"a comma missing", "{\"appid\": \"wx0123456789abcdef\"\n \"token\": \"x\"}", 400, "line 2, column 2"},
		{"two objects", `{"appid": "wx0123456789abcdef"} {}`, 400, "line 1, column 33"},
		{"not an object", `[1,2]`, 400, "must be a JSON object"},
		{"a number for a string", `{"appid": 12}`, 400, "appid: must be a string in quotes, not 12 (line 1, column 11)"},
		{"a string for a bool", `{"ordered_delivery": "yes"}`, 400, `ordered_delivery: must be true or false, not "yes"`},
		{"unknown enum", `{"appid":"wx0123456789abcdef","encrypt_mode":"ENCRYPT_MODE_ROT13"}`, 400, "ENCRYPT_MODE_ROT13"},
		{"unknown field", `{"appid":"wx0123456789abcdef","colour":"red"}`, 400, "colour"},
		{"oversized", big, 413, "exceeds"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.mustStatus(e.do("POST", "/v1/tenants", e.admin, tt.body), tt.want)
			if msg, _ := r.body["message"].(string); msg == "" || !strings.Contains(msg, tt.message) {
				t.Errorf("message = %q, want one mentioning %q", msg, tt.message)
			}
			if _, ok := r.body["code"]; !ok {
				t.Errorf("body %s is not a google.rpc.Status", r.raw)
			}
		})
	}
}

// TestMissingFieldsAllNamed: a body that leaves out several required
// fields is answered with all of them, not one a try.
func TestMissingFieldsAllNamed(t *testing.T) {
	e := newEnv(t)
	r := e.mustStatus(e.do("POST", "/v1/tenants", e.admin, `{"appid":"wx0123456789abcdef","encrypt_mode":"ENCRYPT_MODE_SAFE"}`), 400)
	var got []string
	details, _ := r.body["details"].([]any)
	for _, d := range details {
		vs, _ := d.(map[string]any)["field_violations"].([]any)
		for _, v := range vs {
			got = append(got, v.(map[string]any)["field"].(string))
		}
	}
	if want := []string{"app_secret", "token", "encoding_aes_key", "webhook_url"}; !slices.Equal(got, want) {
		t.Errorf("field violations %v, want %v: %s", got, want, r.raw)
	}
	if msg, _ := r.body["message"].(string); msg != "app_secret: is required; token: is required; encoding_aes_key: is required; webhook_url: is required" {
		t.Errorf("message %q, want every missing field named", msg)
	}
}

func TestDuplicateAppID(t *testing.T) {
	e := newEnv(t)
	body := validTenant()
	e.createTenant(body)
	r := e.mustStatus(e.do("POST", "/v1/tenants", e.admin, body), 409)
	first := e.createTenant(validTenant()) // a second, to PATCH onto the first's appid
	list := e.mustStatus(e.do("GET", "/v1/tenants", e.admin, nil), 200)
	holder := ""
	for _, tn := range list.body["tenants"].([]any) {
		if m := tn.(map[string]any); m["appid"] == body["appid"] {
			holder = m["id"].(string)
		}
	}
	want := "appid " + body["appid"].(string) + " is already registered to tenant " + holder
	if msg, _ := r.body["message"].(string); msg != want {
		t.Errorf("409 message %q, want %q: the holder named, once", msg, want)
	}
	if !strings.Contains(r.raw, `"reason":"APPID_TAKEN"`) || !strings.Contains(r.raw, `"tenant_id":"`+holder+`"`) {
		t.Errorf("409 details lack the ErrorInfo naming the holder: %s", r.raw)
	}
	// The same when an appid is PATCHed onto another tenant's.
	r = e.mustStatus(e.do("PATCH", "/v1/tenants/"+first.id, e.admin, map[string]any{"appid": body["appid"]}), 409)
	if msg, _ := r.body["message"].(string); msg != want {
		t.Errorf("409 on PATCH %q, want %q", msg, want)
	}
}

func TestListTenantsPaging(t *testing.T) {
	e := newEnv(t)
	want := map[string]bool{}
	for range 5 {
		want[e.createTenant(validTenant()).id] = true
	}
	got := map[string]bool{}
	token, pages := "", 0
	for {
		r := e.mustStatus(e.do("GET", "/v1/tenants?page_size=2&page_token="+token, e.admin, nil), 200)
		pages++
		ts, _ := r.body["tenants"].([]any)
		if len(ts) > 2 {
			t.Fatalf("page of %d tenants, want at most 2", len(ts))
		}
		for _, tn := range ts {
			id := tn.(map[string]any)["id"].(string)
			if got[id] {
				t.Fatalf("tenant %s on two pages", id)
			}
			got[id] = true
		}
		token, _ = r.body["next_page_token"].(string)
		if token == "" {
			break
		}
	}
	if len(got) != len(want) || pages != 3 {
		t.Errorf("paged %d tenants in %d pages, want %d in 3", len(got), pages, len(want))
	}
	e.mustStatus(e.do("GET", "/v1/tenants?page_token=garbage", e.admin, nil), 400)
	e.mustStatus(e.do("GET", "/v1/tenants?page_size=-1", e.admin, nil), 400)
}

func TestUpdateTenant(t *testing.T) {
	e := newEnv(t)
	c := e.createTenant(validTenant())
	r := e.mustStatus(e.do("PATCH", "/v1/tenants/"+c.id, e.admin, map[string]any{
		"display_name": "Renamed", "reply_mode": "REPLY_MODE_TRANSFER_CUSTOMER_SERVICE",
	}), 200)
	if r.body["display_name"] != "Renamed" || r.body["reply_mode"] != "REPLY_MODE_TRANSFER_CUSTOMER_SERVICE" {
		t.Errorf("patched tenant = %s", r.raw)
	}
	if r.body["encrypt_mode"] != "ENCRYPT_MODE_SAFE" || r.body["webhook_url"] != "https://hooks.example.com/wechat" {
		t.Errorf("patch changed fields it did not name: %s", r.raw)
	}
	// A patch that would leave an invalid tenant is refused whole.
	bad := e.mustStatus(e.do("PATCH", "/v1/tenants/"+c.id, e.admin, map[string]any{
		"display_name": "Half", "encoding_aes_key": "short",
	}), 400)
	if msg, _ := bad.body["message"].(string); !strings.HasPrefix(msg, "encoding_aes_key:") {
		t.Errorf("message = %q", msg)
	}
	after := e.mustStatus(e.do("GET", "/v1/tenants/"+c.id, e.admin, nil), 200)
	if after.body["display_name"] != "Renamed" {
		t.Errorf("a refused patch was half-applied: %s", after.raw)
	}
	e.mustStatus(e.do("PATCH", "/v1/tenants/"+c.id, e.admin, map[string]any{"push_url": "https://evil"}), 400)
	e.mustStatus(e.do("PATCH", "/v1/tenants/tn_missing", e.admin, map[string]any{"display_name": "x"}), 404)
}

func TestDeleteTenant(t *testing.T) {
	e := newEnv(t)
	c := e.createTenant(validTenant())
	e.mustStatus(e.do("DELETE", "/v1/tenants/"+c.id, e.admin, nil), 200)
	e.mustStatus(e.do("GET", "/v1/tenants/"+c.id, e.admin, nil), 404)
	e.mustStatus(e.do("DELETE", "/v1/tenants/"+c.id, e.admin, nil), 404)
}

func TestRotateWebhookSecret(t *testing.T) {
	e := newEnv(t)
	c := e.createTenant(validTenant())
	r := e.mustStatus(e.do("POST", "/v1/tenants/"+c.id+":rotateWebhookSecret", e.admin, "{}"), 200)
	ws, _ := r.body["webhook_secret"].(string)
	if !strings.HasPrefix(ws, "whsec_") || ws == c.webhookSecret {
		t.Errorf("rotated secret = %q (old %q)", ws, c.webhookSecret)
	}
}

func TestAuthMatrix(t *testing.T) {
	e := newEnv(t)
	a := e.createTenant(validTenant())
	b := e.createTenant(validTenant())
	gone := e.createTenant(validTenant())
	e.mustStatus(e.do("DELETE", "/v1/tenants/"+gone.id, e.admin, nil), 200)
	rotated := e.createTenant(validTenant())
	e.mustStatus(e.do("POST", "/v1/tenants/"+rotated.id+":rotateApiKey", e.admin, "{}"), 200)

	past := func() time.Time { return time.Now().Add(-48 * time.Hour) }
	oldAuth, err := tenant.NewAuthenticator(e.key, nil, past)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := oldAuth.IssueAdminToken(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherKey := make([]byte, 32)
	rand.Read(otherKey)
	foreignAuth, _ := tenant.NewAuthenticator(otherKey, nil, nil)
	foreign, _ := foreignAuth.IssueAdminToken(time.Hour)
	adminClaims := jwt.MapClaims{"role": "admin", "sub": "admin", "iss": "wxrelay", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	hs384, _ := jwt.NewWithClaims(jwt.SigningMethodHS384, adminClaims).SignedString(e.key)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, adminClaims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	noExp := jwt.MapClaims{"role": "admin", "sub": "admin", "iss": "wxrelay", "iat": time.Now().Unix()}
	neverExpires, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, noExp).SignedString(e.key)

	for _, tt := range []struct {
		name   string
		method string
		path   string
		token  string
		want   int
	}{
		{"admin lists", "GET", "/v1/tenants", e.admin, 200},
		{"missing token", "GET", "/v1/tenants", "", 401},
		{"garbage token", "GET", "/v1/tenants", "not-a-jwt", 401},
		{"expired admin token", "GET", "/v1/tenants", expired, 401},
		{"signed with another key", "GET", "/v1/tenants", foreign, 401},
		{"HS384 instead of HS256", "GET", "/v1/tenants", hs384, 401},
		{"alg none", "GET", "/v1/tenants", none, 401},
		{"admin token without expiry", "GET", "/v1/tenants", neverExpires, 401},
		{"tenant reads itself", "GET", "/v1/tenants/" + a.id, a.apiKey, 200},
		{"tenant lists tenants", "GET", "/v1/tenants", a.apiKey, 403},
		{"tenant creates tenant", "POST", "/v1/tenants", a.apiKey, 403},
		{"tenant patches itself", "PATCH", "/v1/tenants/" + a.id, a.apiKey, 403},
		{"tenant deletes itself", "DELETE", "/v1/tenants/" + a.id, a.apiKey, 403},
		{"tenant rotates own key", "POST", "/v1/tenants/" + a.id + ":rotateApiKey", a.apiKey, 403},
		{"tenant A reads tenant B", "GET", "/v1/tenants/" + b.id, a.apiKey, 403},
		{"rotated key", "GET", "/v1/tenants/" + rotated.id, rotated.apiKey, 401},
		{"deleted tenant's key", "GET", "/v1/tenants/" + gone.id, gone.apiKey, 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var body any = "{}"
			if tt.path == "/v1/tenants" || tt.method == "PATCH" {
				body = validTenant()
			}
			r := e.do(tt.method, tt.path, tt.token, body)
			if r.status != tt.want {
				t.Fatalf("status = %d, want %d; body %s", r.status, tt.want, r.raw)
			}
			if tt.want >= 400 {
				if _, ok := r.body["code"]; !ok {
					t.Errorf("error body %s is not a google.rpc.Status", r.raw)
				}
			}
		})
	}
	// Basic and lowercase-bearer headers.
	req, _ := http.NewRequest("GET", e.url+"/v1/tenants", nil)
	req.Header.Set("Authorization", "Basic "+e.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("Basic scheme: status %d, want 401", resp.StatusCode)
	}
}

func TestOperationsEndpoints(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		path, want string
	}{
		{"/healthz", "ok"},
		{"/readyz", "ready"},
		{"/openapi.json", `"/v1/tenants"`},
	} {
		t.Run(tt.path, func(t *testing.T) {
			e.do("GET", "/v1/tenants", e.admin, nil) // so call metrics exist
			r := e.mustStatus(e.do("GET", tt.path, "", nil), 200)
			if !strings.Contains(r.raw, tt.want) {
				t.Errorf("%s body lacks %q", tt.path, tt.want)
			}
		})
	}
	if !strings.Contains(e.metrics(), "grpc_server_handled_total") {
		t.Error("the metrics handler lacks grpc_server_handled_total")
	}
	// Per-tenant series name tenants: not on the public port.
	e.mustStatus(e.do("GET", "/metrics", "", nil), 404)
	e.db.Close()
	r := e.do("GET", "/readyz", "", nil)
	if r.status != 503 {
		t.Errorf("/readyz with the database closed = %d, want 503", r.status)
	}
}

// REST calls go through the services' interceptors as gRPC calls do: the
// call metrics count them, with the code the auth interceptor gave.
func TestRESTCallsPassTheInterceptors(t *testing.T) {
	e := newEnv(t)
	e.mustStatus(e.do("GET", "/v1/tenants", e.admin, nil), 200)
	e.mustStatus(e.do("GET", "/v1/tenants", "", nil), 401)
	metrics := e.metrics()
	for _, code := range []string{"OK", "Unauthenticated"} {
		want := `grpc_server_handled_total{grpc_code="` + code + `",grpc_method="ListTenants",grpc_service="wxrelay.v1.TenantService",grpc_type="unary"} 1`
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// A NUL in any string field is a 400 naming the field, over REST and in
// every kind of request, never a 500 from the database driver.
func TestNULInStringFieldsRefused(t *testing.T) {
	e := newEnv(t)
	tn := e.createTenant(validTenant())
	withNUL := validTenant()
	withNUL["display_name"] = "Shop\x00"
	for _, tt := range []struct {
		name, method, path string
		body               any
		field              string
	}{
		{"create display_name", "POST", "/v1/tenants", withNUL, "display_name"},
		{"patch display_name", "PATCH", "/v1/tenants/" + tn.id, map[string]any{"display_name": "a\x00b"}, "display_name"},
		{"patch original_id", "PATCH", "/v1/tenants/" + tn.id, map[string]any{"original_id": "gh_\x00"}, "original_id"},
		{"send touser", "POST", "/v1/tenants/" + tn.id + "/messages:send", map[string]any{"touser": "o\x00", "msgtype": "text", "text": map[string]any{"content": "hi"}}, "touser"},
		{"send text", "POST", "/v1/tenants/" + tn.id + "/messages:send", map[string]any{"touser": "o1", "msgtype": "text", "text": map[string]any{"content": "h\x00i"}}, "text.content"},
		{"list events filter", "GET", "/v1/tenants/" + tn.id + "/events?page_token=%00", nil, "page_token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.mustStatus(e.do(tt.method, tt.path, e.admin, tt.body), 400)
			if msg, _ := r.body["message"].(string); !strings.HasPrefix(msg, tt.field+":") || !strings.Contains(msg, "NUL") {
				t.Errorf("message = %q, want it to name %s and NUL", msg, tt.field)
			}
		})
	}
	got := e.mustStatus(e.do("GET", "/v1/tenants/"+tn.id, e.admin, nil), 200)
	if name := got.body["display_name"]; name != "Shop" {
		t.Errorf("display_name after refused patches = %q", name)
	}
}

// A call with a body and no valid token is refused before the body is
// read: a body that never ends still gets its 401 at once.
func TestUnauthenticatedBodiesAreNotRead(t *testing.T) {
	e := newEnv(t)
	tn := e.createTenant(validTenant())
	for _, tt := range []struct{ name, path, token string }{
		{"create tenant, no token", "/v1/tenants", ""},
		{"create tenant, forged token", "/v1/tenants", "eyJhbGciOiJIUzI1NiJ9.e30.AAAA"},
		{"upload, no token", mediaPath(tn.id), ""},
		{"send, garbage token", sendPath(tn.id), "garbage"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			defer pw.Close()
			go pw.Write([]byte(`{"display_name":"`)) // and never the rest
			req, _ := http.NewRequest("POST", e.url+tt.path, pr)
			req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			resp, err := http.DefaultClient.Do(req.WithContext(ctx))
			if err != nil {
				t.Fatalf("no answer before the body ended: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", resp.StatusCode)
			}
		})
	}
}

// TestCallLogLevels: a call that succeeds is logged at debug only, one that
// fails at info or above, so that the default log holds the failures and
// not a line per send.
func TestCallLogLevels(t *testing.T) {
	e := newEnv(t)
	if r := e.do("GET", "/v1/tenants", e.admin, nil); r.status != 200 {
		t.Fatalf("list: %d %s", r.status, r.raw)
	}
	if r := e.do("GET", "/v1/tenants/tn_nosuchtenant000000", e.admin, nil); r.status != 404 {
		t.Fatalf("get unknown: %d %s", r.status, r.raw)
	}
	levels := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(e.logBuf.String()), "\n") {
		var rec struct {
			Level  string `json:"level"`
			Msg    string `json:"msg"`
			Method string `json:"grpc.method"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "finished call" {
			levels[rec.Method] = rec.Level
		}
	}
	if levels["ListTenants"] != "DEBUG" || levels["GetTenant"] != "INFO" {
		t.Fatalf("finished call levels = %v, want ListTenants DEBUG and GetTenant INFO", levels)
	}
}

// TestOversizedInputIsNotEchoed: an id of the wrong shape is refused by
// name before anything looks it up, and no answer or log line quotes more
// than a few hundred bytes of what the caller sent.
func TestOversizedInputIsNotEchoed(t *testing.T) {
	e := newEnv(t)
	tn := e.createTenant(validTenant())
	huge := strings.Repeat("A", 100_000)
	for _, tt := range []struct {
		name, method, path string
		body               any
		field              string
	}{
		{"event id", "GET", "/v1/tenants/" + tn.id + "/events/evt_" + huge, nil, "event_id"},
		{"redeliver", "POST", "/v1/tenants/" + tn.id + "/events/evt_" + huge + ":redeliver", nil, "event_id"},
		{"tenant id", "GET", "/v1/tenants/tn_" + huge, nil, "id"},
		{"tenant id with a quote", "GET", "/v1/tenants/tn_%22x", nil, "id"},
		{"page token", "GET", "/v1/tenants/" + tn.id + "/events?page_token=" + huge, nil, "page_token"},
		{"enum value", "PATCH", "/v1/tenants/" + tn.id, map[string]any{"encrypt_mode": huge}, "encrypt_mode"},
		{"unknown field", "PATCH", "/v1/tenants/" + tn.id, map[string]any{huge: 1}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.logBuf.Reset()
			r := e.mustStatus(e.do(tt.method, tt.path, e.admin, tt.body), 400)
			if len(r.raw) > 1000 {
				t.Errorf("answer of %d bytes, want under 1000: %.200s…", len(r.raw), r.raw)
			}
			if msg, _ := r.body["message"].(string); !strings.HasPrefix(msg, tt.field) {
				t.Errorf("message %q, want it to name %q", msg, tt.field)
			}
			if strings.Contains(e.logBuf.String(), strings.Repeat("A", 400)) {
				t.Errorf("the log quotes the oversized input")
			}
		})
	}
}
