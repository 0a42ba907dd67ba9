package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/wxrelay/wxrelay/relay"
)

// Retention says how long finished events are kept.
type Retention struct {
	Delivered time.Duration // default 7 days
	Failed    time.Duration // default 30 days: long enough to notice and redeliver
	// BatchSize bounds one delete transaction (default 500), and Pause
	// separates batches (default 20 ms), so that pruning a large backlog
	// never holds the database's write lock for long and ingest goes on.
	BatchSize int
	Pause     time.Duration
}

func (r *Retention) defaults() {
	setDefault(&r.Delivered, 7*24*time.Hour)
	setDefault(&r.Failed, 30*24*time.Hour)
	setDefault(&r.BatchSize, 500)
	setDefault(&r.Pause, 20*time.Millisecond)
}

// Prune deletes delivered and failed events past their retention, with
// their attempts, in small batches, and reports how many it deleted. De-
// duplication keys go with their events: even the shortest retention is
// far beyond the minutes in which WeChat retries a push.
func Prune(ctx context.Context, s Store, r Retention, now time.Time) (int, error) {
	r.defaults()
	total := 0
	for _, p := range []struct {
		state relay.State
		keep  time.Duration
	}{{relay.StateDelivered, r.Delivered}, {relay.StateFailed, r.Failed}} {
		for {
			n, err := s.PruneEvents(ctx, p.state, now.Add(-p.keep), r.BatchSize)
			total += n
			if err != nil {
				return total, fmt.Errorf("delivery: prune: %w", err)
			}
			if n < r.BatchSize {
				break
			}
			select {
			case <-ctx.Done():
				return total, ctx.Err()
			case <-time.After(r.Pause):
			}
		}
	}
	return total, nil
}
