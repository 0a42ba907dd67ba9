package delivery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/tenant"
)

// Options wire a Dispatcher. Store, Tenants and Sender are required.
type Options struct {
	Store   Store
	Tenants *tenant.Cache
	Sender  *Sender
	// Breakers guards endpoints that keep failing (default: NewBreakers
	// with its defaults).
	Breakers *Breakers
	Schedule Schedule // default DefaultSchedule
	// Owner names this dispatcher in leases (default host-pid-random).
	Owner string
	// Workers caps the attempts in flight at once (default 64).
	Workers int
	// Ahead is how many claimed events may wait for a worker beyond the
	// Workers in flight (default 2 × Workers). Claiming ahead lets claims
	// be large (a claim's fixed cost was a third of the store's work per
	// event when claims took the 16 events that a quarter of the workers
	// had just freed) and keeps the workers busy while the next claim
	// runs, which on a busy machine took up to 10 ms: a claim starts when
	// there is room for half the workers' worth, so 1.5 × Workers events
	// still wait then, some 9 ms of work at 11,000 deliveries a second.
	Ahead int
	// PerTenant caps the claimed events, waiting or in flight, that one
	// tenant whose webhook answers quickly holds (default 16), so that a
	// tenant with a large backlog takes no more than its share.
	PerTenant int
	// SlowWorkers are the workers of the slow lane (default Workers/4).
	// A tenant whose last attempt took SlowAttempt or more (default 2 s),
	// or timed out, and a tenant whose webhook has not answered this
	// process yet, is delivered there, SlowPerTenant (default 2) events
	// at a time: however many tenants have slow webhooks, they share
	// these workers, and the other Workers-SlowWorkers deliver for the
	// tenants whose webhooks answer. A tenant moves between the lanes
	// with each attempt's latency.
	SlowWorkers   int
	SlowAttempt   time.Duration
	SlowPerTenant int
	// LeaseMargin is how long a claim's lease outlives the longest an
	// event can take from its claim to the end of its attempt (default:
	// the Sender's attempt timeout, at least 5 s), so that only a dead
	// worker's lease ever expires. That longest is the attempt and the
	// wait for a worker, each attempt ahead in the queue taking at most
	// the timeout: 1 + ceil(Ahead/Workers) timeouts.
	LeaseMargin time.Duration
	// PollInterval is how often the store is asked for due work when
	// nothing wakes the dispatcher (default 1 s). New events wake it at
	// once through Notify.
	PollInterval time.Duration
	// ShutdownGrace bounds how long Run waits for attempts in flight once
	// its context ends (default 20 s).
	ShutdownGrace time.Duration
	Now           func() time.Time
	Logger        *slog.Logger
	Metrics       *Metrics // nil: not measured
}

// Dispatcher claims due events and delivers them.
type Dispatcher struct {
	opts     Options
	wake     chan struct{}
	outcomes chan Outcome

	mu sync.Mutex
	// held counts the claimed events not yet finished, waiting for a
	// worker or in flight.
	held int
	// tenants is what the dispatcher knows of each tenant it delivered
	// for: its events held, its lane, its webhook endpoint. busy and slow
	// index the few that claims must look at among them, however many
	// tenants there are: those holding events, and those of the slow
	// lane.
	tenants    map[tenant.ID]*tenantLoad
	busy, slow map[tenant.ID]*tenantLoad
	// lanes hand claimed events to the workers Run starts: the fast lane
	// for tenants whose webhooks answer quickly, the slow lane for the
	// others. Worker pools rather than a goroutine per attempt: a new
	// goroutine's stack grew, by copying, through the HTTP client's deep
	// calls at every attempt (about 4% of the dispatcher's CPU in
	// BenchmarkDrain).
	lanes   [2]lane
	running sync.WaitGroup // jobs handed out and not yet finished
}

// The lanes.
const (
	fastLane = iota
	slowLane
)

