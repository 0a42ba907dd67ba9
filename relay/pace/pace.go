// Package pace sizes and spaces the batches of the relay's background
// deletes (a deleted tenant's purge, retention pruning), so that each
// takes a bounded share of the database's write lock and of the disk, and
// the pushes of every tenant go on beside it.
//
// The figures behind it (docs/benchmarks.md, "Deleting a tenant with a
// long history"): a batch of 1,000 events, with their bodies and attempts,
// held SQLite's write lock 80 ms, and other tenants' push p99 rose from 4
// to 78 ms while such batches ran back to back. Sized to about 5 ms of the
// lock each, but still back to back, they doubled the p99 at 1,000
// pushes/s, through the checkpoints of what they wrote; resting nine times
// as long as each batch took, the p99 rose from 11 to 16 ms.
package pace

import (
	"context"
	"time"
)

const (
	// Turn is how long a batch should hold the write lock.
	Turn = 5 * time.Millisecond
	// MinBatch and MaxBatch bound a batch's rows.
	MinBatch, MaxBatch = 10, 1000
	// Rest is how many times a batch's duration the next one waits.
	Rest = 9
	// MaxRest bounds a rest, should one batch have stalled on the disk.
	MaxRest = 450 * time.Millisecond
)

// Batches paces one run of batches. The zero value starts at 100 rows.
type Batches struct{ size int }

// Size is how many rows the next batch should take.
func (b *Batches) Size() int {
	if b.size == 0 {
		b.size = 100
	}
	return b.size
}

// Done records that the last batch deleted n rows in took (holding the
// lock), sizes the next one to take about Turn, and rests Rest times took
// before returning; it returns ctx's error if ctx ends first. A batch that
// came back short sizes nothing: it was the last, or it was cut short.
func (b *Batches) Done(ctx context.Context, n int, took time.Duration) error {
	if n == b.Size() && took > 0 {
		b.size = min(max(int(float64(b.size)*float64(Turn)/float64(took)), MinBatch), MaxBatch)
	}
	t := time.NewTimer(min(Rest*took, MaxRest))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run calls del, which deletes at most limit rows in one transaction and
// says how many, paced, until it deletes fewer than asked; it returns the
// rows deleted in all.
func Run(ctx context.Context, del func(limit int) (int, error)) (int, error) {
	var b Batches
	total := 0
	for {
		size := b.Size()
		start := time.Now()
		n, err := del(size)
		total += n
		if err != nil || n < size {
			return total, err
		}
		if err := b.Done(ctx, n, time.Since(start)); err != nil {
			return total, err
		}
	}
}
