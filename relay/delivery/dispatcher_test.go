package delivery_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/relay/delivery"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

// receiver is a tenant's webhook: it verifies every request with the
// Standard Webhooks library, records it and answers as told.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	verify *standardwebhooks.Webhook

	mu       sync.Mutex
	received []delivered
	answer   func(n int) int // status for the n-th request (0-based)
	block    chan struct{}   // if set, requests wait on it
	waiting  atomic.Int32    // requests waiting on block
}

type delivered struct {
	id   string
	body string
}

func newReceiver(t *testing.T, secret string) *receiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, verify: wh, answer: func(int) int { return 204 }}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.unblock()
		r.srv.Close()
	})
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if err := r.verify.Verify(body, req.Header); err != nil {
		r.t.Errorf("signature does not verify: %v", err)
		w.WriteHeader(400)
		return
	}
	r.mu.Lock()
	block := r.block
	r.mu.Unlock()
	if block != nil {
		r.waiting.Add(1)
		<-block
	}
	r.mu.Lock()
	n := len(r.received)
	r.received = append(r.received, delivered{id: req.Header.Get("webhook-id"), body: string(body)})
	status := r.answer(n)
	r.mu.Unlock()
	w.WriteHeader(status)
}

// unblock lets the requests waiting on r.block through, and the later
// ones straight in.
func (r *receiver) unblock() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.block != nil {
		close(r.block)
		r.block = nil
	}
}

func (r *receiver) got() []delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivered(nil), r.received...)
}

// harness is a dispatcher over a real, migrated SQLite database.
type harness struct {
	t       *testing.T
	db      *store.DB
	clock   *clockwork.FakeClock
	tenants *tenant.Service
	events  *store.EventStore
	ds      *store.DeliveryStore
	leases  *leaseWatch // the dispatcher's view of ds
	disp    *delivery.Dispatcher
	stop    func()
}

func newHarness(t *testing.T, opts delivery.Options) *harness {
	t.Helper()
	h := newStoppedHarness(t, opts)
	h.run()
	return h
}

// newStoppedHarness is newHarness without starting the dispatcher: run
// starts it.
func newStoppedHarness(t *testing.T, opts delivery.Options) *harness {
	t.Helper()
	db := storetest.New(t)
	key := make([]byte, 32)
	rand.Read(key)
	ts := store.NewTenantStore(db)
	auth, _ := tenant.NewAuthenticator(key, ts, nil)
	// The clock starts at the real time: receivers check webhook-timestamp
	// against their own clock, and tests move it by minutes at most.
	clock := clockwork.NewFakeClockAt(time.Now().UTC())
	h := &harness{t: t, db: db, clock: clock, events: store.NewEventStore(db), ds: store.NewDeliveryStore(db)}
	h.tenants = tenant.NewService(ts, auth, true, h.clock.Now)
	h.leases = &leaseWatch{Store: h.ds, held: map[relay.EventID]bool{}}
	opts.Store = h.leases
	opts.Tenants = tenant.NewCache(h.tenants, 0, nil)
	if opts.Sender == nil {
		opts.Sender = delivery.NewSender(delivery.SenderOptions{AllowPrivate: true, Timeout: 5 * time.Second})
	}
	opts.Now = h.clock.Now
	opts.PollInterval = 10 * time.Millisecond
	d, err := delivery.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.disp = d
	h.stop = func() {}
	return h
}

// run starts the harness's dispatcher, stopped by h.stop and at cleanup.
func (h *harness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.disp.Run(ctx); close(done) }()
	h.stop = func() { cancel(); <-done }
	h.t.Cleanup(h.stop)
}

// leaseWatch is the store as the harness's dispatcher sees it: the real
// one, keeping track of the events the dispatcher holds (claimed, and not
// yet recorded or released) and of what it released.
type leaseWatch struct {
	delivery.Store
	mu       sync.Mutex
	held     map[relay.EventID]bool
	released []relay.EventID
	lease    time.Duration // of the last claim
}

func (w *leaseWatch) ClaimDue(ctx context.Context, c delivery.Claim) ([]*delivery.Job, error) {
	jobs, err := w.Store.ClaimDue(ctx, c)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lease = c.LeaseUntil.Sub(c.Now)
	for _, j := range jobs {
		w.held[j.EventID] = true
	}
	return jobs, err
}