// lane is one pool of workers and the claimed events that wait for them.
type lane struct {
	workers int
	// capacity is how many events the lane holds at most, waiting or in
	// flight: the slow lane's own, as many waiting for each of its
	// workers as Ahead is to Workers; the fast lane's, whatever of the
	// dispatcher's capacity the slow lane does not hold.
	capacity int
	held     int
	jobs     chan queued
}

// queued is a claimed event handed to a lane.
type queued struct {
	job  *Job
	lane int
}

// tenantLoad is a tenant's part in the dispatcher.
type tenantLoad struct {
	held int // its events held, in either lane
	// seen is whether its webhook has answered an attempt of this
	// process; slow, whether the last attempt took SlowAttempt or more.
	seen, slow bool
	ep         tenantEndpoint // its webhook, for the breakers
	// failing is whether its last attempt here failed: the first failure
	// after a success is logged at WARN, the next ones not, and the
	// recovery at INFO, so that a tenant whose webhook refuses every
	// delivery shows in the log once, not once an attempt.
	failing bool
}

// lane is where tl's events go: the fast lane once its webhook has
// answered quickly.
func (tl *tenantLoad) lane() int {
	if tl.seen && !tl.slow {
		return fastLane
	}
	return slowLane
}

// New returns a Dispatcher; Run starts it.
func New(opts Options) (*Dispatcher, error) {
	if opts.Store == nil || opts.Tenants == nil || opts.Sender == nil {
		return nil, errors.New("delivery: Store, Tenants and Sender are required")
	}
	if opts.Schedule == nil {
		opts.Schedule = DefaultSchedule
	}
	if err := opts.Schedule.Validate(); err != nil {
		return nil, err
	}
	if opts.Breakers == nil {
		opts.Breakers = NewBreakers(BreakerOptions{})
	}
	if opts.Owner == "" {
		opts.Owner = defaultOwner()
	}
	setDefault(&opts.Workers, 64)
	setDefault(&opts.Ahead, 2*opts.Workers)
	setDefault(&opts.PerTenant, 16)
	setDefault(&opts.SlowWorkers, max(1, opts.Workers/4))
	if opts.SlowWorkers >= opts.Workers {
		return nil, fmt.Errorf("delivery: SlowWorkers %d leave no worker of %d for the fast lane", opts.SlowWorkers, opts.Workers)
	}
	setDefault(&opts.SlowAttempt, 2*time.Second)
	setDefault(&opts.SlowPerTenant, 2)
	setDefault(&opts.LeaseMargin, max(opts.Sender.Timeout(), 5*time.Second))
	setDefault(&opts.PollInterval, time.Second)
	setDefault(&opts.ShutdownGrace, 20*time.Second)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{
		opts: opts,
		wake: make(chan struct{}, 1),
		// Room for every held event's outcome, twice: outcomes wait for
		// the loop in Run between two of its claims, and a worker never
		// waits to hand one over.
		outcomes: make(chan Outcome, 2*(opts.Workers+opts.Ahead)),
		tenants:  map[tenant.ID]*tenantLoad{},
		busy:     map[tenant.ID]*tenantLoad{},
		slow:     map[tenant.ID]*tenantLoad{},
	}
	d.lanes[fastLane].workers = opts.Workers - opts.SlowWorkers
	d.lanes[fastLane].capacity = opts.Workers + opts.Ahead
	d.lanes[slowLane].workers = opts.SlowWorkers
	d.lanes[slowLane].capacity = opts.SlowWorkers + opts.SlowWorkers*opts.Ahead/opts.Workers
	return d, nil
}

