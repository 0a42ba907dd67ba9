package delivery

import (
	"context"
	"time"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/relay/pace"
)

// RunRecoveries steps the running recoveries (relay.Recovery) until none
// is left or budget has passed, resting between steps as the relay's
// other background batches do (relay/pace), so that a recovery of a
// million events takes a bounded share of the write lock and the pushes
// of every tenant go on beside it. notify wakes the dispatcher for what a
// step queued. It is the body of a scheduled job.
func RunRecoveries(ctx context.Context, s relay.RecoveryStore, notify func(), budget time.Duration) error {
	deadline := time.Now().Add(budget)
	var b pace.Batches
	for time.Now().Before(deadline) {
		start := time.Now()
		queued, running, err := s.StepRecoveries(ctx, time.Now())
		if err != nil || !running {
			return err
		}
		if queued > 0 && notify != nil {
			notify()
		}
		if err := b.Done(ctx, 0, time.Since(start)); err != nil {
			return err
		}
	}
	return nil
}
