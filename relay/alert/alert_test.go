package alert_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/wxrelay/wxrelay/relay/alert"
	"github.com/wxrelay/wxrelay/relay/component"
	"github.com/wxrelay/wxrelay/relay/health"
	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// received is one POST the operator's webhook saw, verified.
type received struct {
	id   string
	body struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			TenantID   string `json:"tenant_id"`
			TenantName string `json:"tenant_name"`
			AppID      string `json:"appid"`
			Reason     string `json:"reason"`
			Severity   string `json:"severity"`
			Message    string `json:"message"`
			Since      string `json:"since"`
			ClearedAt  string `json:"cleared_at"`
			State      string `json:"state"`
			Deleted    bool   `json:"tenant_deleted"`

			ComponentID      string `json:"component_id"`
			ComponentAppID   string `json:"component_appid"`
			ComponentDeleted bool   `json:"component_deleted"`
		} `json:"data"`
	}
}

// receiver is the operator's webhook: it verifies every POST with the
// Standard Webhooks library and answers status (200 unless set).
type receiver struct {
	t      *testing.T
	mu     sync.Mutex
	status int
	got    []received // every attempt, failed ones too
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		r.t.Error(err)
	}
	b, _ := io.ReadAll(req.Body)
	if err := wh.Verify(b, req.Header); err != nil {
		r.t.Errorf("alert signature does not verify: %v", err)
	}
	var g received
	g.id = req.Header.Get("webhook-id")
	if err := json.Unmarshal(b, &g.body); err != nil {
		r.t.Errorf("alert body %s: %v", b, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, g)
	w.WriteHeader(max(r.status, 200))
}

func (r *receiver) answer(status int) { r.mu.Lock(); r.status = status; r.mu.Unlock() }