func setDefault[T int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

func defaultOwner() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// Notify wakes the dispatcher to look for due work now: called when events
// are stored or queued again, so that delivery does not wait for a poll.
func (d *Dispatcher) Notify() {
	select {
	case d.wake <- struct{}{}:
	default: // already awake or about to be
	}
}

// Run delivers until ctx ends, then stops claiming, releases the claimed
// events that wait for a worker, lets attempts in flight finish within
// ShutdownGrace, records their outcomes and returns. Events whose attempt
// was cut short are released too, and are then delivered again under the
// same webhook-id.
func (d *Dispatcher) Run(ctx context.Context) {
	// Attempts outlive ctx by the grace period: a SIGTERM must not turn
	// attempts that were about to succeed into failures.
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	// Buffered for every event a lane holds: start never waits.
	for i := range d.lanes {
		d.lanes[i].jobs = make(chan queued, d.lanes[i].capacity)
	}
	var workers sync.WaitGroup
	for i := range d.lanes {
		for range d.lanes[i].workers {
			workers.Go(func() { d.serveLane(sendCtx, i) })
		}
	}

	// One goroutine records outcomes and claims, in turn. The two take
	// turns on the database's write lock anyway; from one goroutine,
	// neither waits for the other's wake-up, which on a busy machine kept
	// the database idle for milliseconds between them while the workers
	// ran out of claimed events.
	rec := newRecorder(d)
	poll := time.NewTicker(d.opts.PollInterval)
	defer poll.Stop()
	for ctx.Err() == nil {
		rec.flush()
		d.claim(ctx)
		select {
		case <-ctx.Done():
		case <-d.wake:
		case <-poll.C:
		case o := <-d.outcomes:
			rec.add(o)
		}
	}

	d.releaseWaiting(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { d.running.Wait(); close(done) }()
	grace := time.NewTimer(d.opts.ShutdownGrace)
	defer grace.Stop()
	for finished := false; !finished; {
		rec.flush()
		select {
		case <-done:
			finished = true
		case o := <-d.outcomes:
			rec.add(o)
		case <-grace.C:
			d.opts.Logger.Warn("delivery: attempts still in flight after the shutdown grace; cancelling them")
			cancelSends()
		}
	}
	for i := range d.lanes {
		close(d.lanes[i].jobs)
	}
	workers.Wait()
	rec.flush()
}

// capacity is how many claimed events the dispatcher holds at most.
func (d *Dispatcher) capacity() int { return d.opts.Workers + d.opts.Ahead }

// leaseFor is how long a claim leases its events: the wait for a worker
// behind the events claimed ahead in its lane, then the attempt (see
// LeaseMargin). The fast lane's wait is the longer: up to the whole
// capacity waits there, for fewer workers than the whole.
func (d *Dispatcher) leaseFor() time.Duration {
	fast := d.lanes[fastLane].workers
	timeouts := 1 + (d.capacity()-fast+fast-1)/fast
	return time.Duration(timeouts)*d.opts.Sender.Timeout() + d.opts.LeaseMargin
}

// claim takes due events while there is room for them and starts them.
func (d *Dispatcher) claim(ctx context.Context) {
	for ctx.Err() == nil {
		now := d.opts.Now()
		d.mu.Lock()
		room, busy := d.capacity()-d.held, d.held > 0
		exclude := d.excludedLocked(now)
		d.mu.Unlock()
		// Each claim is a write transaction with a fixed cost: claiming
		// for every worker as it frees up would make claims of one. While
		// events are held, wait until there is room for half the workers'
		// worth; the events waiting keep the workers busy meanwhile.
		if room <= 0 || (busy && room < max(1, d.opts.Workers/2)) {
			return
		}
		jobs, err := d.opts.Store.ClaimDue(ctx, Claim{
			Owner:      d.opts.Owner,
			Now:        now,
			LeaseUntil: now.Add(d.leaseFor()),
			Limit:      room,
			PerTenant:  d.opts.PerTenant,
			Exclude:    exclude,
		})
		if err != nil {
			if ctx.Err() == nil {
				d.opts.Logger.Error("delivery: claim due events", "err", err)
			}
			return
		}
		var over []*Job
		for _, j := range jobs {
			if !d.start(j) {
				over = append(over, j)
			}
		}
		if len(over) > 0 {
			// Claimed beyond their tenant's or lane's share (a claim
			// takes up to PerTenant of any tenant not yet at its cap):
			// put back as they were, due when they were due.
			go d.putBack(context.WithoutCancel(ctx), over)
			return
		}
		if len(jobs) < room {
			return // nothing more is due
		}
	}
}

// putBack releases claimed events the dispatcher did not start.
func (d *Dispatcher) putBack(ctx context.Context, jobs []*Job) {
	for _, j := range jobs {
		d.release(ctx, j, j.DueAt)
	}
}

// excludedLocked lists the tenants a claim must skip: those at their
// cap, those of the slow lane while it is full, and those whose
// endpoint's breaker is open.
func (d *Dispatcher) excludedLocked(now time.Time) []tenant.ID {
	var ex []tenant.ID
	for tid, tl := range d.busy {
		if tl.held >= d.capOf(tl) {
			ex = append(ex, tid)
		}
	}
	if l := &d.lanes[slowLane]; l.held >= l.capacity {
		for tid, tl := range d.slow {
			if tl.held < d.capOf(tl) { // not listed above
				ex = append(ex, tid)
			}
		}
	}
	// OpenEndpoints only reads: Allow here would spend the one probe a
	// recovering endpoint gets on a claim instead of an attempt.
	for key := range d.opts.Breakers.OpenEndpoints(now) {
		tid, _, _ := strings.Cut(key, " ")
		ex = append(ex, tenant.ID(tid))
	}
	return ex
}

// capOf is how many events tl may hold: PerTenant in the fast lane,
// SlowPerTenant in the slow.
func (d *Dispatcher) capOf(tl *tenantLoad) int {
	if tl.lane() == fastLane {
		return d.opts.PerTenant
	}
	return d.opts.SlowPerTenant
}

// start counts j as held and hands it to its tenant's lane, unless the
// tenant or the lane holds its share already: false then, and j is for
// the caller to put back.
func (d *Dispatcher) start(j *Job) bool {
	d.mu.Lock()
	tl := d.loadLocked(j.TenantID)
	i := tl.lane()
	l := &d.lanes[i]
	if tl.held >= d.capOf(tl) || l.held >= l.capacity || d.held >= d.capacity() {
		d.mu.Unlock()
		return false
	}
	d.held++
	l.held++
	tl.held++
	d.busy[j.TenantID] = tl
	d.mu.Unlock()
	d.running.Add(1)
	l.jobs <- queued{job: j, lane: i}
	return true
}

// Forget drops what the dispatcher knows of tenant id (its lane, its
// endpoint) once none of its events is held: wire it to
// tenant.Service.OnChange, so that a changed webhook starts afresh and a
// deleted tenant leaves nothing.
func (d *Dispatcher) Forget(id tenant.ID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	tl := d.tenants[id]
	switch {
	case tl == nil:
	case tl.held == 0:
		delete(d.tenants, id)
		delete(d.slow, id)
	default:
		tl.ep = tenantEndpoint{}
		d.classifyLocked(id, tl, false, false)
	}
}

// loadLocked is tid's tenantLoad, made (unseen: the slow lane) if the
// dispatcher did not know tid.
func (d *Dispatcher) loadLocked(tid tenant.ID) *tenantLoad {
	tl := d.tenants[tid]
	if tl == nil {
		tl = &tenantLoad{}
		d.tenants[tid] = tl
		d.slow[tid] = tl
	}
	return tl
}

// classifyLocked records what tid's last attempt said of its webhook, and
// so the lane of its next events.
func (d *Dispatcher) classifyLocked(tid tenant.ID, tl *tenantLoad, seen, slow bool) {
	tl.seen, tl.slow = seen, slow
	if tl.lane() == slowLane {
		d.slow[tid] = tl
	} else {
		delete(d.slow, tid)
	}
}

// serveLane is a worker of lane i until its events end. A worker of the
// slow lane also takes the fast lane's events while none of its own wait:
// fast events hold it briefly, by definition, and a single busy tenant
// keeps the use of every worker.
func (d *Dispatcher) serveLane(ctx context.Context, i int) {
	own := d.lanes[i].jobs
	var other chan queued
	if i == slowLane {
		other = d.lanes[fastLane].jobs
	}
	for own != nil || other != nil {
		var q queued
		var ok bool
		select { // its own lane first
		case q, ok = <-own:
			if !ok {
				own = nil
				continue
			}
		default:
			select {
			case q, ok = <-own:
				if !ok {
					own = nil
					continue
				}
			case q, ok = <-other:
				if !ok {
					other = nil
					continue
				}
			}
		}
		d.work(ctx, q)
	}
}

// work attempts q's event on a worker.
func (d *Dispatcher) work(ctx context.Context, q queued) {
	d.attempt(ctx, q.job)
	d.finish(q)
}

// releaseWaiting releases the claimed events that no worker has taken
// yet. At shutdown they are not attempts in flight to finish: released,
// they are due at once for another replica, or for this one when it
// starts again, instead of when their leases end.
func (d *Dispatcher) releaseWaiting(ctx context.Context) {
	for i := range d.lanes {
		for drained := false; !drained; {
			select {
			case q := <-d.lanes[i].jobs:
				d.release(ctx, q.job, d.opts.Now())
				d.finish(q)
			default:
				drained = true
			}
		}
	}
}

// finish counts q out of the held events and wakes the claimer.
func (d *Dispatcher) finish(q queued) {
	defer d.running.Done()
	d.mu.Lock()
	d.held--
	d.lanes[q.lane].held--
	if tl := d.tenants[q.job.TenantID]; tl != nil {
		if tl.held--; tl.held == 0 {
			delete(d.busy, q.job.TenantID)
		}
	}
	d.mu.Unlock()
	d.Notify() // there is room for another event
}

// attempt delivers one claimed event and queues its outcome for recording.
func (d *Dispatcher) attempt(ctx context.Context, j *Job) {
	t, err := d.opts.Tenants.Get(ctx, j.TenantID)
	switch {
	case errors.Is(err, tenant.ErrNotFound):
		return // deleted with its events; nothing to deliver
	case err != nil:
		d.opts.Logger.Error("delivery: load tenant", "tenant", j.TenantID, "err", err)
		d.release(ctx, j, d.opts.Now().Add(30*time.Second))
		return
	case t.State != tenant.StateActive:
		d.release(ctx, j, d.opts.Now().Add(time.Minute))
		return
	}
	now := d.opts.Now()
	if first := j.ReceiveTime.Add(d.opts.Schedule[0]); j.RetryIndex == 0 && now.Before(first) {
		d.release(ctx, j, first) // the schedule's first delay is not over
		return
	}
	d.mu.Lock()
	tl := d.loadLocked(t.ID)
	ep := tl.ep
	if ep.url != t.WebhookURL {
		// Parsed once per tenant and webhook URL, not at every attempt.
		ep = tenantEndpoint{url: t.WebhookURL, key: endpoint(t.ID, t.WebhookURL)}
		tl.ep = ep
	}
	d.mu.Unlock()
	if !d.opts.Breakers.Allow(ep.key, now) {
		d.release(ctx, j, d.opts.Breakers.OpenUntil(ep.key, now))
		return
	}

	res := d.opts.Sender.Send(ctx, Request{
		URL:     t.WebhookURL,
		EventID: string(j.EventID),
		Body:    j.Payload,
		Secrets: t.WebhookSecrets.Signing(now),
		Now:     now,
	})
	if res.Canceled {
		// Cut short by shutdown: not the endpoint's fault, and not an
		// attempt to count. Released, it is due again at once.
		d.release(context.WithoutCancel(ctx), j, d.opts.Now())
		return
	}
	d.opts.Breakers.Report(ep.key, d.opts.Now(), res.Attempt)
	d.mu.Lock()
	tl = d.loadLocked(t.ID)
	// The lane for its next events: slow while its webhook is.
	d.classifyLocked(t.ID, tl, true,
		res.Attempt.Latency >= d.opts.SlowAttempt || res.Attempt.ErrorClass == relay.ErrorTimeout)
	failed := res.Attempt.ErrorClass != ""
	changed := failed != tl.failing
	tl.failing = failed
	d.mu.Unlock()
	if changed {
		d.logTransition(t, j, res.Attempt, failed)
	}

	o := Outcome{Job: j, Owner: d.opts.Owner, Attempt: res.Attempt}
	if res.Attempt.ErrorClass == "" {
		o.State = relay.StateDelivered
	} else {
		next, index, failed := d.opts.Schedule.next(j.RetryIndex, d.opts.Now(), res.Attempt, res.RetryAfter)
		o.State, o.NextAttemptAt, o.RetryIndex = relay.StatePending, next, index
		if failed {
			o.State = relay.StateFailed
		}
	}
	d.opts.Metrics.attempted(o)
	d.outcomes <- o
}

// logTransition says in the log that tenant t's webhook began to fail
// (WARN, with what it answered) or delivers again (INFO).
func (d *Dispatcher) logTransition(t *tenant.Tenant, j *Job, a relay.Attempt, failed bool) {
	if !failed {
		d.opts.Logger.Info("delivery: the tenant's webhook delivers again", "tenant", t.ID, "event", j.EventID)
		return
	}
	d.opts.Logger.Warn("delivery: the tenant's webhook failed a delivery; it is retried on the schedule (later failures in a row are not logged)",
		"tenant", t.ID, "event", j.EventID, "http_status", a.HTTPStatus, "error_class", a.ErrorClass, "retry", j.RetryIndex)
}

func (d *Dispatcher) release(ctx context.Context, j *Job, at time.Time) {
	if err := d.opts.Store.Release(ctx, Release{Job: j, Owner: d.opts.Owner, NextAttemptAt: at}); err != nil {
		d.opts.Logger.Error("delivery: release event", "event", j.EventID, "err", err)
	}
}

// recorder commits outcomes in batches: every outcome that arrived since
// the previous batch goes into the next one.
type recorder struct {
	d     *Dispatcher
	batch []Outcome
}

func newRecorder(d *Dispatcher) *recorder {
	return &recorder{d: d, batch: make([]Outcome, 0, cap(d.outcomes))}
}

func (r *recorder) add(o Outcome) { r.batch = append(r.batch, o) }

// flush records the outcomes added and those waiting in the channel.
func (r *recorder) flush() {
drain:
	for len(r.batch) < cap(r.batch) {
		select {
		case o := <-r.d.outcomes:
			r.batch = append(r.batch, o)
		default:
			break drain
		}
	}
	if len(r.batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.d.opts.Store.Record(ctx, r.batch); err != nil {
		// The leases expire and these events are attempted again: at
		// least once, never lost.
		r.d.opts.Logger.Error("delivery: record outcomes", "outcomes", len(r.batch), "err", err)
	}
	clear(r.batch) // let the payloads go
	r.batch = r.batch[:0]
}

// tenantEndpoint is a tenant's webhook URL and the breaker guarding it.
type tenantEndpoint struct {
	url string
	key string // endpoint(tenant, url)
}

// endpoint is the key of the breaker that guards tenant tid's webhook at
// raw: the tenant, then the URL with its scheme, host and default port
// spelt one way. Per tenant, not per host: an agency serves many clients'
// webhooks from one host, and one client's handler failing must not hold
// up the others' deliveries (nor their successes close its breaker).
func endpoint(tid tenant.ID, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return string(tid) + " " + raw
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), net.JoinHostPort(strings.ToLower(u.Hostname()), port)
	return string(tid) + " " + u.String()
}

// HeldUntil is when tenant tid's webhook at url may be tried again, if
// its circuit breaker holds its deliveries now, as this replica's
// breakers know it; zero if nothing holds them.
func (d *Dispatcher) HeldUntil(tid tenant.ID, url string) time.Time {
	return d.opts.Breakers.OpenUntil(endpoint(tid, url), d.opts.Now())
}

// Redeliver queues one of tid's events again, due now and at the start of
// the retry schedule, and wakes the dispatcher. It is delivered under its
// own id, so receivers that de-duplicate on webhook-id see it as the same
// event. relay.ErrNotFound.
func (d *Dispatcher) Redeliver(ctx context.Context, tid tenant.ID, id relay.EventID) error {
	if err := d.opts.Store.Redeliver(ctx, tid, id, d.opts.Now()); err != nil {
		return err
	}
	d.Notify()
	return nil
}
