package token_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

const (
	appID  = "wx00000000000000a1"
	secret = "0123456789abcdef0123456789abcdef"
	openID = "oUser0000000000000000000001"
)

// start is 10:00 in Beijing, far from the quota day's edge.
var start = time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC)

// getter reads tenants from the store, optionally adjusting them (the store
// does not keep TokenEndpoint yet).
type getter struct {
	s      *store.TenantStore
	adjust func(*tenant.Tenant)
}

func (g getter) Get(ctx context.Context, id tenant.ID) (*tenant.Tenant, error) {
	t, err := g.s.FindByID(ctx, id)
	if err == nil && g.adjust != nil {
		g.adjust(t)
	}
	return t, err
}

// env is wxsim on a fake clock, a wechat.Client pointed at it, and a
// migrated database holding one tenant of app appID.
type env struct {
	sim    *wxsim.Server
	clock  *clockwork.FakeClock
	wx     *wechat.Client
	db     *store.DB
	tid    tenant.ID
	adjust func(*tenant.Tenant)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvOn(t, storetest.New(t))
}

func newEnvOn(t *testing.T, db *store.DB) *env {
	t.Helper()
	c := clockwork.NewFakeClockAt(start)
	sim := wxsim.New(wxsim.Options{Now: c.Now})
	sim.AddApp(appID, secret)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	e := &env{sim: sim, clock: c, wx: &wechat.Client{BaseURL: ts.URL}, db: db}
	e.tid = e.mustCreateTenant(t, "tenant_a", appID, secret)
	return e
}

func (e *env) mustCreateTenant(t testing.TB, id, appid, appSecret string) tenant.ID {
	t.Helper()
	tn := &tenant.Tenant{
		ID: tenant.ID(id), AppID: appid,
		EncryptMode: tenant.EncryptSafe, DataFormat: tenant.FormatJSON,
		WebhookURL: "https://example.com/hook", ReplyMode: tenant.ReplySuccess,
		State: tenant.StateActive,
		Secrets: tenant.Secrets{
			AppSecret: appSecret, Token: "PushToken",
			EncodingAESKey: strings.Repeat("A", 43),
		},
		WebhookSecrets: tenant.WebhookSecrets{Current: "whsec_x"},
		APIKeyHash:     []byte{1},
		CreateTime:     start, UpdateTime: start, Version: 1,
	}
	if err := store.NewTenantStore(e.db).Create(context.Background(), tn); err != nil {
		t.Fatalf("create tenant: %v", err)
	}
	return tn.ID
}

func (e *env) keeper(db *store.DB, owner string, opts ...func(*token.Options)) *token.Keeper {
	o := token.Options{Owner: owner, Now: e.clock.Now, Sleep: advance(e.clock), Poll: 5 * time.Millisecond}
	for _, f := range opts {
		f(&o)
	}
	return token.NewKeeper(store.NewTokenStore(db), e.wx,
		getter{s: store.NewTenantStore(db), adjust: e.adjust}, o)
}

// tokenCalls counts the calls wxsim received on the token endpoints.
func (e *env) tokenCalls() int {
	n := 0
	for _, c := range e.sim.Calls() {
		if c.Path == "/cgi-bin/stable_token" || c.Path == "/cgi-bin/token" {
			n++
		}
	}
	return n
}

func (e *env) send(ctx context.Context, tok string) error {
	return e.wx.SendCustomMessage(ctx, tok, []byte(`{"touser":"`+openID+`","msgtype":"text","text":{"content":"hi"}}`))
}

func mustToken(t *testing.T, k *token.Keeper, tid tenant.ID) string {
	t.Helper()
	tok, err := k.Token(context.Background(), tid)
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	return tok
}

