package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/store/storetest"
)

// TestJobs_ExclusiveRunOnOneReplica starts two schedulers on one database,
// as two replicas do: an exclusive job runs on one of them, the others on
// both, and a stopped replica hands its exclusive jobs on at once.
func TestJobs_ExclusiveRunOnOneReplica(t *testing.T) {
	storetest.EachDSN(t, func(t *testing.T, dsn string) {
		var exclusive, each atomic.Int32
		jobs := []job{
			{name: "exclusive", every: time.Hour, exclusive: true, run: func(context.Context) error { exclusive.Add(1); return nil }},
			{name: "each", every: time.Hour, run: func(context.Context) error { each.Add(1); return nil }},
		}
		start := func() *scheduler {
			s, err := startJobs(context.Background(), slog.New(slog.NewTextHandler(t.Output(), nil)), storetest.MustOpen(t, dsn), nil, jobs...)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		waitFor := func(what string, n *atomic.Int32, want int32) {
			t.Helper()
			for deadline := time.Now().Add(10 * time.Second); n.Load() < want; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%s ran %d times, want %d", what, n.Load(), want)
				}
			}
		}

		a, b := start(), start()
		waitFor("each", &each, 2)
		waitFor("exclusive", &exclusive, 1)
		// Both stop scheduling before either releases its locks, so that
		// a late first try cannot slip in between.
		for _, s := range []*scheduler{a, b} {
			if err := s.Shutdown(); err != nil {
				t.Fatal(err)
			}
		}
		if n := exclusive.Load(); n != 1 {
			t.Fatalf("exclusive job ran %d times on two replicas started together, want once", n)
		}
		for _, s := range []*scheduler{a, b} {
			if err := s.locker.Release(context.Background()); err != nil {
				t.Fatal(err)
			}
		}

		// Whichever ran it released its hold when it stopped.
		c := start()
		defer c.stop()
		waitFor("exclusive after a replica stopped", &exclusive, 2)
	})
}
