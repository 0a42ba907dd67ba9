// Package calllog records the calls tenants make through the
// WeChat-compatible API, so that each tenant can see its own (GET
// /v1/tenants/{id}/calls): the path, what was answered, how long it took.
//
// Records are written off the request path: Recorder.Record queues one and
// returns at once, and a background writer stores them in batches (one
// transaction per batch, on the store's relaxed pool). A call record is an
// account of what happened, not state anything depends on, so when the
// queue is full (the database far behind) new records are dropped and
// counted rather than slowing the calls down, and a crash may lose the last
// fraction of a second of them.
package calllog

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/tenant"
)

// Call is one recorded call.
type Call struct {
	Seq       int64 // set by the store: the listing's cursor
	TenantID  tenant.ID
	Time      time.Time
	Method    string
	Path      string // without the query, which holds the token
	PathClass string // token, send, typing, media, other
	// HTTPStatus and Errcode are what the caller was answered; HasErrcode
	// is false for an answer without an errcode (a media download).
	HTTPStatus int
	Errcode    int
	HasErrcode bool
	Errmsg     string
	Duration   time.Duration
	// Retried: WeChat refused the real token and the call was sent again.
	Retried bool
}

// Store keeps call records; *store.CallStore is one.
type Store interface {
	// AppendCalls stores calls in one transaction. Calls of tenants that
	// no longer exist are dropped, not an error.
	AppendCalls(ctx context.Context, calls []Call) error
	// ListCalls returns up to limit of tid's calls newest first, those
	// before seq before (0: from the newest).
	ListCalls(ctx context.Context, tid tenant.ID, before int64, limit int) ([]Call, error)
	// PruneCalls deletes up to limit calls older than cutoff and says how many.
	PruneCalls(ctx context.Context, cutoff time.Time, limit int) (int, error)
}

// Options configure a Recorder; the zero value of each field is a default.
type Options struct {
	Queue     int           // records waiting to be written; 8192
	Batch     int           // records per transaction at most; 512
	Interval  time.Duration // how long a record may wait for more; 200 ms
	Logger    *slog.Logger
	Registry  prometheus.Registerer
	WriteTime time.Duration // bound on one batch's write; 5 s
}

// Recorder writes call records in the background. Close it to write what
// is queued and stop.
type Recorder struct {
	store   Store
	opts    Options
	queue   chan Call
	done    chan struct{}
	dropped prometheus.Counter
	failed  prometheus.Counter

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
}

// NewRecorder starts a Recorder writing to s.
func NewRecorder(s Store, opts Options) (*Recorder, error) {
	if opts.Queue <= 0 {
		opts.Queue = 8192
	}
	if opts.Batch <= 0 {
		opts.Batch = 512
	}
	if opts.Interval <= 0 {
		opts.Interval = 200 * time.Millisecond
	}
	if opts.WriteTime <= 0 {
		opts.WriteTime = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Recorder{
		store: s, opts: opts,
		queue: make(chan Call, opts.Queue),
		done:  make(chan struct{}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wxrelay_call_records_dropped_total",
			Help: "Call records of the WeChat-compatible API dropped because the queue to the database was full.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wxrelay_call_records_failed_total",
			Help: "Call records of the WeChat-compatible API lost because the database refused their batch.",
		}),
	}
	if opts.Registry != nil {
		for _, c := range []prometheus.Collector{r.dropped, r.failed} {
			if err := opts.Registry.Register(c); err != nil {
				return nil, err
			}
		}
	}
	go r.run()
	return r, nil
}

// The longest texts a record keeps, in bytes: a path longer than any of
// WeChat's, and an errmsg longer than any WeChat writes. A caller chooses
// the path, so it must not be able to store megabytes in a record.
const (
	MaxPathBytes   = 256
	MaxErrmsgBytes = 512
	maxMethodBytes = 16
)

// Record queues c; it never blocks. Its texts are cut to their limits and
// made safe to store (see Clean). After Close the record is dropped and
// counted: a call still finishing at shutdown must not stop the process.
func (r *Recorder) Record(c Call) {
	c.Method = Clean(c.Method, maxMethodBytes)
	c.Path = Clean(c.Path, MaxPathBytes)
	c.Errmsg = Clean(c.Errmsg, MaxErrmsgBytes)
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		r.dropped.Inc()
		return
	}
	select {
	case r.queue <- c:
	default:
		r.dropped.Inc()
	}
}

// Close writes the queued records and stops the writer.
func (r *Recorder) Close() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.queue)
	}
	r.mu.Unlock()
	<-r.done
}

func (r *Recorder) run() {
	defer close(r.done)
	batch := make([]Call, 0, r.opts.Batch)
	tick := time.NewTicker(r.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case c, ok := <-r.queue:
			if !ok {
				r.write(batch)
				return
			}
			batch = append(batch, c)
			if len(batch) < r.opts.Batch {
				continue
			}
		case <-tick.C:
		}
		r.write(batch)
		batch = batch[:0]
	}
}

func (r *Recorder) write(batch []Call) {
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.WriteTime)
	defer cancel()
	err := r.store.AppendCalls(ctx, batch)
	if err == nil {
		return
	}
	if len(batch) > 1 && ctx.Err() == nil {
		// One record the database refuses must not lose its batch, which
		// holds other tenants' records: store them one by one, and lose
		// only those refused alone.
		failed := 0
		for _, c := range batch {
			if err1 := r.store.AppendCalls(ctx, []Call{c}); err1 != nil {
				failed++
				err = err1
			}
		}
		if failed == 0 {
			return
		}
		r.failed.Add(float64(failed))
		r.opts.Logger.Error("calllog: store call records", "records", failed, "err", err)
		return
	}
	r.failed.Add(float64(len(batch)))
	r.opts.Logger.Error("calllog: store call records", "records", len(batch), "err", err)
}

// Clean returns s fit to store and show: control characters (NUL
// included, which PostgreSQL's text refuses) written as %XX, invalid UTF-8
// as U+FFFD, and at most max bytes, ending in "…" when cut.
func Clean(s string, max int) string {
	plain := len(s) <= max
	for i := 0; plain && i < len(s); i++ {
		c := s[i]
		plain = c >= 0x20 && c != 0x7f && c < utf8.RuneSelf
	}
	if plain {
		return s
	}
	var b strings.Builder
	cut := false
	for _, r := range s { // an invalid byte reads as utf8.RuneError, U+FFFD
		if b.Len() > max {
			cut = true
			break
		}
		if r < 0x20 || r == 0x7f {
			fmt.Fprintf(&b, "%%%02X", r)
		} else {
			b.WriteRune(r)
		}
	}
	out := b.String()
	if !cut && len(out) <= max {
		return out
	}
	const ellipsis = "…"
	end := max - len(ellipsis)
	for end > 0 && !utf8.RuneStart(out[end]) {
		end--
	}
	return out[:end] + ellipsis
}

// List returns a page of tid's calls, newest first, and the token of the
// next page ("" at the end). A *tenant.FieldError for a bad page size or
// token.
func List(ctx context.Context, s Store, tid tenant.ID, pageSize int, pageToken string) ([]Call, string, error) {
	pageSize, err := relay.PageSize(pageSize)
	if err != nil {
		return nil, "", err
	}
	before, err := relay.DecodeCursor(pageToken)
	if err != nil {
		return nil, "", err
	}
	calls, err := s.ListCalls(ctx, tid, before, pageSize+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(calls) > pageSize {
		calls = calls[:pageSize]
		next = relay.EncodeCursor(calls[pageSize-1].Seq)
	}
	return calls, next, nil
}