func TestKeeper_TokenFetchesOnce(t *testing.T) {
	e := newEnv(t)
	k := e.keeper(e.db, "p1")
	tok := mustToken(t, k, e.tid)
	if got := mustToken(t, k, e.tid); got != tok {
		t.Errorf("second Token = %.8s…, want the first %.8s…", got, tok)
	}
	if err := e.send(context.Background(), tok); err != nil {
		t.Errorf("send with the token: %v", err)
	}
	// A restarted process finds it in the store.
	if got := mustToken(t, e.keeper(e.db, "p2"), e.tid); got != tok {
		t.Errorf("Token after restart = %.8s…, want %.8s…", got, tok)
	}
	if got, want := e.sim.TokenCounts(appID), (wxsim.TokenCounts{Stable: 1}); got != want {
		t.Errorf("TokenCounts = %+v, want %+v", got, want)
	}
	if got := e.tokenCalls(); got != 1 {
		t.Errorf("token endpoint calls = %d, want 1", got)
	}
	st, err := k.Status(context.Background(), e.tid)
	if err != nil {
		t.Fatal(err)
	}
	if !st.ExpiresAt.Equal(start.Add(2*time.Hour)) || !st.LastRefresh.Equal(start) || st.LastError != "" {
		t.Errorf("Status = %+v, want expiry in 2 h, refreshed at start, no error", st)
	}
}

// TestKeeper_ConcurrentSendsDuringInvalidation: 50 sends meet a token
// WeChat invalidated; they cause one refresh, and each succeeds on retry.
func TestKeeper_ConcurrentSendsDuringInvalidation(t *testing.T) {
	e := newEnv(t)
	k := e.keeper(e.db, "p1")
	old := mustToken(t, k, e.tid)
	if err := e.sim.InvalidateTokens(appID); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	toks := make([]string, 50)
	// All 50 hold the token before any of them sends: the calls in
	// flight when WeChat invalidated it.
	var holding sync.WaitGroup
	holding.Add(len(toks))
	for i := range toks {
		wg.Go(func() {
			tok, err := k.Token(ctx, e.tid)
			holding.Done()
			if err != nil {
				t.Errorf("Token: %v", err)
				return
			}
			holding.Wait()
			err = e.send(ctx, tok)
			if !wechat.IsTokenInvalid(err) {
				t.Errorf("send with the invalidated token: err = %v, want a token error", err)
				return
			}
			if tok, err = k.Refresh(ctx, e.tid, tok); err != nil {
				t.Errorf("Refresh: %v", err)
				return
			}
			if err := e.send(ctx, tok); err != nil {
				t.Errorf("send after Refresh: %v", err)
			}
			toks[i] = tok
		})
	}
	wg.Wait()
	for _, tok := range toks {
		if tok == old || tok != toks[0] {
			t.Fatalf("callers got different or old tokens")
		}
	}
	// One issuance for the first token, one for the refresh. WeChat's
	// normal mode hands out a new token once the old one is dead, so no
	// force_refresh was spent.
	if got, want := e.sim.TokenCounts(appID), (wxsim.TokenCounts{Stable: 2}); got != want {
		t.Errorf("TokenCounts = %+v, want %+v", got, want)
	}
	if got := e.tokenCalls(); got != 2 {
		t.Errorf("token endpoint calls = %d, want 2", got)
	}
}

func TestKeeper_RefreshStaleFailedReturnsCurrent(t *testing.T) {
	e := newEnv(t)
	k := e.keeper(e.db, "p1")
	ctx := context.Background()
	old := mustToken(t, k, e.tid)
	e.sim.InvalidateTokens(appID)
	cur, err := k.Refresh(ctx, e.tid, old)
	if err != nil || cur == old {
		t.Fatalf("Refresh = %.8s…, %v; want a new token", cur, err)
	}
	calls := e.tokenCalls()
	for _, k := range []*token.Keeper{k, e.keeper(e.db, "p2")} { // in memory; in the store
		if got, err := k.Refresh(ctx, e.tid, old); err != nil || got != cur {
			t.Errorf("Refresh(stale) = %.8s…, %v; want the current %.8s…", got, err, cur)
		}
	}
	if got := e.tokenCalls(); got != calls {
		t.Errorf("stale Refresh called WeChat %d times", got-calls)
	}
}

