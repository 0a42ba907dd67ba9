package message_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/relay/message"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/relay/wechat/wxsim"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

// windowEnv is a message.Service with the reply-window check on a real,
// migrated SQLite database, sending to wxsim, with a fake clock. Triggers
// are stored as the ingest path stores them: through the event store.
type windowEnv struct {
	t       *testing.T
	clock   *clockwork.FakeClock
	db      *store.DB
	tenants *store.TenantStore
	events  *store.EventStore
	sim     *wxsim.Server
	svc     *message.Service
	n       atomic.Int64
}

// storeGetter reads tenants straight from the store: no cache, so a changed
// setting applies at once.
type storeGetter struct{ s *store.TenantStore }

func (g storeGetter) Get(ctx context.Context, id tenant.ID) (*tenant.Tenant, error) {
	return g.s.FindByID(ctx, id)
}

// simTokens hands out tokens wxsim issued for each tenant's app.
type simTokens struct {
	wx      *wechat.Client
	tenants *store.TenantStore
}

func (s simTokens) Token(ctx context.Context, tid tenant.ID) (string, error) {
	t, err := s.tenants.FindByID(ctx, tid)
	if err != nil {
		return "", err
	}
	tok, err := s.wx.StableToken(ctx, t.AppID, t.Secrets.AppSecret, false)
	return tok.Token, err
}

func (s simTokens) Refresh(ctx context.Context, tid tenant.ID, _ string) (string, error) {
	return s.Token(ctx, tid)
}

func newWindowEnv(t *testing.T) *windowEnv {
	t.Helper()
	e := &windowEnv{t: t, clock: clockwork.NewFakeClockAt(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))}
	e.db = storetest.New(t)
	e.tenants = store.NewTenantStore(e.db)
	e.events = store.NewEventStore(e.db)
	e.sim = wxsim.New(wxsim.Options{Now: e.clock.Now})
	ts := httptest.NewServer(e.sim)
	t.Cleanup(ts.Close)
	wx := &wechat.Client{BaseURL: ts.URL}
	e.svc = message.NewService(simTokens{wx: wx, tenants: e.tenants}, wx).WithReplyWindows(message.WindowOptions{
		Store: store.NewWindowStore(e.db), Tenants: storeGetter{e.tenants}, Clock: e.clock,
	})
	return e
}

// newTenant creates a tenant whose app wxsim knows.
func (e *windowEnv) newTenant(id string) tenant.ID {
	e.t.Helper()
	appid := fmt.Sprintf("wx%016x", uint64(0xa000000000000000)+uint64(e.n.Add(1)))
	tn := &tenant.Tenant{
		ID: tenant.ID(id), DisplayName: id, AppID: appid,
		EncryptMode: tenant.EncryptPlaintext, DataFormat: tenant.FormatJSON, ReplyMode: tenant.ReplySuccess,
		WebhookURL: "https://example.com/hook", State: tenant.StateActive, TokenEndpoint: tenant.TokenStable,
		Secrets:        tenant.Secrets{AppSecret: "secret-" + id, Token: "token" + id},
		WebhookSecrets: tenant.WebhookSecrets{Current: "whsec_" + id},
		APIKeyHash:     []byte(id),
		Version:        1,
		CreateTime:     e.clock.Now(), UpdateTime: e.clock.Now(),
	}
	if err := e.tenants.Create(context.Background(), tn); err != nil {
		e.t.Fatal(err)
	}
	e.sim.AddApp(appid, tn.Secrets.AppSecret)
	return tn.ID
}

