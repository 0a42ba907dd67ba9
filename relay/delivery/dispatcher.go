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
	// tenant holds (default 16), so that a tenant with a slow webhook and
	// a large backlog holds at most this many workers and every other
	// tenant keeps the rest.
	PerTenant int
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
	// worker or in flight; perTenant counts them by tenant.
	held      int
	perTenant map[tenant.ID]int
	// endpoints remembers each tenant's webhook endpoint, so that tenants
	// behind an open breaker can be left out of claims.
	endpoints map[tenant.ID]tenantEndpoint
	// jobs hands claimed events to the Workers goroutines Run starts. A
	// pool rather than a goroutine per attempt: a new goroutine's stack
	// grew, by copying, through the HTTP client's deep calls at every
	// attempt (about 4% of the dispatcher's CPU in BenchmarkDrain).
	jobs    chan *Job
	running sync.WaitGroup // jobs handed out and not yet finished
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
	setDefault(&opts.LeaseMargin, max(opts.Sender.Timeout(), 5*time.Second))
	setDefault(&opts.PollInterval, time.Second)
	setDefault(&opts.ShutdownGrace, 20*time.Second)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{
		opts: opts,
		wake: make(chan struct{}, 1),
		// Room for every held event's outcome, twice: outcomes wait for
		// the loop in Run between two of its claims, and a worker never
		// waits to hand one over.
		outcomes:  make(chan Outcome, 2*(opts.Workers+opts.Ahead)),
		perTenant: map[tenant.ID]int{},
		endpoints: map[tenant.ID]tenantEndpoint{},
	}, nil
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
	// Buffered for every claimed event: start never waits.
	d.jobs = make(chan *Job, d.capacity())
	var workers sync.WaitGroup
	for range d.opts.Workers {
		workers.Go(func() {
			for j := range d.jobs {
				d.work(sendCtx, j)
			}
		})
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
	close(d.jobs)
	workers.Wait()
	rec.flush()
}

// capacity is how many claimed events the dispatcher holds at most.
func (d *Dispatcher) capacity() int { return d.opts.Workers + d.opts.Ahead }

// leaseFor is how long a claim leases its events: the wait for a worker
// behind the events claimed ahead, then the attempt (see LeaseMargin).
func (d *Dispatcher) leaseFor() time.Duration {
	timeouts := 1 + (d.opts.Ahead+d.opts.Workers-1)/d.opts.Workers
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
		for _, j := range jobs {
			d.start(j)
		}
		if len(jobs) < room {
			return // nothing more is due
		}
	}
}

// excludedLocked lists the tenants a claim must skip: those at their cap,
// and those whose endpoint's breaker is open.
func (d *Dispatcher) excludedLocked(now time.Time) []tenant.ID {
	var ex []tenant.ID
	for tid, n := range d.perTenant {
		if n >= d.opts.PerTenant {
			ex = append(ex, tid)
		}
	}
	open := d.opts.Breakers.OpenEndpoints(now)
	if len(open) == 0 {
		return ex
	}
	for tid, ep := range d.endpoints {
		// OpenEndpoints only reads: Allow here would spend the one probe
		// a recovering endpoint gets on a claim instead of an attempt.
		if _, isOpen := open[ep.key]; isOpen && d.perTenant[tid] < d.opts.PerTenant {
			ex = append(ex, tid)
		}
	}
	return ex
}

// start counts j as held and hands it to the workers.
func (d *Dispatcher) start(j *Job) {
	d.mu.Lock()
	d.held++
	d.perTenant[j.TenantID]++
	d.mu.Unlock()
	d.running.Add(1)
	d.jobs <- j
}

// work attempts j on a worker.
func (d *Dispatcher) work(ctx context.Context, j *Job) {
	d.attempt(ctx, j)
	d.finish(j)
}

// releaseWaiting releases the claimed events that no worker has taken
// yet. At shutdown they are not attempts in flight to finish: released,
// they are due at once for another replica, or for this one when it
// starts again, instead of when their leases end.
func (d *Dispatcher) releaseWaiting(ctx context.Context) {
	for {
		select {
		case j := <-d.jobs:
			d.release(ctx, j, d.opts.Now())
			d.finish(j)
		default:
			return
		}
	}
}

// finish counts j out of the held events and wakes the claimer.
func (d *Dispatcher) finish(j *Job) {
	defer d.running.Done()
	d.mu.Lock()
	d.held--
	if d.perTenant[j.TenantID]--; d.perTenant[j.TenantID] <= 0 {
		delete(d.perTenant, j.TenantID)
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
	ep, ok := d.endpoints[t.ID]
	if !ok || ep.url != t.WebhookURL {
		// Parsed once per tenant and webhook URL, not at every attempt.
		ep = tenantEndpoint{url: t.WebhookURL, key: endpoint(t.WebhookURL)}
		d.endpoints[t.ID] = ep
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

// tenantEndpoint is a tenant's webhook URL and the endpoint it names.
type tenantEndpoint struct {
	url string
	key string // endpoint(url)
}

// endpoint is the scheme://host:port a breaker guards, one key however the
// URL spells it.
func endpoint(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
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
