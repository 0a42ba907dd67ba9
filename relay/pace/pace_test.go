package pace

import (
	"context"
	"testing"
	"time"
)

func TestBatchesSizeFollowsTheTimeTaken(t *testing.T) {
	ctx := context.Background()
	var b Batches
	if got := b.Size(); got != 100 {
		t.Fatalf("first size = %d, want 100", got)
	}
	for _, c := range []struct {
		n    int
		took time.Duration
		want int
	}{
		{100, 10 * time.Microsecond, MaxBatch},  // quick: as large as allowed
		{MaxBatch, 10 * time.Millisecond, 500},  // twice the turn: half
		{500, 5 * time.Millisecond, 500},        // on the turn: kept
		{500, 5 * time.Second / 1000 * 100, 10}, // a stall: the least
		{3, time.Millisecond, 10},               // a short batch sizes nothing
	} {
		if err := b.Done(ctx, c.n, c.took); err != nil {
			t.Fatal(err)
		}
		if got := b.Size(); got != c.want {
			t.Errorf("after %d rows in %v: size %d, want %d", c.n, c.took, got, c.want)
		}
	}
}

func TestBatchesRestAndStop(t *testing.T) {
	var b Batches
	start := time.Now()
	if err := b.Done(context.Background(), b.Size(), 2*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if rested := time.Since(start); rested < Rest*2*time.Millisecond {
		t.Errorf("rested %v after a 2 ms batch, want at least %v", rested, Rest*2*time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Done(ctx, b.Size(), time.Second); err != context.Canceled {
		t.Errorf("Done on an ended context = %v, want context.Canceled", err)
	}
}