// TestKeeper_ForceRefreshLimits: a refused token that WeChat still hands
// out is force-refreshed, 30 s apart and 20 a day at most.
func TestKeeper_ForceRefreshLimits(t *testing.T) {
	e := newEnv(t)
	k := e.keeper(e.db, "p1")
	ctx := context.Background()
	tok := mustToken(t, k, e.tid)

	next, err := k.Refresh(ctx, e.tid, tok)
	if err != nil || next == tok {
		t.Fatalf("Refresh = %.8s…, %v; want a forced new token", next, err)
	}
	if got := e.sim.TokenCounts(appID).StableForced; got != 1 {
		t.Errorf("StableForced = %d, want 1", got)
	}
	e.clock.Advance(10 * time.Second)
	if _, err := k.Refresh(ctx, e.tid, next); !errors.Is(err, token.ErrForceLimited) {
		t.Errorf("Refresh 10 s after a forced one: err = %v, want ErrForceLimited", err)
	}
	e.clock.Advance(21 * time.Second)
	for i := 2; i <= 20; i++ {
		tok = next
		if next, err = k.Refresh(ctx, e.tid, tok); err != nil || next == tok {
			t.Fatalf("forced refresh %d = %v; want a new token", i, err)
		}
		e.clock.Advance(31 * time.Second)
	}
	if _, err := k.Refresh(ctx, e.tid, next); !errors.Is(err, token.ErrForceLimited) {
		t.Errorf("21st forced refresh of the day: err = %v, want ErrForceLimited", err)
	}
	if got := e.sim.TokenCounts(appID).StableForced; got != 20 {
		t.Errorf("StableForced = %d, want 20", got)
	}
	// A limit is not a failure: the token still serves.
	if got := mustToken(t, k, e.tid); got != next {
		t.Errorf("Token after the limit = %.8s…, want %.8s…", got, next)
	}
}

func TestKeeper_Classic(t *testing.T) {
	e := newEnv(t)
	e.adjust = func(t *tenant.Tenant) { t.TokenEndpoint = tenant.TokenClassic }
	k := e.keeper(e.db, "p1")
	ctx := context.Background()
	old := mustToken(t, k, e.tid)
	e.sim.InvalidateTokens(appID)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if tok, err := k.Refresh(ctx, e.tid, old); err != nil || tok == old {
				t.Errorf("Refresh = %v, want a new token", err)
			}
		})
	}
	wg.Wait()
	if got, want := e.sim.TokenCounts(appID), (wxsim.TokenCounts{Classic: 2}); got != want {
		t.Errorf("TokenCounts = %+v, want %+v", got, want)
	}
}

// TestKeeper_TwoProcesses: two relay processes sharing a database fetch each
// token once between them, on SQLite and PostgreSQL.
func TestKeeper_TwoProcesses(t *testing.T) {
	storetest.EachDSN(t, func(t *testing.T, dsn string) {
		cfg := storetest.Config(t, dsn) // one seal key for both
		open := func() *store.DB {
			db, err := store.Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		}
		db1, db2 := open(), open()
		e := newEnvOn(t, db1)
		k1, k2 := e.keeper(db1, "p1"), e.keeper(db2, "p2")
		ctx := context.Background()

		both := func() {
			t.Helper()
			var wg sync.WaitGroup
			for _, k := range []*token.Keeper{k1, k2} {
				wg.Go(func() {
					if err := k.RefreshDue(ctx); err != nil {
						t.Errorf("RefreshDue: %v", err)
					}
				})
			}
			wg.Wait()
		}
		both()
		if got := e.sim.TokenCounts(appID).Total(); got != 1 {
			t.Errorf("tokens issued after the first RefreshDue = %d, want 1", got)
		}
		t1, t2 := mustToken(t, k1, e.tid), mustToken(t, k2, e.tid)
		if t1 != t2 {
			t.Error("the processes hold different tokens")
		}
		both() // nothing due
		if got := e.tokenCalls(); got != 1 {
			t.Errorf("token calls = %d, want 1", got)
		}

		// Into the stable token's last five minutes: due, refreshed once.
		e.clock.Advance(2*time.Hour - 80*time.Second)
		both()
		if got := e.sim.TokenCounts(appID).Total(); got != 2 {
			t.Errorf("tokens issued after the due refresh = %d, want 2", got)
		}
		if n1, n2 := mustToken(t, k1, e.tid), mustToken(t, k2, e.tid); n1 == t1 || n1 != n2 {
			t.Error("after the due refresh, the processes do not share a new token")
		}

		// Both find a dead token at once: one refresh between them.
		cur := mustToken(t, k1, e.tid)
		e.sim.InvalidateTokens(appID)
		var wg sync.WaitGroup
		for _, k := range []*token.Keeper{k1, k2, k1, k2} {
			wg.Go(func() {
				if tok, err := k.Refresh(ctx, e.tid, cur); err != nil || tok == cur {
					t.Errorf("Refresh = %v; want a new token", err)
				}
			})
		}
		wg.Wait()
		if got := e.sim.TokenCounts(appID).Total(); got != 3 {
			t.Errorf("tokens issued after concurrent Refresh in two processes = %d, want 3", got)
		}
	})
}