// push stores a push of openid of type typ, created and received now.
func (e *windowEnv) push(tid tenant.ID, openid, typ string) {
	e.t.Helper()
	now := e.clock.Now()
	key := fmt.Sprint(e.n.Add(1))
	ev := &relay.Event{
		ID: relay.NewEventID(now), TenantID: tid, DedupKey: key, Type: typ, OpenID: openid,
		CreateTime: now.Truncate(time.Second), ReceiveTime: now,
		Raw: []byte(`{}`), Payload: []byte(`{}`),
	}
	if _, err := e.events.AppendEvents(context.Background(), []*relay.Event{ev}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *windowEnv) send(tid tenant.ID, openid string) error {
	return e.svc.Send(context.Background(), tid, message.Message{ToUser: openid, MsgType: message.TypeText, Text: &message.Text{Content: "hi"}})
}

// sends counts the send calls wxsim received.
func (e *windowEnv) sends() int {
	n := 0
	for _, c := range e.sim.Calls() {
		if c.Path == "/cgi-bin/message/custom/send" {
			n++
		}
	}
	return n
}

// mustSend sends and expects WeChat to have been called and to accept.
func (e *windowEnv) mustSend(tid tenant.ID, openid, what string) {
	e.t.Helper()
	before := e.sends()
	if err := e.send(tid, openid); err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
	if e.sends() != before+1 {
		e.t.Fatalf("%s: WeChat not called", what)
	}
}

// mustRefuse expects the send refused with errcode, WeChat not called.
func (e *windowEnv) mustRefuse(tid tenant.ID, openid string, errcode int, what string) *message.WindowClosedError {
	e.t.Helper()
	before := e.sends()
	err := e.send(tid, openid)
	we, ok := errors.AsType[*message.WindowClosedError](err)
	if !ok || we.Errcode != errcode || !errors.Is(err, message.ErrReplyWindowClosed) {
		e.t.Fatalf("%s: err = %v, want a WindowClosedError with %d", what, err, errcode)
	}
	if e.sends() != before {
		e.t.Fatalf("%s: refused, yet WeChat was called", what)
	}
	return we
}

// age makes the tenant's pushes known for long enough that a missing
// trigger is known missing: a push of another user, 49 h ago.
func (e *windowEnv) age(tid tenant.ID) {
	e.push(tid, "o_someone_else", "event.other")
	e.clock.Advance(49 * time.Hour)
}

func TestWindow_MessageOpensFiveFor48h(t *testing.T) {
	e := newWindowEnv(t)
	tid := e.newTenant("tn_a")
	e.age(tid)
	e.push(tid, "o1", "message.text")
	msgAt := e.clock.Now()
	for i := range message.MessageQuota {
		e.clock.Advance(time.Hour)
		e.mustSend(tid, "o1", fmt.Sprintf("send %d", i+1))
	}
	we := e.mustRefuse(tid, "o1", wechat.CodeOutOfResponses, "send 6")
	if want := "5 messages already sent since the user's last message at " + msgAt.Format(time.RFC3339); !strings.Contains(we.Error(), want) {
		t.Errorf("reason %q does not say %q", we.Error(), want)
	}

	// A new message resets the quota.
	e.push(tid, "o1", "message.image")
	e.mustSend(tid, "o1", "after a new message")

	// 48 h after it, the window is closed whatever the count.
	last := e.clock.Now()
	e.clock.Advance(48*time.Hour + time.Minute)
	we = e.mustRefuse(tid, "o1", wechat.CodeOutOfWindow, "after 48 h")
	for _, want := range []string{"o1", "last message to this mini program was at " + last.Format(time.RFC3339), "more than 48 h ago", "45015"} {
		if !strings.Contains(we.Error(), want) {
			t.Errorf("reason %q does not say %q", we.Error(), want)
		}
	}

	// A week on, the hourly job prunes the window; the refusal stands.
	e.clock.Advance(7 * 24 * time.Hour)
	if _, err := store.NewWindowStore(e.db).PruneReplyWindows(context.Background(), e.clock.Now().Add(-message.WindowRetention), 1000); err != nil {
		t.Fatal(err)
	}
	we = e.mustRefuse(tid, "o1", wechat.CodeOutOfWindow, "a week later")
	if !strings.Contains(we.Error(), "no message since") {
		t.Errorf("reason %q: want the window pruned", we.Error())
	}
}

func TestWindow_SessionEntryOpensTwoForAMinute(t *testing.T) {
	e := newWindowEnv(t)
	tid := e.newTenant("tn_a")
	e.age(tid)
	e.mustRefuse(tid, "o1", wechat.CodeOutOfWindow, "never seen, tenant known 49 h")

	e.push(tid, "o1", message.EventEnterSession)
	e.mustSend(tid, "o1", "entry send 1")
	e.clock.Advance(20 * time.Second)
	e.mustSend(tid, "o1", "entry send 2")
	e.mustRefuse(tid, "o1", wechat.CodeOutOfResponses, "entry send 3")

	// A new entry resets; after its minute it is closed.
	e.push(tid, "o1", message.EventEnterSession)
	e.mustSend(tid, "o1", "after a new entry")
	e.clock.Advance(time.Minute + message.WindowGrace)
	e.mustRefuse(tid, "o1", wechat.CodeOutOfWindow, "a minute after the entry")

	// Other events open nothing.
	e.push(tid, "o1", "event.subscribe_msg_popup_event")
	e.mustRefuse(tid, "o1", wechat.CodeOutOfWindow, "after another event")
}

// TestWindow_EitherWindowAllows: a message window with its quota used up
// does not stop the sends of a session entry, and the other way round.
func TestWindow_EitherWindowAllows(t *testing.T) {
	e := newWindowEnv(t)
	tid := e.newTenant("tn_a")
	e.age(tid)
	e.push(tid, "o1", "message.text")
	for range message.MessageQuota {
		e.mustSend(tid, "o1", "message window")
	}
	e.mustRefuse(tid, "o1", wechat.CodeOutOfResponses, "message quota used")
	e.push(tid, "o1", message.EventEnterSession)
	e.mustSend(tid, "o1", "entry window after the message quota")
	e.mustSend(tid, "o1", "entry window after the message quota")
	we := e.mustRefuse(tid, "o1", wechat.CodeOutOfResponses, "both quotas used")
	if !strings.Contains(we.Error(), "since the user entered the session") || !strings.Contains(we.Error(), "since the user's last message") {
		t.Errorf("reason %q does not name both windows", we.Error())
	}
}

func TestWindow_UnknownIsAllowed(t *testing.T) {
	e := newWindowEnv(t)
	tid := e.newTenant("tn_a")
	// No push ever stored: the relay knows nothing.
	e.mustSend(tid, "o1", "tenant without pushes")
	e.push(tid, "o2", "message.text")
	e.clock.Advance(47 * time.Hour)
	// Pushes known for 47 h only: o1 may have written 47.5 h ago.
	e.mustSend(tid, "o1", "user unknown to a young tenant")
	e.clock.Advance(2 * time.Hour)
	e.mustRefuse(tid, "o1", wechat.CodeOutOfWindow, "the same once the tenant is known for 49 h")
}

func TestWindow_WeChatFailureGivesTheSlotBack(t *testing.T) {
	e := newWindowEnv(t)
	tid := e.newTenant("tn_a")
	e.age(tid)
	e.push(tid, "o1", "message.text")
	for range message.MessageQuota - 1 {
		e.mustSend(tid, "o1", "send")
	}
	// WeChat refuses the fifth (a system error, then an injected 45047):
	// neither used the quota.
	e.sim.FailNext(1, "/cgi-bin/message/custom/send")
	if err := e.send(tid, "o1"); err == nil {
		t.Fatal("send with a system error succeeded")
	}
	if err := e.sim.RejectSends("o1", 45047); err != nil {
		t.Fatal(err)
	}
	if _, ok := errors.AsType[*wechat.APIError](e.send(tid, "o1")); !ok {
		t.Fatal("want WeChat's own refusal")
	}
	e.sim.ClearFaults()
	e.mustSend(tid, "o1", "the fifth, after two failures")
	e.mustRefuse(tid, "o1", wechat.CodeOutOfResponses, "the sixth")
}

func TestWindow_ConcurrentSendsKeepTheQuota(t *testing.T) {
	e := newWindowEnv(t)
	tid := e.newTenant("tn_a")
	e.age(tid)
	e.push(tid, "o1", "message.text")
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for range 3 * message.MessageQuota {
		wg.Go(func() {
			err := e.send(tid, "o1")
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, message.ErrReplyWindowClosed):
				refused.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != message.MessageQuota || e.sends() != message.MessageQuota {
		t.Fatalf("%d sent, %d WeChat calls, %d refused; want %d sent", ok.Load(), e.sends(), refused.Load(), message.MessageQuota)
	}
}

func TestWindow_TenantOptOut(t *testing.T) {
	e := newWindowEnv(t)
	tid := e.newTenant("tn_a")
	e.age(tid)
	e.mustRefuse(tid, "o1", wechat.CodeOutOfWindow, "checked")
	tn, err := e.tenants.FindByID(context.Background(), tid)
	if err != nil {
		t.Fatal(err)
	}
	tn.IgnoreReplyWindow = true
	if err := e.tenants.Update(context.Background(), tn); err != nil {
		t.Fatal(err)
	}
	if err := e.send(tid, "o1"); err != nil {
		t.Fatalf("opted out, yet: %v", err)
	}
	if e.sends() != 1 {
		t.Fatal("opted out, WeChat not called")
	}
}

func TestWindow_TenantsApart(t *testing.T) {
	e := newWindowEnv(t)
	a, b := e.newTenant("tn_a"), e.newTenant("tn_b")
	e.age(a)
	e.push(b, "o_other", "event.other")
	e.clock.Advance(49 * time.Hour)
	e.push(a, "o1", "message.text")
	e.mustSend(a, "o1", "tenant a, whose user wrote")
	e.mustRefuse(b, "o1", wechat.CodeOutOfWindow, "tenant b: the same openid wrote to a")
}

// TestWindow_Refusal checks the decision alone at its boundaries.
func TestWindow_Refusal(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	old := now.Add(-72 * time.Hour)
	tests := []struct {
		name string
		w    message.Window
		want int // 0: allowed
	}{
		{"nothing known", message.Window{}, 0},
		{"young tenant", message.Window{Since: now.Add(-47 * time.Hour)}, 0},
		{"old tenant, no trigger", message.Window{Since: old}, 45015},
		{"message just inside", message.Window{Since: old, MessageAt: now.Add(-48*time.Hour - message.WindowGrace + time.Millisecond)}, 0},
		{"message just outside", message.Window{Since: old, MessageAt: now.Add(-48*time.Hour - message.WindowGrace)}, 45015},
		{"message quota left", message.Window{Since: old, MessageAt: now.Add(-time.Hour), MessageSends: 4}, 0},
		{"message quota used", message.Window{Since: old, MessageAt: now.Add(-time.Hour), MessageSends: 5}, 45047},
		{"entry known 30 s: no message in 48 h unknown", message.Window{Since: now.Add(-30 * time.Second), EnterAt: now.Add(-30 * time.Second), EnterSends: 2}, 0},
		{"entry quota used, message unknowable", message.Window{Since: now.Add(-time.Hour), EnterAt: now.Add(-30 * time.Second), EnterSends: 2}, 0},
		{"entry quota used, no message", message.Window{Since: old, EnterAt: now.Add(-30 * time.Second), EnterSends: 2}, 45047},
		{"entry quota left", message.Window{Since: old, EnterAt: now.Add(-30 * time.Second), EnterSends: 1}, 0},
		{"entry expired, message quota used", message.Window{Since: old, EnterAt: now.Add(-2 * time.Minute), MessageAt: now.Add(-time.Hour), MessageSends: 5}, 45047},
		{"message quota used, tenant known 10 s: an entry may be unknown", message.Window{Since: now.Add(-10 * time.Second), MessageAt: now.Add(-10 * time.Second), MessageSends: 5}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := 0
			if r := tt.w.Refusal("o1", now); r != nil {
				got = r.Errcode
			}
			if got != tt.want {
				t.Errorf("Refusal = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestTriggerTime(t *testing.T) {
	create := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	if got := message.TriggerTime(create, create.Add(time.Second)); !got.Equal(create.Add(time.Second)) {
		t.Errorf("receive later: %v", got)
	}
	if got := message.TriggerTime(create, create.Add(-time.Second)); !got.Equal(create) {
		t.Errorf("create later: %v", got)
	}
	for typ, want := range map[string]message.Trigger{
		"message.text": message.TriggerMessage, "message.miniprogrampage": message.TriggerMessage,
		"event.user_enter_tempsession": message.TriggerEnter, "event.subscribe_msg_popup_event": message.TriggerNone, "": message.TriggerNone,
	} {
		if got := message.TriggerOf(typ); got != want {
			t.Errorf("TriggerOf(%q) = %v, want %v", typ, got, want)
		}
	}
}
