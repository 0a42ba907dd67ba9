package load

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// WriteText writes r for people:
//
//	target   http://127.0.0.1:8080/wx/t1 (closed loop, concurrency 64)
//	pushes   41234 sent, 41234 ok, 0 failed in 10.00s
//	rate     4123.4 pushes/s
//	latency  p50 14.9ms  p90 18.2ms  p99 25.0ms  max 61.3ms  mean 15.5ms
func (r *Result) WriteText(w io.Writer) {
	r.writeText(w, "")
}

func (r *Result) writeText(w io.Writer, indent string) {
	loop := fmt.Sprintf("closed loop, concurrency %d", r.Concurrency)
	if r.Loop == "open" {
		loop = fmt.Sprintf("open loop at %g pushes/s, at most %d in flight", r.TargetRate, r.Concurrency)
	}
	fmt.Fprintf(w, "%starget   %s (%s)\n", indent, r.Target, loop)
	fmt.Fprintf(w, "%spushes   %d sent, %d ok, %d failed", indent, r.Sent, r.OK, r.Failed)
	if r.NotSent > 0 {
		fmt.Fprintf(w, ", %d not sent (no free worker before the drain time ran out)", r.NotSent)
	}
	fmt.Fprintf(w, " in %.2fs\n", r.Elapsed.Seconds())
	for _, kind := range slices.Sorted(maps.Keys(r.Errors)) {
		fmt.Fprintf(w, "%serror    %s: %d (first: %s)\n", indent, kind, r.Errors[kind], r.ErrorSamples[kind])
	}
	fmt.Fprintf(w, "%srate     %.1f pushes/s\n", indent, r.Rate)
	fmt.Fprintf(w, "%slatency  %s\n", indent, r.Latency)
	if r.Unprepared > 0 {
		fmt.Fprintf(w, "%swarning  %d pushes were encrypted during the run, which may have slowed it: prepare more\n", indent, r.Unprepared)
	}
}

// String formats l on one line: "p50 14.9ms  p90 18.2ms  p99 25.0ms  max 61.3ms  mean 15.5ms".
func (l Latency) String() string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  mean %s",
		fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.Max), fmtDur(l.Mean))
}

// fmtDur writes d in milliseconds with a precision that suits it.
func fmtDur(d time.Duration) string {
	m := ms(d)
	switch {
	case m < 1:
		return fmt.Sprintf("%.3fms", m)
	case m < 100:
		return fmt.Sprintf("%.1fms", m)
	}
	return fmt.Sprintf("%.0fms", m)
}

// WriteText writes c for people: the rate of each round, each target's
// merged result, and the ratio.
func (c *Comparison) WriteText(w io.Writer) {
	for i, r := range c.Rounds {
		fmt.Fprintf(w, "round %d  relay %.1f pushes/s  bare %.1f pushes/s\n", i+1, r.RelayRate, r.BareRate)
	}
	fmt.Fprintln(w, "\nrelay:")
	c.Relay.writeText(w, "  ")
	fmt.Fprintln(w, "bare:")
	c.Bare.writeText(w, "  ")
	fmt.Fprintf(w, "\nrelay/bare  %.3f (%.1f / %.1f pushes/s)\n", c.Ratio, c.Relay.Rate, c.Bare.Rate)
	if c.Relay.Loop == "open" {
		fmt.Fprintln(w, strings.TrimSpace(`
note: in an open loop both targets are offered the same rate, so the ratio
only shows whether the relay kept up; compare the latencies instead.`))
	}
}