func TestKeeper_StatusErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		fault   func(e *env)
		errcode int
	}{
		{"wrong secret", func(e *env) { e.sim.AddApp(appID, "another-secret") }, wechat.CodeInvalidSecret},
		{"IP whitelist", func(e *env) { e.sim.SetIPWhitelist(true) }, wechat.CodeIPNotWhitelisted},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tt.fault(e)
			k := e.keeper(e.db, "p1")
			ctx := context.Background()
			_, err := k.Token(ctx, e.tid)
			if got := wechat.Errcode(err); got != tt.errcode {
				t.Fatalf("Token: errcode %d (%v), want %d", got, err, tt.errcode)
			}
			st, err := k.Status(ctx, e.tid)
			if err != nil {
				t.Fatal(err)
			}
			if st.LastErrcode != tt.errcode || st.LastError == "" || strings.Contains(st.LastError, "rid:") ||
				st.Failures != 1 || !st.LastErrorAt.Equal(start) || !st.ExpiresAt.IsZero() {
				t.Errorf("Status = %+v, want errcode %d, a message without rid, 1 failure", st, tt.errcode)
			}
			// Backing off: no second call at once, even from RefreshDue.
			if _, err := k.Token(ctx, e.tid); !errors.Is(err, token.ErrBackoff) || wechat.Errcode(err) != tt.errcode {
				t.Errorf("second Token: err = %v, want ErrBackoff with errcode %d", err, tt.errcode)
			}
			if err := k.RefreshDue(ctx); err != nil {
				t.Errorf("RefreshDue during backoff: %v", err)
			}
			if got := e.tokenCalls(); got != 1 {
				t.Errorf("token calls = %d, want 1", got)
			}
		})
	}
}

// TestKeeper_TenantUpdateLiftsBackoff: a fixed secret works at once.
func TestKeeper_TenantUpdateLiftsBackoff(t *testing.T) {
	e := newEnv(t)
	e.sim.AddApp(appID, "new-secret")
	k := e.keeper(e.db, "p1")
	ctx := context.Background()
	if _, err := k.Token(ctx, e.tid); wechat.Errcode(err) != wechat.CodeInvalidSecret {
		t.Fatalf("Token: %v, want 40125", err)
	}
	ts := store.NewTenantStore(e.db)
	tn, err := ts.FindByID(ctx, e.tid)
	if err != nil {
		t.Fatal(err)
	}
	tn.Secrets.AppSecret = "new-secret"
	if err := ts.Update(ctx, tn); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Token(ctx, e.tid); err != nil {
		t.Fatalf("Token after fixing the secret: %v", err)
	}
	if st, _ := k.Status(ctx, e.tid); st.LastError != "" || st.Failures != 0 || st.ExpiresAt.IsZero() {
		t.Errorf("Status = %+v, want the error cleared", st)
	}
}

