package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/relay/pace"
)

// Retention says how long finished events are kept.
type Retention struct {
	Delivered time.Duration // default 7 days
	Failed    time.Duration // default 30 days: long enough to notice and redeliver
}

func (r *Retention) defaults() {
	setDefault(&r.Delivered, 7*24*time.Hour)
	setDefault(&r.Failed, 30*24*time.Hour)
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
		// Paced as a deleted tenant's purge is (relay/pace): batches of
		// 500 with 20 ms between them held the write lock about two thirds
		// of the time, some 40 ms a batch by the purge's figures, and every
		// push waited behind them.
		n, err := pace.Run(ctx, func(limit int) (int, error) {
			return s.PruneEvents(ctx, p.state, now.Add(-p.keep), limit)
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("delivery: prune: %w", err)
		}
	}
	return total, nil
}
