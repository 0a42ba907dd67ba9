package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wxrelay/wxrelay/tenant"
)

// ErrClosed is returned by Ingestor.Append after Close.
var ErrClosed = errors.New("relay: ingestor closed")

// IngestorOptions tune an Ingestor. The zero value is sensible.
type IngestorOptions struct {
	// MaxBatch caps the events committed in one transaction (default 256).
	MaxBatch int
	// CommitTimeout bounds one batch's transaction (default 4 s: WeChat
	// gives up after 5 s, and a late "success" is worth nothing).
	CommitTimeout time.Duration
	// FirstDelay delays the first delivery attempt of each event (the
	// first entry of the retry schedule, usually 0).
	FirstDelay time.Duration
	// OnCommit, if set, is told the size and duration of every commit.
	OnCommit func(size int, took time.Duration, err error)
}

// Ingestor stores events durably with group commit: one writer goroutine
// takes every event queued while the previous commit was in progress and
// commits them in one transaction, so concurrent pushes share one fsync
// instead of queueing for one each. At low load a batch is a single event
// and waits for nothing; under load batches grow by themselves.
type Ingestor struct {
	store Store
	opts  IngestorOptions
	queue chan *pendingAppend

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
	done   chan struct{}
}

type pendingAppend struct {
	event  *Event
	result chan appendOutcome // buffered: the writer never blocks on it
}

type appendOutcome struct {
	res AppendResult
	err error
}

// NewIngestor starts the writer. Call Close to stop it.
func NewIngestor(store Store, opts IngestorOptions) *Ingestor {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.CommitTimeout <= 0 {
		opts.CommitTimeout = 4 * time.Second
	}
	in := &Ingestor{
		store: store,
		opts:  opts,
		queue: make(chan *pendingAppend, 4*opts.MaxBatch),
		done:  make(chan struct{}),
	}
	go in.write()
	return in
}

// Append stores e and returns once it is durably committed, or with the
// error that prevented it. A duplicate of a stored event is reported with
// the original's id and not stored again. If ctx ends first, Append returns
// ctx's error; the event may still be committed, which is harmless: WeChat
// retries and the retry is recognised as a duplicate.
func (in *Ingestor) Append(ctx context.Context, e *Event) (AppendResult, error) {
	if in.opts.FirstDelay > 0 && e.DueAt.IsZero() {
		e.DueAt = e.ReceiveTime.Add(in.opts.FirstDelay)
	}
	p := &pendingAppend{event: e, result: make(chan appendOutcome, 1)}
	in.mu.RLock()
	if in.closed {
		in.mu.RUnlock()
		return AppendResult{}, ErrClosed
	}
	select {
	case in.queue <- p:
		in.mu.RUnlock()
	case <-ctx.Done():
		in.mu.RUnlock()
		return AppendResult{}, ctx.Err()
	}
	select {
	case out := <-p.result:
		return out.res, out.err
	case <-ctx.Done():
		return AppendResult{}, ctx.Err()
	}
}

// Queued is how many events wait for a commit: the depth of the ingest
// queue, for a gauge.
func (in *Ingestor) Queued() int { return len(in.queue) }

// Close stops taking events, commits those already queued, and returns
// when the writer has finished.
func (in *Ingestor) Close() {
	in.mu.Lock()
	if !in.closed {
		in.closed = true
		close(in.queue)
	}
	in.mu.Unlock()
	<-in.done
}

func (in *Ingestor) write() {
	defer close(in.done)
	batch := make([]*pendingAppend, 0, in.opts.MaxBatch)
	events := make([]*Event, 0, in.opts.MaxBatch)
	for first := range in.queue {
		batch = append(batch[:0], first)
	collect:
		for len(batch) < in.opts.MaxBatch {
			select {
			case p, ok := <-in.queue:
				if !ok {
					break collect
				}
				batch = append(batch, p)
			default:
				break collect
			}
		}
		events = events[:0]
		for _, p := range batch {
			events = append(events, p.event)
		}
		in.commit(batch, events)
	}
}

func (in *Ingestor) commit(batch []*pendingAppend, events []*Event) {
	// The batch belongs to many requests, so no single request's context
	// may cancel it: it gets its own deadline.
	ctx, cancel := context.WithTimeout(context.Background(), in.opts.CommitTimeout)
	defer cancel()
	start := time.Now()
	results, err := in.append(ctx, events)
	if in.opts.OnCommit != nil {
		in.opts.OnCommit(len(events), time.Since(start), err)
	}
	if err != nil && len(batch) > 1 && (errors.Is(err, ErrInvalid) || errors.Is(err, tenant.ErrNotFound)) {
		// One event the store refuses (invalid, or its tenant deleted
		// meanwhile) must not fail its neighbours: commit them one by one,
		// so only the bad one is answered with an error.
		for i := range batch {
			in.commit(batch[i:i+1], events[i:i+1])
		}
		return
	}
	for i, p := range batch {
		if err != nil {
			p.result <- appendOutcome{err: err}
		} else {
			p.result <- appendOutcome{res: results[i]}
		}
	}
}

func (in *Ingestor) append(ctx context.Context, events []*Event) ([]AppendResult, error) {
	results, err := in.store.AppendEvents(ctx, events)
	if err == nil && len(results) != len(events) {
		err = fmt.Errorf("relay: store returned %d results for %d events", len(results), len(events))
	}
	return results, err
}