func (r *receiver) attempts() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// tenantService is a tenant.Service on db, private webhooks allowed.
func tenantService(t *testing.T, db *store.DB) *tenant.Service {
	t.Helper()
	ts := store.NewTenantStore(db)
	auth, err := tenant.NewAuthenticator(make([]byte, 32), ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tenant.NewService(ts, auth, true, nil)
}

// TestNotifier: a tenant's reason coming into force and ending is posted
// once each, signed, retried with the same id after a failure, and never
// again by a restarted notifier; a deleted tenant's reasons are cleared.
func TestNotifier(t *testing.T) {
	db := storetest.New(t)
	ctx := context.Background()
	svc := tenantService(t, db)
	shop := func(appid, name string) *tenant.Tenant {
		tn, _, err := svc.Create(ctx, &tenant.Tenant{AppID: appid, DisplayName: name,
			Secrets:    tenant.Secrets{AppSecret: "5ec2e75ec2e75ec2e75ec2e75ec2e75e", Token: "PushToken1"},
			WebhookURL: "https://example.com/h", PushSilenceAlert: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return tn
	}
	a := shop("wx0123456789abcdef", "Shop A")
	b := shop("wx00000000000000ff", "Shop B")

	// Both have had no push for over their minute: NO_PUSHES, DEGRADED.
	healthNow := time.Now().Add(2 * time.Minute)
	keeper := token.NewKeeper(store.NewTokenStore(db), nil, tenant.NewCache(svc, 0, nil), token.Options{})
	checker := health.NewChecker(store.NewHealthStore(db), keeper, func() time.Time { return healthNow })

	rcv := &receiver{t: t}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	clock := time.Now()
	notifier := func() *alert.Notifier {
		n, err := alert.New(alert.Options{URL: srv.URL + "/alerts", Secret: secret,
			Store: store.NewHealthStore(db), Health: checker, Tenants: svc, Now: func() time.Time { return clock }})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := notifier()

	// Before any health is computed there is nothing to alert.
	if err := n.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rcv.attempts(); len(got) != 0 {
		t.Fatalf("%d alerts before health was computed, want 0", len(got))
	}

	if err := checker.CheckAll(ctx, svc); err != nil {
		t.Fatal(err)
	}
	// The webhook is down: one attempt, then the run stops.
	rcv.answer(http.StatusServiceUnavailable)
	if err := n.Run(ctx); err != nil {
		t.Fatal(err)
	}
	first := rcv.attempts()
	if len(first) != 1 {
		t.Fatalf("%d attempts against a failing webhook, want 1 (the run stops at the first failure)", len(first))
	}
	// Not due again before its backoff.
	clock = clock.Add(10 * time.Second)
	if err := n.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rcv.attempts(); len(got) != 1 {
		t.Fatalf("%d attempts 10 s after a failure, want still 1 (backoff %s)", len(got), alert.Backoff(1))
	}

	rcv.answer(http.StatusOK)
	clock = clock.Add(alert.Backoff(1))
	if err := n.Run(ctx); err != nil {
		t.Fatal(err)
	}
	got := rcv.attempts()
	if len(got) != 3 {
		t.Fatalf("%d attempts after the webhook recovered, want 3 (the retry, then the second tenant's)", len(got))
	}
	if got[1].id != first[0].id || got[1].body.ID != got[1].id {
		t.Errorf("retry sent as %q (body id %q), want the first attempt's id %q", got[1].id, got[1].body.ID, first[0].id)
	}
	byTenant := map[string]received{}
	for _, g := range got[1:] {
		if g.body.Type != alert.TypeRaised || g.body.Data.Reason != string(health.NoPushes) || g.body.Data.State != "DEGRADED" || g.body.Data.Since == "" {
			t.Errorf("alert %+v, want a raised NO_PUSHES with state DEGRADED and a since", g.body)
		}
		byTenant[g.body.Data.TenantID] = g
	}
	if g := byTenant[string(a.ID)]; g.body.Data.AppID != a.AppID || g.body.Data.TenantName != "Shop A" || g.body.Data.Message == "" {
		t.Errorf("a's alert %+v, want its appid, name and a message", g.body.Data)
	}

	// Later runs, and a notifier started afresh (a restart, another
	// replica), send nothing: the transitions are already alerted.
	clock = clock.Add(time.Minute)
	if err := n.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := notifier().Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rcv.attempts(); len(got) != 3 {
		t.Fatalf("%d attempts after two quiet runs, want still 3", len(got))
	}

	// a's alert is switched off (OK again) and b is deleted: one cleared
	// alert each.
	off := time.Duration(0)
	if _, err := svc.Update(ctx, a.ID, tenant.Patch{PushSilenceAlert: &off}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Delete(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if err := checker.CheckAll(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if err := n.Run(ctx); err != nil {
		t.Fatal(err)
	}
	got = rcv.attempts()[3:]
	if len(got) != 2 {
		t.Fatalf("%d alerts after a recovered and b was deleted, want 2", len(got))
	}
	for _, g := range got {
		if g.body.Type != alert.TypeCleared || g.body.Data.ClearedAt == "" || g.body.Data.Reason != string(health.NoPushes) {
			t.Errorf("alert %+v, want NO_PUSHES cleared with cleared_at", g.body)
		}
		switch g.body.Data.TenantID {
		case string(a.ID):
			if g.body.Data.Deleted || g.body.Data.State != "OK" {
				t.Errorf("a's cleared alert %+v, want state OK, not deleted", g.body.Data)
			}
		case string(b.ID):
			if !g.body.Data.Deleted {
				t.Errorf("b's cleared alert %+v, want tenant_deleted", g.body.Data)
			}
		default:
			t.Errorf("alert for unknown tenant %q", g.body.Data.TenantID)
		}
	}
}

// TestNotifier_Components: a component's reasons are alerted as tenants'
// are, as component.health.raised and .cleared, beside the tenants' and
// never mistaken for a deleted tenant's; a deleted component's reasons
// are cleared saying so.
func TestNotifier_Components(t *testing.T) {
	db := storetest.New(t)
	ctx := context.Background()
	svc := tenantService(t, db)
	cs := store.NewComponentStore(db)
	comps := tenant.NewComponentService(cs, nil)
	register := func(appid string) *tenant.Component {
		c, err := comps.Create(ctx, &tenant.Component{AppID: appid, DisplayName: "Agency " + appid,
			Secrets: tenant.ComponentSecrets{Secret: "5ec2e75ec2e75ec2e75ec2e75ec2e75e", Token: "AAAAA", EncodingAESKey: strings.Repeat("A", 43)}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := register("wx134c8103faa5a59e")
	clock := time.Now()
	keeper := component.NewTokenKeeper(store.NewComponentTokenStore(db), component.NewTokenSource(cs, nil, nil), token.Options{})
	healthNow := clock // the checker's: it moves by hours, which signatures would not allow
	checker := health.NewComponentChecker(keeper, func() time.Time { return healthNow })
	tenantHealth := health.NewChecker(store.NewHealthStore(db), token.NewKeeper(store.NewTokenStore(db), nil, tenant.NewCache(svc, 0, nil), token.Options{}), nil)
	rcv := &receiver{t: t}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	n, err := alert.New(alert.Options{URL: srv.URL, Secret: secret, Store: store.NewHealthStore(db), Health: tenantHealth, Tenants: svc,
		Components: comps, ComponentHealth: checker, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	step := func(want int) []received {
		t.Helper()
		if err := checker.CheckAll(ctx, comps); err != nil {
			t.Fatal(err)
		}
		before := len(rcv.attempts())
		if err := n.Run(ctx); err != nil {
			t.Fatal(err)
		}
		got := rcv.attempts()[before:]
		if len(got) != want {
			t.Fatalf("%d alerts, want %d: %+v", len(got), want, got)
		}
		return got
	}

	// Just registered, no ticket yet: DEGRADED, alerted once.
	got := step(1)
	if d := got[0].body.Data; got[0].body.Type != alert.TypeComponentRaised || d.ComponentID != string(a.ID) || d.ComponentAppID != a.AppID ||
		d.Reason != string(health.ComponentTicketStale) || d.State != "DEGRADED" || d.Message == "" || d.TenantID != "" {
		t.Errorf("alert %+v, want COMPONENT_TICKET_STALE raised for %s", got[0].body, a.ID)
	}
	step(0) // nothing new

	// The first ticket comes: cleared.
	if err := cs.SaveTicket(ctx, a.ID, tenant.Ticket{Value: "ticket@@@1", ReceiveTime: clock}); err != nil {
		t.Fatal(err)
	}
	got = step(1)
	if d := got[0].body.Data; got[0].body.Type != alert.TypeComponentCleared || d.ClearedAt == "" || d.State != "OK" || d.ComponentDeleted {
		t.Errorf("alert %+v, want COMPONENT_TICKET_STALE cleared, state OK", got[0].body)
	}

	// Another component, never a ticket for an hour, then deleted.
	b := register("wx134c8103faa5a59f")
	healthNow = healthNow.Add(time.Hour)
	got = step(2)
	for _, g := range got {
		if g.body.Type != alert.TypeComponentRaised {
			t.Errorf("alert %+v, want raised", g.body)
		}
	}
	if err := comps.Delete(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	got = step(1)
	if d := got[0].body.Data; got[0].body.Type != alert.TypeComponentCleared || d.ComponentID != string(b.ID) || !d.ComponentDeleted || d.Deleted {
		t.Errorf("alert %+v, want %s's reason cleared as component_deleted", got[0].body, b.ID)
	}
}

// TestNew_RefusesBadSettings: each error names what is wrong and never
// quotes the secret.
func TestNew_RefusesBadSettings(t *testing.T) {
	db := storetest.New(t)
	hs := store.NewHealthStore(db)
	checker := health.NewChecker(hs, nil, nil)
	tenants := tenant.NewService(store.NewTenantStore(db), nil, true, nil)
	for _, tt := range []struct {
		name, url, secret, want string
	}{
		{"no scheme", "ops.example.com/alerts", secret, "absolute http or https URL"},
		{"ftp", "ftp://ops.example.com/alerts", secret, "absolute http or https URL"},
		{"no secret", "https://ops.example.com/alerts", "", "needs a signing secret"},
		{"not whsec", "https://ops.example.com/alerts", "hunter2hunter2", "signing secret"},
		{"whsec not base64", "https://ops.example.com/alerts", "whsec_hunter2!!", "signing secret"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := alert.New(alert.Options{URL: tt.url, Secret: tt.secret, Store: hs, Health: checker, Tenants: tenants})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error mentioning %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q quotes the secret", err)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	for attempts, want := range map[int]time.Duration{1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute, 8: time.Hour, 50: time.Hour} {
		if got := alert.Backoff(attempts); got != want {
			t.Errorf("Backoff(%d) = %s, want %s", attempts, got, want)
		}
	}
}

// TestNotifier_DoesNotFollowRedirects: a webhook answering 307 is a failed
// attempt, and the signed alert never reaches the redirect's target.
func TestNotifier_DoesNotFollowRedirects(t *testing.T) {
	db := storetest.New(t)
	ctx := context.Background()
	svc := tenantService(t, db)
	if _, _, err := svc.Create(ctx, &tenant.Tenant{AppID: "wx0123456789abcdef",
		Secrets:    tenant.Secrets{AppSecret: "5ec2e75ec2e75ec2e75ec2e75ec2e75e", Token: "PushToken1"},
		WebhookURL: "https://example.com/h", PushSilenceAlert: time.Minute}); err != nil {
		t.Fatal(err)
	}
	keeper := token.NewKeeper(store.NewTokenStore(db), nil, tenant.NewCache(svc, 0, nil), token.Options{})
	checker := health.NewChecker(store.NewHealthStore(db), keeper, func() time.Time { return time.Now().Add(2 * time.Minute) })
	if err := checker.CheckAll(ctx, svc); err != nil {
		t.Fatal(err)
	}
	target := &receiver{t: t}
	elsewhere := httptest.NewServer(target)
	defer elsewhere.Close()
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/stolen", http.StatusTemporaryRedirect)
	}))
	defer redirecting.Close()
	reg := prometheus.NewRegistry()
	n, err := alert.New(alert.Options{URL: redirecting.URL + "/alerts", Secret: secret,
		Store: store.NewHealthStore(db), Health: checker, Tenants: svc, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := target.attempts(); len(got) != 0 {
		t.Fatalf("the redirect's target received %d alerts, want 0", len(got))
	}
	want := `
# HELP wxrelay_alerts_sent_total Attempts to deliver health alerts to the operator's webhook, by result (delivered, retried, abandoned).
# TYPE wxrelay_alerts_sent_total counter
wxrelay_alerts_sent_total{result="retried"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "wxrelay_alerts_sent_total"); err != nil {
		t.Errorf("a redirect must count as a failed attempt: %v", err)
	}
}