func (w *leaseWatch) Record(ctx context.Context, outcomes []delivery.Outcome) error {
	err := w.Store.Record(ctx, outcomes)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range outcomes {
		delete(w.held, o.Job.EventID)
	}
	return err
}

func (w *leaseWatch) Release(ctx context.Context, r delivery.Release) error {
	err := w.Store.Release(ctx, r)
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.held, r.Job.EventID)
	w.released = append(w.released, r.Job.EventID)
	return err
}

// counts returns how many events are held and how many were released.
func (w *leaseWatch) counts() (held, released int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.held), len(w.released)
}

var appSeq atomic.Int64

// tenant onboards a tenant delivering to url and returns it with its secret.
func (h *harness) tenant(url string, ordered bool) (*tenant.Tenant, string) {
	h.t.Helper()
	t, creds, err := h.tenants.Create(context.Background(), &tenant.Tenant{
		AppID: fmt.Sprintf("wx%016x", appSeq.Add(1)), WebhookURL: url, OrderedDelivery: ordered,
		Secrets: tenant.Secrets{AppSecret: "5ec2e75ec2e75ec2e75ec2e75ec2e75e", Token: "tok123"},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return t, creds.WebhookSecret
}

// blockedTenant onboards a tenant whose webhook holds every request until
// unblocked, and stores n events of it, one an openid.
func (h *harness) blockedTenant(n int) (tenant.ID, *receiver) {
	h.t.Helper()
	tn, secret := h.tenant("http://placeholder.invalid/", false)
	r := newReceiver(h.t, secret)
	r.block = make(chan struct{})
	h.tenants.Update(context.Background(), tn.ID, tenant.Patch{WebhookURL: &r.srv.URL})
	for i := range n {
		h.event(tn.ID, fmt.Sprint("o", i), h.clock.Now())
	}
	return tn.ID, r
}

// event stores an event for tid from openid created at createTime.
func (h *harness) event(tid tenant.ID, openid string, createTime time.Time) relay.EventID {
	h.t.Helper()
	now := h.clock.Now()
	id := relay.NewEventID(now)
	_, err := h.events.AppendEvents(context.Background(), []*relay.Event{{
		ID: id, TenantID: tid, DedupKey: "msg:" + string(id), Type: "message.text", OpenID: openid,
		CreateTime: createTime, ReceiveTime: now, Raw: []byte("raw"),
		Payload: []byte(fmt.Sprintf(`{"id":%q,"openid":%q}`, id, openid)),
	}})
	if err != nil {
		h.t.Fatal(err)
	}
	h.disp.Notify()
	return id
}

func (h *harness) list(tid tenant.ID) []*relay.Event {
	h.t.Helper()
	evs, _, err := relay.NewEvents(h.events).List(context.Background(), tid, relay.MaxPageSize, "", relay.EventFilter{})
	if err != nil {
		h.t.Fatal(err)
	}
	return evs
}

func (h *harness) get(tid tenant.ID, id relay.EventID) (*relay.Event, []relay.Attempt) {
	h.t.Helper()
	e, a, err := relay.NewEvents(h.events).GetWithAttempts(context.Background(), tid, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return e, a
}

// eventually polls cond for up to 10 s: the dispatcher works in the
// background. No test asserts how fast; only that it happens.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDeliversSignedPayload(t *testing.T) {
	h := newHarness(t, delivery.Options{})
	var rcv *receiver
	tn, secret := h.tenant("http://placeholder.invalid/", false)
	rcv = newReceiver(t, secret)
	if _, err := h.tenants.Update(context.Background(), tn.ID, tenant.Patch{WebhookURL: &rcv.srv.URL}); err != nil {
		t.Fatal(err)
	}
	id := h.event(tn.ID, "o1", h.clock.Now())
	eventually(t, "delivery", func() bool { return len(rcv.got()) == 1 })
	got := rcv.got()[0]
	if got.id != string(id) || got.body != fmt.Sprintf(`{"id":%q,"openid":"o1"}`, id) {
		t.Errorf("received %+v", got)
	}
	eventually(t, "delivered state", func() bool { e, _ := h.get(tn.ID, id); return e.State == relay.StateDelivered })
	e, attempts := h.get(tn.ID, id)
	if e.AttemptCount != 1 || len(attempts) != 1 || attempts[0].HTTPStatus != 204 || attempts[0].Error != "" {
		t.Errorf("event %+v attempts %+v", e, attempts)
	}
}

// logBuffer is a log's text, safe to read while it is written.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// A webhook that refuses every delivery is retried on the schedule and
// then failed; the log says so once when it begins to fail, not once an
// attempt, and once when it delivers again.
func TestRetriesOnTheScheduleThenFails(t *testing.T) {
	logs := &logBuffer{}
	h := newHarness(t, delivery.Options{Schedule: delivery.Schedule{0, 5 * time.Second, time.Minute},
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	tn, secret := h.tenant("http://placeholder.invalid/", false)
	rcv := newReceiver(t, secret)
	rcv.answer = func(int) int { return 500 }
	h.tenants.Update(context.Background(), tn.ID, tenant.Patch{WebhookURL: &rcv.srv.URL})
	id := h.event(tn.ID, "o1", h.clock.Now())

	eventually(t, "first attempt", func() bool { _, a := h.get(tn.ID, id); return len(a) == 1 })
	// Not due again before the schedule says so.
	time.Sleep(50 * time.Millisecond)
	if n := len(rcv.got()); n != 1 {
		t.Fatalf("%d attempts before the clock moved, want 1", n)
	}
	h.clock.Advance(6 * time.Second) // 5 s ± 10% has passed
	h.disp.Notify()
	eventually(t, "second attempt", func() bool { _, a := h.get(tn.ID, id); return len(a) == 2 })
	h.clock.Advance(30 * time.Second)
	h.disp.Notify()
	time.Sleep(50 * time.Millisecond)
	if n := len(rcv.got()); n != 2 {
		t.Fatalf("%d attempts 36 s in, want 2 (the third is due after a minute)", n)
	}
	h.clock.Advance(40 * time.Second)
	h.disp.Notify()
	eventually(t, "failed state", func() bool { e, _ := h.get(tn.ID, id); return e.State == relay.StateFailed })
	e, attempts := h.get(tn.ID, id)
	if e.AttemptCount != 3 || len(attempts) != 3 {
		t.Fatalf("after the schedule: %d attempts recorded, count %d; want 3", len(attempts), e.AttemptCount)
	}
	for _, a := range attempts {
		if a.HTTPStatus != 500 || a.ErrorClass != relay.ErrorHTTPStatus || a.Error == "" {
			t.Errorf("attempt %+v", a)
		}
	}

	// Redelivery queues it again, under the same webhook-id.
	rcv.mu.Lock()
	rcv.answer = func(int) int { return 200 }
	rcv.mu.Unlock()
	if err := h.disp.Redeliver(context.Background(), tn.ID, id); err != nil {
		t.Fatal(err)
	}
	eventually(t, "redelivery", func() bool { e, _ := h.get(tn.ID, id); return e.State == relay.StateDelivered })
	if n := logs.count("level=WARN msg=\"delivery: the tenant's webhook failed a delivery"); n != 1 {
		t.Errorf("%d WARN lines for 3 failures in a row, want 1:\n%s", n, logs.b.String())
	}
	if n := logs.count("delivers again"); n != 1 {
		t.Errorf("%d lines for the recovery, want 1", n)
	}
	got := rcv.got()
	if len(got) != 4 || got[3].id != string(id) {
		t.Errorf("redelivered as %+v", got[len(got)-1])
	}
	if err := h.disp.Redeliver(context.Background(), "tn_other", id); err == nil {
		t.Errorf("redeliver through another tenant succeeded")
	}
}

func TestHonoursRetryAfterAndOverload(t *testing.T) {
	h := newHarness(t, delivery.Options{})
	tn, secret := h.tenant("http://placeholder.invalid/", false)
	rcv := newReceiver(t, secret)
	rcv.answer = func(n int) int {
		if n == 0 {
			return 429
		}
		return 204
	}
	h.tenants.Update(context.Background(), tn.ID, tenant.Patch{WebhookURL: &rcv.srv.URL})
	id := h.event(tn.ID, "o1", h.clock.Now())
	eventually(t, "first attempt", func() bool { _, a := h.get(tn.ID, id); return len(a) == 1 })
	h.clock.Advance(30 * time.Second) // the schedule says 5 s; a 429 means at least 60 s
	h.disp.Notify()
	time.Sleep(50 * time.Millisecond)
	if n := len(rcv.got()); n != 1 {
		t.Fatalf("retried %d times within 30 s of a 429", n-1)
	}
	h.clock.Advance(31 * time.Second)
	h.disp.Notify()
	eventually(t, "delivery after the back-off", func() bool { e, _ := h.get(tn.ID, id); return e.State == relay.StateDelivered })
}

// TestExpiredLeaseIsReclaimed: an event claimed by a worker that died is
// delivered once the lease expires, and not before.
func TestExpiredLeaseIsReclaimed(t *testing.T) {
	h := newHarness(t, delivery.Options{})
	tn, secret := h.tenant("http://placeholder.invalid/", false)
	rcv := newReceiver(t, secret)
	h.tenants.Update(context.Background(), tn.ID, tenant.Patch{WebhookURL: &rcv.srv.URL})
	h.stop() // claim as a "dead" worker while the dispatcher is off
	id := h.event(tn.ID, "o1", h.clock.Now())
	jobs, err := h.ds.ClaimDue(context.Background(), delivery.Claim{
		Owner: "dead-worker", Now: h.clock.Now(), LeaseUntil: h.clock.Now().Add(45 * time.Second), Limit: 10, PerTenant: 10,
	})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("claim: %v %d", err, len(jobs))
	}
	d, err := delivery.New(delivery.Options{
		Store: h.ds, Tenants: tenant.NewCache(h.tenants, 0, nil), Now: h.clock.Now, PollInterval: 10 * time.Millisecond,
		Sender: delivery.NewSender(delivery.SenderOptions{AllowPrivate: true}),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(50 * time.Millisecond)
	if n := len(rcv.got()); n != 0 {
		t.Fatalf("delivered while another worker's lease held")
	}
	h.clock.Advance(46 * time.Second)
	d.Notify()
	eventually(t, "delivery after lease expiry", func() bool { return len(rcv.got()) == 1 })
	if rcv.got()[0].id != string(id) {
		t.Errorf("delivered %s, want %s", rcv.got()[0].id, id)
	}
}

// TestSlowTenantDoesNotDelayOthers: tenant A's webhook hangs; tenant B's
// events are all delivered while A's requests are still hanging.
func TestSlowTenantDoesNotDelayOthers(t *testing.T) {
	h := newHarness(t, delivery.Options{Workers: 8, PerTenant: 3})
	slowT, slowSecret := h.tenant("http://placeholder.invalid/", false)
	fastT, fastSecret := h.tenant("http://placeholder.invalid/", false)
	slow, fast := newReceiver(t, slowSecret), newReceiver(t, fastSecret)
	slow.block = make(chan struct{})
	h.tenants.Update(context.Background(), slowT.ID, tenant.Patch{WebhookURL: &slow.srv.URL})
	h.tenants.Update(context.Background(), fastT.ID, tenant.Patch{WebhookURL: &fast.srv.URL})
	for i := range 50 {
		h.event(slowT.ID, fmt.Sprint("o", i), h.clock.Now())
	}
	for i := range 20 {
		h.event(fastT.ID, fmt.Sprint("o", i), h.clock.Now())
	}
	eventually(t, "the healthy tenant's 20 deliveries", func() bool { return len(fast.got()) == 20 })
	if n := len(slow.got()); n != 0 {
		t.Errorf("the hanging webhook finished %d requests", n)
	}
}

// TestWorkersCapAttemptsInFlight: however many events are due, no more
// attempts are in flight at once than their lane has workers, and each
// finished attempt frees its worker for the next event. (A tenant whose
// webhook has not answered yet is in the slow lane, here 4 of 8 workers
// and allowed 16 events.)
func TestWorkersCapAttemptsInFlight(t *testing.T) {
	h := newHarness(t, delivery.Options{Workers: 8, SlowWorkers: 4, PerTenant: 16, SlowPerTenant: 16})
	_, r := h.blockedTenant(30)
	eventually(t, "4 attempts waiting at the webhook", func() bool { return r.waiting.Load() == 4 })
	// Several polls later, still no fifth.
	time.Sleep(100 * time.Millisecond)
	if n := r.waiting.Load(); n != 4 {
		t.Fatalf("%d attempts in flight with 4 workers", n)
	}
	r.unblock()
	eventually(t, "all 30 deliveries", func() bool { return len(r.got()) == 30 })
}

// TestClaimsAhead: beyond the attempts in flight, a lane holds claimed
// events waiting for a worker, as many for each of its workers as Ahead is
// to Workers, and no more: here the slow lane, 4 workers and 3 ahead.
func TestClaimsAhead(t *testing.T) {
	// Stored before the dispatcher starts, so that its first claim fills
	// it: later claims wait for room for half the workers.
	h := newStoppedHarness(t, delivery.Options{Workers: 8, SlowWorkers: 4, Ahead: 6, PerTenant: 16, SlowPerTenant: 16})
	_, r := h.blockedTenant(30)
	h.run()
	eventually(t, "4 attempts at the webhook and 7 events held", func() bool {
		held, _ := h.leases.counts()
		return r.waiting.Load() == 4 && held == 7
	})
	time.Sleep(100 * time.Millisecond) // several polls
	if held, _ := h.leases.counts(); held != 7 || r.waiting.Load() != 4 {
		t.Fatalf("%d events held, %d attempts in flight; want 7 and 4", held, r.waiting.Load())
	}
	// The lease covers the longest wait, in the fast lane: up to the
	// whole capacity (14) waits there for its 4 workers, three attempts
	// ahead of the last, then its own: four 5 s timeouts, and the margin
	// (the timeout, at least 5 s).
	h.leases.mu.Lock()
	lease := h.leases.lease
	h.leases.mu.Unlock()
	if lease != 25*time.Second {
		t.Errorf("claims lease for %v, want 25s", lease)
	}
	r.unblock()
	eventually(t, "all 30 deliveries", func() bool { return len(r.got()) == 30 })
}

// TestShutdownReleasesEventsNotStarted: at shutdown, claimed events that
// wait for a worker are released at once, without an attempt, while the
// attempts in flight finish.
func TestShutdownReleasesEventsNotStarted(t *testing.T) {
	// The slow lane: 2 workers and 3 ahead.
	h := newStoppedHarness(t, delivery.Options{Workers: 4, SlowWorkers: 2, Ahead: 6, PerTenant: 16, SlowPerTenant: 16})
	tid, r := h.blockedTenant(10)
	h.run()
	// The first claim takes 10 (room in both lanes), the slow lane holds
	// 5 and the other 5 are put back at once.
	eventually(t, "2 attempts at the webhook, 5 events held and 5 put back", func() bool {
		held, released := h.leases.counts()
		return r.waiting.Load() == 2 && held == 5 && released == 5
	})
	stopped := make(chan struct{})
	go func() { h.stop(); close(stopped) }()
	eventually(t, "the 3 waiting events released", func() bool {
		_, released := h.leases.counts()
		return released == 5+3
	})
	select {
	case <-stopped:
		t.Fatal("Run returned with attempts in flight")
	default:
	}
	r.unblock()
	<-stopped
	var delivered, untried int
	for _, e := range h.list(tid) {
		switch {
		case e.State == relay.StateDelivered:
			delivered++
		case e.State == relay.StatePending && e.AttemptCount == 0:
			untried++
		}
	}
	if delivered != 2 || untried != 8 || len(r.got()) != 2 {
		t.Errorf("after shutdown: %d delivered, %d pending untried, %d requests; want 2, 8, 2", delivered, untried, len(r.got()))
	}
	// Released, not leased: a new dispatcher claims all 8 at once.
	c := delivery.Claim{Owner: "next", Now: h.clock.Now(), LeaseUntil: h.clock.Now().Add(time.Minute), Limit: 100, PerTenant: 100}
	if jobs, err := h.ds.ClaimDue(context.Background(), c); err != nil || len(jobs) != 8 {
		t.Errorf("a new claim takes %d events (%v), want 8", len(jobs), err)
	}
}

// TestOrderedDelivery: with ordered delivery, a later event of an openid
// waits while an earlier one is pending; other openids are not held up.
func TestOrderedDelivery(t *testing.T) {
	h := newHarness(t, delivery.Options{})
	tn, secret := h.tenant("http://placeholder.invalid/", true)
	rcv := newReceiver(t, secret)
	h.tenants.Update(context.Background(), tn.ID, tenant.Patch{WebhookURL: &rcv.srv.URL})
	base := h.clock.Now()
	h.stop() // store all three before anything is claimed
	first := h.event(tn.ID, "o_ordered", base.Add(-3*time.Second))
	second := h.event(tn.ID, "o_ordered", base.Add(-2*time.Second))
	other := h.event(tn.ID, "o_other", base.Add(-1*time.Second))
	// The first ordered event fails its first attempt; everything else lands.
	rcv.mu.Lock()
	rcv.answer = func(n int) int {
		if rcv.received[n].id == string(first) && n == firstIndex(rcv.received, string(first)) {
			return 503
		}
		return 204
	}
	rcv.mu.Unlock()
	d, _ := delivery.New(delivery.Options{
		Store: h.ds, Tenants: tenant.NewCache(h.tenants, 0, nil), Now: h.clock.Now, PollInterval: 10 * time.Millisecond,
		Sender: delivery.NewSender(delivery.SenderOptions{AllowPrivate: true}),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	eventually(t, "the other openid's delivery", func() bool {
		for _, g := range rcv.got() {
			if g.id == string(other) {
				return true
			}
		}
		return false
	})
	time.Sleep(50 * time.Millisecond)
	for _, g := range rcv.got() {
		if g.id == string(second) {
			t.Fatalf("the second event went out while the first was pending")
		}
	}
	h.clock.Advance(6 * time.Second)
	d.Notify()
	eventually(t, "both ordered events", func() bool { e, _ := h.get(tn.ID, second); return e.State == relay.StateDelivered })
	var order []string
	for _, g := range rcv.got() {
		if g.id == string(first) || g.id == string(second) {
			order = append(order, g.id)
		}
	}
	if want := []string{string(first), string(first), string(second)}; fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("ordered deliveries %v, want %v", order, want)
	}
}

// TestBreakerStopsHammeringAFailingEndpoint: after the breaker opens,
// further events of that endpoint are held without attempts.
func TestBreakerStopsHammeringAFailingEndpoint(t *testing.T) {
	h := newHarness(t, delivery.Options{
		Breakers:  delivery.NewBreakers(delivery.BreakerOptions{Threshold: 3}),
		Schedule:  delivery.Schedule{0, time.Hour},
		PerTenant: 1, // one at a time, so the count of requests is exact
	})
	tn, secret := h.tenant("http://placeholder.invalid/", false)
	rcv := newReceiver(t, secret)
	rcv.answer = func(int) int { return 500 }
	h.tenants.Update(context.Background(), tn.ID, tenant.Patch{WebhookURL: &rcv.srv.URL})
	for i := range 10 {
		h.event(tn.ID, fmt.Sprint("o", i), h.clock.Now())
	}
	eventually(t, "three failures", func() bool { return len(rcv.got()) >= 3 })
	time.Sleep(100 * time.Millisecond)
	if n := len(rcv.got()); n != 3 {
		t.Errorf("%d requests to an endpoint whose breaker opened after 3 failures", n)
	}
	// The held events were not charged an attempt.
	var pending int
	for _, e := range h.list(tn.ID) {
		if e.AttemptCount == 0 && e.State == relay.StatePending {
			pending++
		}
	}
	if pending != 7 {
		t.Errorf("%d events untried and pending behind the open breaker, want 7", pending)
	}
}

func TestShutdownFinishesAttemptsInFlight(t *testing.T) {
	h := newHarness(t, delivery.Options{})
	tn, secret := h.tenant("http://placeholder.invalid/", false)
	rcv := newReceiver(t, secret)
	rcv.block = make(chan struct{})
	h.tenants.Update(context.Background(), tn.ID, tenant.Patch{WebhookURL: &rcv.srv.URL})
	id := h.event(tn.ID, "o1", h.clock.Now())
	eventually(t, "the attempt to start", func() bool {
		e, _ := h.get(tn.ID, id)
		return e != nil && rcv.waiting.Load() > 0
	})
	stopped := make(chan struct{})
	go func() { h.stop(); close(stopped) }()
	time.Sleep(50 * time.Millisecond)
	select {
	case <-stopped:
		t.Fatal("Run returned with an attempt in flight")
	default:
	}
	rcv.unblock()
	<-stopped
	if e, _ := h.get(tn.ID, id); e.State != relay.StateDelivered {
		t.Errorf("state after shutdown = %v, want delivered", e.State)
	}
}

// firstIndex is the index of the first delivery of id.
func firstIndex(ds []delivered, id string) int {
	for i, d := range ds {
		if d.id == id {
			return i
		}
	}
	return -1
}