func TestKeeper_SystemErrorBacksOff(t *testing.T) {
	e := newEnv(t)
	k := e.keeper(e.db, "p1")
	ctx := context.Background()
	e.sim.FailNext(1, "/cgi-bin/stable_token")
	if _, err := k.Token(ctx, e.tid); wechat.Errcode(err) != wechat.CodeSystemError {
		t.Fatalf("Token: %v, want errcode -1", err)
	}
	if _, err := k.Token(ctx, e.tid); !errors.Is(err, token.ErrBackoff) {
		t.Errorf("Token at once: err = %v, want ErrBackoff", err)
	}
	if got := e.tokenCalls(); got != 1 {
		t.Errorf("token calls = %d, want 1 (no immediate retry)", got)
	}
	st, _ := k.Status(ctx, e.tid)
	if st.LastErrcode != -1 || st.NextRefresh.Before(start.Add(5*time.Second)) || st.NextRefresh.After(start.Add(time.Minute)) {
		t.Errorf("Status = %+v, want errcode -1, next try in 5 s to 1 min", st)
	}
	e.clock.Advance(time.Minute)
	if _, err := k.Token(ctx, e.tid); err != nil {
		t.Errorf("Token after the backoff: %v", err)
	}
}

// TestKeeper_RefreshDueSpreads: many tenants are fetched at most
// Concurrency at a time, and their next refreshes are spread out.
func TestKeeper_RefreshDueSpreads(t *testing.T) {
	e := newEnv(t)
	const n = 30
	for i := range n {
		appid := fmt.Sprintf("wx%016x", 0xb0+i)
		e.sim.AddApp(appid, secret)
		e.mustCreateTenant(t, fmt.Sprintf("t%02d", i), appid, secret)
	}
	cw := &countingWeChat{WeChat: e.wx}
	k := token.NewKeeper(store.NewTokenStore(e.db), cw, getter{s: store.NewTenantStore(e.db)},
		token.Options{Owner: "p1", Now: e.clock.Now, Sleep: advance(e.clock), Concurrency: 3})
	ctx := context.Background()
	if err := k.RefreshDue(ctx); err != nil {
		t.Fatal(err)
	}
	if got := cw.calls.Load(); got != n+1 {
		t.Errorf("fetches = %d, want %d", got, n+1)
	}
	if got := cw.max.Load(); got > 3 {
		t.Errorf("at most %d fetches at once, want ≤ 3", got)
	}
	due := map[time.Time]bool{}
	for i := range n {
		st, err := k.Status(ctx, tenant.ID(fmt.Sprintf("t%02d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if lead := st.ExpiresAt.Sub(st.NextRefresh); lead < 90*time.Second || lead > 270*time.Second {
			t.Errorf("next refresh %s before expiry, want within the last 90 s to 270 s", lead)
		}
		due[st.NextRefresh] = true
	}
	if len(due) < n/2 {
		t.Errorf("%d tenants share %d next-refresh times; want them spread", n, len(due))
	}
}

// One run refreshes every due tenant, Batch at a time: a run of one batch
// a minute refreshed 500 tenants a minute at most, fewer than 100,000
// tenants' tokens need. A tenant whose fetch fails is not taken again in
// the same run.
func TestKeeper_RefreshDueTakesEveryDueTenant(t *testing.T) {
	e := newEnv(t)
	const n = 12
	for i := range n {
		appid := fmt.Sprintf("wx%016x", 0xc0+i)
		if i != 5 { // one tenant WeChat refuses
			e.sim.AddApp(appid, secret)
		}
		e.mustCreateTenant(t, fmt.Sprintf("t%02d", i), appid, secret)
	}
	cw := &countingWeChat{WeChat: e.wx}
	k := token.NewKeeper(store.NewTokenStore(e.db), cw, getter{s: store.NewTenantStore(e.db)},
		token.Options{Owner: "p1", Now: e.clock.Now, Sleep: advance(e.clock), Batch: 5})
	err := k.RefreshDue(context.Background())
	if err == nil || !strings.Contains(err.Error(), "1 of 13 due refreshes failed") {
		t.Errorf("RefreshDue = %v, want 1 of 13 failed", err)
	}
	if got := cw.calls.Load(); got != n+1 {
		t.Errorf("fetches in one run = %d, want %d (every due tenant, once)", got, n+1)
	}
}

type countingWeChat struct {
	token.WeChat
	inflight, max, calls atomic.Int64
}

func (c *countingWeChat) StableToken(ctx context.Context, appid, secret string, force bool) (wechat.AccessToken, error) {
	c.calls.Add(1)
	n := c.inflight.Add(1)
	defer c.inflight.Add(-1)
	for m := c.max.Load(); n > m && !c.max.CompareAndSwap(m, n); m = c.max.Load() {
	}
	time.Sleep(5 * time.Millisecond)
	return c.WeChat.StableToken(ctx, appid, secret, force)
}

// TestKeeper_SealedAtRest: the token never reaches the database file in
// the clear.
func TestKeeper_SealedAtRest(t *testing.T) {
	dsn := storetest.SQLiteDSN(t)
	e := newEnvOn(t, storetest.MustOpen(t, dsn))
	tok := mustToken(t, e.keeper(e.db, "p1"), e.tid)
	files, _ := filepath.Glob(dsn + "*") // the database, its WAL and shared memory
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	seen := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(tok)) {
			t.Errorf("%s holds the access token in the clear", filepath.Base(f))
		}
		seen = seen || bytes.Contains(b, []byte(appID))
	}
	if !seen {
		t.Error("the appid is in no file either: the search is not looking at the data")
	}
}

