package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestSummarise(t *testing.T) {
	var sorted []time.Duration
	for i := 1; i <= 100; i++ {
		sorted = append(sorted, time.Duration(i)*time.Millisecond)
	}
	got := summarise(sorted)
	want := Latency{Min: time.Millisecond, Mean: 50500 * time.Microsecond, P50: 50 * time.Millisecond,
		P90: 90 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}
	if got != want {
		t.Errorf("summarise(1..100ms) = %+v, want %+v", got, want)
	}
	if got := summarise([]time.Duration{7}); got.P50 != 7 || got.P99 != 7 || got.Max != 7 || got.Min != 7 {
		t.Errorf("summarise of one = %+v", got)
	}
	if got := summarise(nil); got != (Latency{}) {
		t.Errorf("summarise(nil) = %+v", got)
	}
}

func TestMerge(t *testing.T) {
	a := &Result{Target: "u", Loop: "closed", Concurrency: 2, OK: 2, Failed: 1, Errors: map[string]int{"timeout": 1},
		ErrorSamples: map[string]string{"timeout": "t"}, Elapsed: time.Second, samples: []time.Duration{1, 3, 5}}
	b := &Result{Target: "u", Loop: "closed", Concurrency: 2, OK: 1, NotSent: 4, Errors: map[string]int{}, Elapsed: time.Second,
		Unprepared: 3, samples: []time.Duration{2}}
	m := Merge(a, b)
	if m.Sent != 4 || m.OK != 3 || m.Failed != 1 || m.NotSent != 4 || m.Errors["timeout"] != 1 || m.Unprepared != 3 ||
		m.Elapsed != 2*time.Second || m.Rate != 1.5 || m.Latency.Max != 5 || m.Latency.Min != 1 || m.Target != "u" {
		t.Errorf("Merge = %+v", m)
	}
	if a.samples[1] != 3 {
		t.Error("Merge reordered a round's samples")
	}
}

func TestErrorKind(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{statusError(503), "http_503"},
		{context.DeadlineExceeded, "timeout"},
		{&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, "timeout"},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, "refused"},
		{fmt.Errorf("write: %w", syscall.ECONNRESET), "reset"},
		{io.ErrUnexpectedEOF, "eof"},
		{syscall.EADDRNOTAVAIL, "no_local_port"},
		{syscall.EMFILE, "too_many_files"},
		{errors.New("odd"), "other"},
	} {
		if got := errorKind(tt.err); got != tt.want {
			t.Errorf("errorKind(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
