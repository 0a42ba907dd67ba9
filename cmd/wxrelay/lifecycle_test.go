package main

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLifecycleOrder: parts stop stage by stage (serving, working,
// writing), each stage undoing its parts in the reverse of their start,
// once however often stop is called, and a part that fails to stop is
// logged while the others still stop.
func TestLifecycleOrder(t *testing.T) {
	var logs strings.Builder
	lc := newLifecycle(slog.New(slog.NewTextHandler(&logs, nil)), time.Second)
	var order []string
	step := func(name string) func(context.Context) error {
		return func(context.Context) error { order = append(order, name); return nil }
	}
	// Registered as serve starts them: resources first, servers last.
	lc.onStop(stopWriting, "database", step("database"))
	lc.onStop(stopWriting, "ingest writer", step("ingest writer"))
	lc.onStop(stopWorking, "delivery", step("delivery"))
	lc.onStop(stopWorking, "jobs", func(context.Context) error { order = append(order, "jobs"); return errors.New("scheduler stuck") })
	lc.onStop(stopServing, "gRPC", step("gRPC"))
	lc.onStop(stopServing, "HTTP", step("HTTP"))
	lc.stop()
	lc.stop()
	want := []string{"HTTP", "gRPC", "jobs", "delivery", "ingest writer", "database"}
	if !slices.Equal(order, want) {
		t.Errorf("stopped in the order %v, want %v", order, want)
	}
	if !strings.Contains(logs.String(), "stopping jobs") || !strings.Contains(logs.String(), "scheduler stuck") {
		t.Errorf("the failing part was not logged:\n%s", logs.String())
	}
}