// TestKeeper_TokenExpiry: the expiry is the one WeChat gave, for a token
// fetched, held in memory, or read from the store by another process.
func TestKeeper_TokenExpiry(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	k := e.keeper(e.db, "p1")
	tok, exp, err := k.TokenExpiry(ctx, e.tid)
	if err != nil || !exp.Equal(start.Add(2*time.Hour)) {
		t.Fatalf("TokenExpiry = %v, %v; want expiry 2 h after start", exp, err)
	}
	e.clock.Advance(30 * time.Minute)
	if tok2, exp2, err := k.TokenExpiry(ctx, e.tid); err != nil || tok2 != tok || !exp2.Equal(exp) {
		t.Fatalf("TokenExpiry from memory = %.8s… %v %v; want the same token and expiry", tok2, exp2, err)
	}
	if tok3, exp3, err := e.keeper(e.db, "p2").TokenExpiry(ctx, e.tid); err != nil || tok3 != tok || !exp3.Equal(exp) {
		t.Fatalf("TokenExpiry from the store = %.8s… %v %v; want the same token and expiry", tok3, exp3, err)
	}
	e.sim.InvalidateTokens(appID)
	tok4, exp4, err := k.RefreshExpiry(ctx, e.tid, tok)
	if err != nil || tok4 == tok || !exp4.Equal(e.clock.Now().Add(2*time.Hour)) {
		t.Fatalf("RefreshExpiry = %.8s… %v %v; want a new token expiring 2 h from now", tok4, exp4, err)
	}
}

// TestKeeper_AppIDChangeNeverServesTheOldAppsToken: after the tenant's
// appid changes, the token of the previous app (which may now be another
// tenant's) is never served again, whether the change is told (Forget) or
// only seen through the tenant read.
func TestKeeper_AppIDChangeNeverServesTheOldAppsToken(t *testing.T) {
	for _, told := range []bool{true, false} {
		t.Run(fmt.Sprintf("told=%v", told), func(t *testing.T) {
			e := newEnv(t)
			const appB, secretB = "wx00000000000000b2", "fedcba9876543210fedcba9876543210"
			e.sim.AddApp(appB, secretB)
			k := e.keeper(e.db, "p1")
			tokA := mustToken(t, k, e.tid)

			ctx := context.Background()
			ts := store.NewTenantStore(e.db)
			tn, err := ts.FindByID(ctx, e.tid)
			if err != nil {
				t.Fatal(err)
			}
			tn.AppID, tn.Secrets.AppSecret = appB, secretB
			if err := ts.Update(ctx, tn); err != nil {
				t.Fatal(err)
			}
			if told {
				k.Forget(e.tid)
			}
			tokB := mustToken(t, k, e.tid)
			if tokB == tokA {
				t.Fatalf("after the appid changed to %s the keeper served app %s's token", appB, appID)
			}
			if got := e.sim.TokenCounts(appB); got.Stable != 1 {
				t.Errorf("TokenCounts(%s) = %+v, want one stable fetch", appB, got)
			}
			if err := e.send(ctx, tokB); err != nil {
				t.Errorf("send with the new app's token: %v", err)
			}
		})
	}
}

