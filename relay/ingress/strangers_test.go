package ingress_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/relay/ingress"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/tenant"
)

// endlessPost POSTs a body that never ends to tenant id's push URL with
// query, and returns the status the relay answers with before the body
// ends (0 if it does not answer within 3 s).
func (e *relayEnv) endlessPost(id tenant.ID, query string) int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(`{"Encrypt":"`))
		<-ctx.Done()
		pw.CloseWithError(ctx.Err())
	}()
	req, _ := http.NewRequestWithContext(ctx, "POST", e.url+"/wx/"+string(id)+"?"+query, pr)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestPushesAreCheckedBeforeTheirBody: a push whose timestamp or query
// signature is wrong, or a plaintext push without one, is refused before
// its body is read, in every mode.
func TestPushesAreCheckedBeforeTheirBody(t *testing.T) {
	e := newRelayEnvWith(t, 0, time.Hour, nil)
	plain := e.newTenant(tenant.EncryptPlaintext, tenant.FormatJSON)
	safe := e.newTenant(tenant.EncryptSafe, tenant.FormatJSON, func(t *tenant.Tenant) { t.AppID = "wx0000000000000002" })
	now := time.Now().Unix()
	q := func(sig string) string {
		v := url.Values{"timestamp": {itoa(now)}, "nonce": {"7"}}
		if sig != "" {
			v.Set("signature", sig)
		}
		return v.Encode()
	}
	for _, tt := range []struct {
		name  string
		id    tenant.ID
		query string
		want  int
	}{
		{"plaintext, no signature", plain.ID, q(""), 401},
		{"plaintext, wrong signature", plain.ID, q(strings.Repeat("0", 40)), 401},
		{"safe, wrong signature", safe.ID, q(strings.Repeat("0", 40)), 401},
		{"stale timestamp", plain.ID, "timestamp=1&nonce=7&signature=" + wechat.Sign(pushToken, "1", "7"), 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := e.endlessPost(tt.id, tt.query); got != tt.want {
				t.Errorf("status %d, want %d before the body ended", got, tt.want)
			}
		})
	}
}

