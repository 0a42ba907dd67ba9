package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/store/storetest"
)

// replicaNoticeBound is how soon a change made through one replica applies
// on the others: a PostgreSQL notice takes milliseconds; this leaves room
// for a loaded test machine. The tenant cache's TTL (30 s) is far longer,
// so a replica that missed the notice fails the test.
const replicaNoticeBound = time.Second

// hookRecorder is a tenant's webhook: it keeps every delivery's headers
// and body.
type hookRecorder struct {
	mu   sync.Mutex
	got  []delivered
	seen chan struct{}
}

type delivered struct {
	header http.Header
	body   []byte
}

func newHookRecorder(t *testing.T) (*hookRecorder, string) {
	h := &hookRecorder{seen: make(chan struct{}, 1000)}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv.URL
}

func (h *hookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.got = append(h.got, delivered{r.Header.Clone(), body})
	h.mu.Unlock()
	h.seen <- struct{}{}
}

// count is how many deliveries came.
func (h *hookRecorder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.got)
}

// next waits for the next delivery.
func (h *hookRecorder) next(t *testing.T) delivered {
	t.Helper()
	select {
	case <-h.seen:
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10 s")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.got[len(h.got)-1]
}

// TestChangesTakeEffectAtOnce rotates the webhook secret, changes the
// webhook URL and the push Token, and deletes the tenant, each through one
// process, and pushes right after each change: on SQLite to the same
// process at once, on PostgreSQL to another replica within
// replicaNoticeBound. Every delivery, push and answer must follow the
// change. The tenant cache keeps tenants for 30 s, so each step fails if
// the change reached the process only through its TTL.
func TestChangesTakeEffectAtOnce(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		p := startServe(t, dir, "WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true")
		checkChangesApply(t, p, p, adminTokenFor(t, dir, nil), 0)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		dsn := storetest.PostgresDSN(t) // skips unless WXRELAY_TEST_POSTGRES is set
		key := make([]byte, 32)
		rand.Read(key)
		env := []string{"WXRELAY_DB=" + dsn, "WXRELAY_SECRET_KEY=" + base64.StdEncoding.EncodeToString(key), "WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true"}
		ps := startReplicas(t, 2, env...)
		checkChangesApply(t, ps[0].process, ps[1].process, adminTokenFor(t, t.TempDir(), env), replicaNoticeBound)
	})
}

// checkChangesApply makes changes through a and pushes through b, wait
// after each change.
func checkChangesApply(t *testing.T, a, b *process, admin string, wait time.Duration) {
	hook, hookURL := newHookRecorder(t)
	var created struct {
		Tenant        struct{ ID string } `json:"tenant"`
		WebhookSecret string              `json:"webhook_secret"`
	}
	body := fmt.Sprintf(`{"appid":"wx0123456789abcd01","app_secret":"5ec2e75ec2e75ec2e75ec2e75ec2e75e","token":"PushToken1","encrypt_mode":"ENCRYPT_MODE_PLAINTEXT","data_format":"DATA_FORMAT_JSON","webhook_url":%q}`, hookURL)
	if code := a.api(t, "POST", "/v1/tenants", admin, body, &created); code != 200 {
		t.Fatalf("create tenant: %d", code)
	}
	id := created.Tenant.ID
	msgID := int64(0)
	push := func(token string) (int, string) {
		t.Helper()
		msgID++
		now := time.Now().Unix()
		req, err := (&wechat.Pusher{Token: token, Mode: wechat.ModePlaintext}).Push(
			wechat.TextMessage(wechat.FormatJSON, wechat.Header{ToUserName: "gh_x", FromUserName: "o1", CreateTime: now}, "hi", msgID),
			now, strconv.FormatInt(msgID, 10))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post("http://"+b.http+"/wx/"+id+"?"+req.RawQuery(), req.ContentType, strings.NewReader(string(req.Body)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	mustPush := func(token string) {
		t.Helper()
		if code, out := push(token); out != wechat.Success {
			t.Fatalf("push with token %s: %d %q", token, code, out)
		}
	}
	verifies := func(d delivered, secret string) bool {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		return wh.Verify(d.body, d.header) == nil
	}

	// The first push loads the tenant into b's cache.
	mustPush("PushToken1")
	if d := hook.next(t); !verifies(d, created.WebhookSecret) {
		t.Fatal("first delivery does not verify with the tenant's secret")
	}

	// Rotation: the next delivery is signed with the new secret.
	var rotated struct {
		WebhookSecret string `json:"webhook_secret"`
	}
	if code := a.api(t, "POST", "/v1/tenants/"+id+":rotateWebhookSecret", admin, "", &rotated); code != 200 {
		t.Fatalf("rotate: %d", code)
	}
	time.Sleep(wait)
	mustPush("PushToken1")
	if d := hook.next(t); !verifies(d, rotated.WebhookSecret) {
		t.Errorf("delivery right after the rotation does not verify with the new secret (signatures %q)", d.header.Get("webhook-signature"))
	}

	// A new webhook URL receives the next delivery.
	moved, movedURL := newHookRecorder(t)
	if code := a.api(t, "PATCH", "/v1/tenants/"+id, admin, fmt.Sprintf(`{"webhook_url":%q}`, movedURL), nil); code != 200 {
		t.Fatalf("patch webhook_url: %d", code)
	}
	time.Sleep(wait)
	mustPush("PushToken1")
	if d := moved.next(t); !verifies(d, rotated.WebhookSecret) {
		t.Error("delivery to the new webhook URL does not verify")
	}

	// A new push Token works at once; the old one for the grace period.
	var patched struct {
		PushSecrets string `json:"push_secrets"`
		Until       string `json:"previous_push_secrets_until"`
	}
	if code := a.api(t, "PATCH", "/v1/tenants/"+id, admin, `{"token":"PushToken2"}`, &patched); code != 200 {
		t.Fatalf("patch token: %d", code)
	}
	if until, err := time.Parse(time.RFC3339Nano, patched.Until); patched.PushSecrets != "PUSH_SECRETS_CURRENT_AND_PREVIOUS" ||
		err != nil || until.Sub(time.Now()) < 9*time.Minute || until.Sub(time.Now()) > 11*time.Minute {
		t.Errorf("after the token change the tenant says push_secrets %q until %q, want the previous ones accepted for 10 minutes", patched.PushSecrets, patched.Until)
	}
	time.Sleep(wait)
	mustPush("PushToken2")
	mustPush("PushToken1")
	if code, _ := push("PushToken0"); code != http.StatusUnauthorized {
		t.Errorf("push with a token never set: %d, want 401", code)
	}

	// Deleted: 404 at once, so that WeChat stops retrying.
	if code := a.api(t, "DELETE", "/v1/tenants/"+id, admin, "", nil); code != 200 {
		t.Fatalf("delete: %d", code)
	}
	time.Sleep(wait)
	if code, out := push("PushToken2"); code != http.StatusNotFound {
		t.Errorf("push to the deleted tenant: %d %q, want 404", code, out)
	}
}