// TestKeeper_DisabledTenantGetsNoToken: a disabled tenant is refused a
// token (every transport's sends come through here), and the scheduled
// refresh leaves it alone; enabled again, it gets its token.
func TestKeeper_DisabledTenantGetsNoToken(t *testing.T) {
	e := newEnv(t)
	k := e.keeper(e.db, "p1")
	tok := mustToken(t, k, e.tid)
	e.adjust = func(tn *tenant.Tenant) { tn.State = tenant.StateDisabled }
	k = e.keeper(e.db, "p1")
	ctx := context.Background()
	if _, err := k.Token(ctx, e.tid); !errors.Is(err, tenant.ErrDisabled) {
		t.Fatalf("Token of a disabled tenant: %v, want ErrDisabled", err)
	}
	if _, err := k.Refresh(ctx, e.tid, tok); !errors.Is(err, tenant.ErrDisabled) {
		t.Fatalf("Refresh of a disabled tenant: %v, want ErrDisabled", err)
	}
	e.clock.Advance(3 * time.Hour) // the token is long due
	calls := e.tokenCalls()
	if err := k.RefreshDue(ctx); err != nil {
		t.Fatalf("RefreshDue: %v", err)
	}
	if got := e.tokenCalls(); got != calls {
		t.Errorf("RefreshDue fetched a disabled tenant's token (%d calls, want %d)", got, calls)
	}
	e.adjust = nil
	if _, err := e.keeper(e.db, "p1").Token(ctx, e.tid); err != nil {
		t.Errorf("Token once enabled again: %v", err)
	}
}

// racedLeases is a token store on which another process ("other") takes
// the lease of a scheduled refresh just before it does, as a replica's
// refresh may between the due list and the lease, and whose refusal then
// takes a moment, so that a caller can join the refresh that meets it.
type racedLeases struct {
	token.Store
	refused chan struct{} // closed when the refusal is about to return
	once    sync.Once
}

func (s *racedLeases) AcquireTokenLease(ctx context.Context, tid tenant.ID, owner string, now, until time.Time) (bool, error) {
	first := false
	s.once.Do(func() { first = true })
	if first {
		if ok, err := s.Store.AcquireTokenLease(ctx, tid, "other", now, until); err != nil || !ok {
			return ok, err
		}
	}
	ok, err := s.Store.AcquireTokenLease(ctx, tid, owner, now, until)
	if first {
		close(s.refused)
		time.Sleep(100 * time.Millisecond)
	}
	return ok, err
}

// TestKeeper_CallerJoiningASkippedRefresh: a caller that joins this
// process's scheduled refresh, which leaves the tenant to another process
// that took its lease meanwhile, gets the token once that process is done,
// not the scheduled run's internal "skipped" (a 503 to the caller).
func TestKeeper_CallerJoiningASkippedRefresh(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ts := store.NewTokenStore(e.db)
	raced := &racedLeases{Store: ts, refused: make(chan struct{})}
	k := token.NewKeeper(raced, e.wx, getter{s: store.NewTenantStore(e.db)},
		token.Options{Owner: "p1", Now: e.clock.Now, Sleep: advance(e.clock), Poll: 5 * time.Millisecond})
	go k.RefreshDue(ctx)
	select {
	case <-raced.refused: // the scheduled flight meets the other's lease
	case <-time.After(10 * time.Second):
		t.Fatal("the scheduled refresh never asked for the lease")
	}
	got := make(chan error, 1)
	go func() {
		_, err := k.Token(ctx, e.tid) // joins it
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	// The other process gives its lease up without a token: this one's
	// caller fetches.
	if err := ts.ReleaseTokenLease(ctx, e.tid, "other"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Errorf("Token beside another process's lease: %v, want a token", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Token did not return")
	}
}
