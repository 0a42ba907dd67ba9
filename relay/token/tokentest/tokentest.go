// Package tokentest helps tests and benchmarks of token keepers run hours
// of a fake clock: a Pacer moves the clock as a keeper's pacing sleeps,
// once WeChat has answered the fetches started, and the measures the
// benchmarks report (live heap, resident memory, peaks).
package tokentest

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
)

// Pacer is a keeper's Sleep (token.Options.Sleep) on a fake clock shared
// with wxsim. The WeChat client counts each fetch it starts (Started);
// RefreshDue sleeps before each fetch but its first, so at its k-th sleep
// k fetches have been started, and the Pacer waits (at most a second of
// real time, in case one needed no call) until WeChat has answered them
// before it moves the clock: wxsim then records each fetch at the
// simulated moment it was made, as it would on a real clock.
type Pacer struct {
	Clock   *clockwork.FakeClock
	started atomic.Int64
	base    int64 // started when the run began
	sleeps  int64 // Sleep calls in this run
}

// Started counts one fetch answered; call it deferred in the client's
// fetch method.
func (p *Pacer) Started() { p.started.Add(1) }

// BeginRun starts counting a RefreshDue run's fetches.
func (p *Pacer) BeginRun() { p.base, p.sleeps = p.started.Load(), 0 }

// Sleep is the keeper's Sleep.
func (p *Pacer) Sleep(ctx context.Context, d time.Duration) error {
	p.sleeps++
	for deadline := time.Now().Add(time.Second); p.started.Load()-p.base < p.sleeps && time.Now().Before(deadline); {
		time.Sleep(50 * time.Microsecond)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p.Clock.Advance(d)
	return nil
}

// MaxValue is the largest value of m, 0 for an empty m.
func MaxValue(m map[int64]int) int {
	most := 0
	for _, v := range m {
		most = max(most, v)
	}
	return most
}

// LiveHeap is the heap in use after a full collection.
func LiveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// RSS is this process's resident set size, from /proc/self/status; 0
// where there is none.
func RSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// EveryMinute calls run once a minute of clock until end, as serve's
// keeper jobs do (a run still going when the next is due delays it, as
// gocron's singleton mode does), and reports how many runs there were
// and the longest, in simulated time.
func EveryMinute(clock *clockwork.FakeClock, end time.Time, run func()) (runs int, longest time.Duration) {
	for clock.Now().Before(end) {
		began := clock.Now()
		run()
		runs++
		longest = max(longest, clock.Now().Sub(began))
		next := began.Add(time.Minute)
		for !next.After(clock.Now()) {
			next = next.Add(time.Minute)
		}
		clock.Advance(next.Sub(clock.Now()))
	}
	return runs, longest
}