// TestUnverifiedBodiesShareABudget: encrypted-mode pushes without a query
// signature are read within one small budget for all tenants: past it the
// relay answers 503 unread, and pushes WeChat signs are not held up.
func TestUnverifiedBodiesShareABudget(t *testing.T) {
	e := newRelayEnvWith(t, 0, time.Hour, nil, func(o *ingress.Options) { o.UnverifiedBytes = 2 * ingress.MaxBodyBytes })
	safe := e.newTenant(tenant.EncryptSafe, tenant.FormatJSON)
	now := time.Now().Unix()
	unsigned := url.Values{"timestamp": {itoa(now)}, "nonce": {"7"}, "encrypt_type": {"aes"}, "msg_signature": {"x"}}.Encode()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 2 { // two bodies of unknown length hold the budget
		pr, pw := io.Pipe()
		go func() { pw.Write([]byte("{")); <-ctx.Done(); pw.Close() }()
		req, _ := http.NewRequestWithContext(ctx, "POST", e.url+"/wx/"+string(safe.ID)+"?"+unsigned, pr)
		go func() {
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	if got := e.endlessPost(safe.ID, unsigned); got != http.StatusServiceUnavailable {
		t.Errorf("an unverified push past the budget: %d, want 503 unread", got)
	}
	msg := wechat.TextMessage(wechat.FormatJSON, header(now), "hi", 1)
	req, err := pusher(t, safe).Push(msg, now, "8")
	if err != nil {
		t.Fatal(err)
	}
	if a := e.post(safe.ID, req); a.status != 200 || a.body != "success" {
		t.Errorf("a push WeChat signed, beside them: %d %q, want success", a.status, a.body)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestPlaintextQuerySignsOnePush: a captured plaintext query (signature,
// timestamp, nonce) carries the body it signed, as WeChat's retries do,
// and no other: not on this relay, not after its restart, not on another
// replica of the same database.
func TestPlaintextQuerySignsOnePush(t *testing.T) {
	e := newRelayEnvWith(t, 0, time.Hour, nil)
	tn := e.newTenant(tenant.EncryptPlaintext, tenant.FormatJSON)
	now := time.Now().Unix()
	p := pusher(t, tn)
	first, err := p.Push(wechat.TextMessage(wechat.FormatJSON, header(now), "hi", 1), now, "777")
	if err != nil {
		t.Fatal(err)
	}
	if a := e.post(tn.ID, first); a.body != "success" {
		t.Fatalf("the push: %d %q", a.status, a.body)
	}
	if a := e.post(tn.ID, first); a.body != "success" {
		t.Fatalf("WeChat's retry of it: %d %q, want success", a.status, a.body)
	}
	// Another relay process, or replica, on the same database.
	replica := newRelayEnvOn(t, e)
	for i, env := range []*relayEnv{e, replica} {
		for n := range 3 {
			forged := wechat.TextMessage(wechat.FormatJSON, header(now), fmt.Sprint("forged ", n), int64(100+n))
			if a := env.postRaw(tn.ID, first.RawQuery(), first.ContentType, forged); a.status != http.StatusUnauthorized {
				t.Errorf("relay %d: another body under the captured query: %d %q, want 401", i, a.status, a.body)
			}
		}
	}
	if n := len(e.stored(tn.ID)); n != 1 {
		t.Errorf("%d events stored, want the one pushed", n)
	}
}

// newRelayEnvOn is a second relay on e's database: a replica, or e after
// a restart (nothing of its memory kept).
func newRelayEnvOn(t *testing.T, e *relayEnv) *relayEnv {
	t.Helper()
	es := store.NewEventStore(e.db)
	ing := relay.NewIngestor(es, relay.IngestorOptions{})
	t.Cleanup(ing.Close)
	mux := http.NewServeMux()
	mux.Handle("/wx/{id}", ingress.New(ingress.Options{
		Tenants: tenant.NewCache(e.tenants, 0, nil), Events: ing, MaxSkew: time.Hour, Nonces: store.NewNonceStore(e.db),
	}))
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return &relayEnv{t: t, db: e.db, url: hs.URL, tenants: e.tenants, events: relay.NewEvents(es), logs: e.logs}
}

// countingGetter counts the tenant reads that reach the store.
type countingGetter struct {
	tenant.Getter
	reads atomic.Int64
}

func (g *countingGetter) Get(ctx context.Context, id tenant.ID) (*tenant.Tenant, error) {
	g.reads.Add(1)
	return g.Getter.Get(ctx, id)
}

// failingEvents is a store that cannot take events.
type failingEvents struct{}

func (failingEvents) Append(context.Context, *relay.Event) (relay.AppendResult, error) {
	return relay.AppendResult{}, errors.New("disk full")
}

// TestFailedCommitsReadNoTenant: a push whose commit fails is answered 500
// without reading its tenant again (the error says whether the tenant is
// gone), so that failing commits add no reads and keep the tenant cached.
func TestFailedCommitsReadNoTenant(t *testing.T) {
	e := newRelayEnv(t)
	tn := e.newTenant(tenant.EncryptSafe, tenant.FormatJSON)
	g := &countingGetter{Getter: e.tenants}
	mux := http.NewServeMux()
	mux.Handle("/wx/{id}", ingress.New(ingress.Options{Tenants: tenant.NewCache(g, time.Hour, nil), Events: failingEvents{}}))
	hs := httptest.NewServer(mux)
	defer hs.Close()
	now := time.Now().Unix()
	for i := range 5 {
		req, err := pusher(t, tn).Push(wechat.TextMessage(wechat.FormatJSON, header(now), "hi", int64(i)), now, fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(hs.URL+"/wx/"+string(tn.ID)+"?"+req.RawQuery(), req.ContentType, bytes.NewReader(req.Body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusInternalServerError {
			t.Errorf("push %d with the store failing: %d, want 500", i, resp.StatusCode)
		}
	}
	if n := g.reads.Load(); n != 1 {
		t.Errorf("5 failing pushes read the tenant %d times, want once (then cached)", n)
	}
}
