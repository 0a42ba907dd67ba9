package delivery

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay"
)

const bkEndpoint = "https://hooks.example.com:443"

var (
	bkT0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

	bkOK         = relay.Attempt{HTTPStatus: 200}
	bk500        = relay.Attempt{HTTPStatus: 500, ErrorClass: relay.ErrorHTTPStatus}
	bk503        = relay.Attempt{HTTPStatus: 503, ErrorClass: relay.ErrorHTTPStatus}
	bk429        = relay.Attempt{HTTPStatus: 429, ErrorClass: relay.ErrorHTTPStatus}
	bk404        = relay.Attempt{HTTPStatus: 404, ErrorClass: relay.ErrorHTTPStatus}
	bk400        = relay.Attempt{HTTPStatus: 400, ErrorClass: relay.ErrorHTTPStatus}
	bk302        = relay.Attempt{HTTPStatus: 302, ErrorClass: relay.ErrorHTTPStatus}
	bkTimeout    = relay.Attempt{ErrorClass: relay.ErrorTimeout}
	bkConnect    = relay.Attempt{ErrorClass: relay.ErrorConnect}
	bkBlocked    = relay.Attempt{ErrorClass: relay.ErrorBlocked}
	bkRequestErr = relay.Attempt{ErrorClass: relay.ErrorRequest}
)

// newTestBreakers has threshold 3 and no jitter unless o says otherwise.
func newTestBreakers(o BreakerOptions) *Breakers {
	if o.Threshold == 0 {
		o.Threshold = 3
	}
	if o.Rand == nil {
		o.Rand = func() float64 { return 0 }
	}
	return NewBreakers(o)
}

// mustOpen reports n unhealthy attempts at now and checks the breaker opened.
func mustOpen(tb testing.TB, b *Breakers, endpoint string, now time.Time, n int) {
	tb.Helper()
	for range n {
		b.Report(endpoint, now, bk500)
	}
	if b.Allow(endpoint, now) {
		tb.Fatalf("Allow(%s) after %d failures = true, want false", endpoint, n)
	}
}

func TestBreakerOpensAfterThreshold(t *testing.T) {
	for _, tt := range []struct {
		name     string
		attempt  relay.Attempt
		wantOpen bool
	}{
		{"500", bk500, true},
		{"503", bk503, true},
		{"429", bk429, true},
		{"timeout", bkTimeout, true},
		{"connect", bkConnect, true},
		{"404 does not count", bk404, false},
		{"400 does not count", bk400, false},
		{"302 does not count", bk302, false},
		{"blocked does not count", bkBlocked, false},
		{"request error does not count", bkRequestErr, false},
		{"success", bkOK, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newTestBreakers(BreakerOptions{})
			for i := range 2 {
				b.Report(bkEndpoint, bkT0, tt.attempt)
				if !b.Allow(bkEndpoint, bkT0) {
					t.Fatalf("Allow after %d failures = false, want true", i+1)
				}
			}
			for range 10 {
				b.Report(bkEndpoint, bkT0, tt.attempt)
			}
			if got, want := !b.Allow(bkEndpoint, bkT0), tt.wantOpen; got != want {
				t.Errorf("open after 12 reports = %v, want %v", got, want)
			}
			wantUntil := time.Time{}
			if tt.wantOpen {
				wantUntil = bkT0.Add(30 * time.Second)
			}
			if got := b.OpenUntil(bkEndpoint, bkT0); !got.Equal(wantUntil) {
				t.Errorf("OpenUntil = %v, want %v", got, wantUntil)
			}
		})
	}
}

func TestBreakerFailuresMustBeConsecutive(t *testing.T) {
	for _, tt := range []struct {
		name     string
		between  relay.Attempt
		wantOpen bool
	}{
		{"a success resets", bkOK, false},
		{"a 4xx resets: the endpoint answered", bk404, false},
		{"a blocked attempt says nothing", bkBlocked, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newTestBreakers(BreakerOptions{})
			b.Report(bkEndpoint, bkT0, bkTimeout)
			b.Report(bkEndpoint, bkT0, bkConnect)
			b.Report(bkEndpoint, bkT0, tt.between)
			b.Report(bkEndpoint, bkT0, bk500)
			if got, want := !b.Allow(bkEndpoint, bkT0), tt.wantOpen; got != want {
				t.Errorf("open = %v, want %v", got, want)
			}
		})
	}
}

func TestBreakerCooldownGrows(t *testing.T) {
	b := newTestBreakers(BreakerOptions{})
	now := bkT0
	mustOpen(t, b, bkEndpoint, now, 3)
	for i, want := range []time.Duration{
		30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute,
		10 * time.Minute, 10 * time.Minute,
	} {
		until := b.OpenUntil(bkEndpoint, now)
		if got := until.Sub(now); got != want {
			t.Fatalf("cooldown %d = %v, want %v", i+1, got, want)
		}
		if b.Allow(bkEndpoint, until.Add(-time.Nanosecond)) {
			t.Fatalf("cooldown %d: Allow just before it ends = true, want false", i+1)
		}
		now = until
		if !b.Allow(bkEndpoint, now) {
			t.Fatalf("cooldown %d: Allow for the probe = false, want true", i+1)
		}
		b.Report(bkEndpoint, now, bkTimeout) // the probe fails
	}
}

func TestBreakerJitter(t *testing.T) {
	for _, r := range []float64{0, 0.5, 0.999} {
		t.Run(fmt.Sprint(r), func(t *testing.T) {
			b := newTestBreakers(BreakerOptions{Rand: func() float64 { return r }})
			mustOpen(t, b, bkEndpoint, bkT0, 3)
			got := b.OpenUntil(bkEndpoint, bkT0).Sub(bkT0)
			want := 30*time.Second - time.Duration(float64(30*time.Second)*0.2*r)
			if got != want {
				t.Errorf("cooldown = %v, want %v", got, want)
			}
			if got > 30*time.Second || got < 24*time.Second {
				t.Errorf("cooldown = %v, want within [24s, 30s]", got)
			}
		})
	}
}

func TestBreakerHalfOpenSingleProbe(t *testing.T) {
	b := newTestBreakers(BreakerOptions{ProbeTimeout: 20 * time.Second})
	mustOpen(t, b, bkEndpoint, bkT0, 3)
	after := bkT0.Add(30 * time.Second)

	// OpenUntil only asks: it does not take the probe.
	if got := b.OpenUntil(bkEndpoint, after); !got.IsZero() {
		t.Errorf("OpenUntil once cooled down = %v, want zero", got)
	}
	if got := b.OpenEndpoints(after); len(got) != 0 {
		t.Errorf("OpenEndpoints once cooled down = %v, want none", got)
	}

	// Many workers at once: exactly one probes.
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if b.Allow(bkEndpoint, after) {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if got, want := allowed.Load(), int32(1); got != want {
		t.Fatalf("probes allowed = %d, want %d", got, want)
	}
	if got, want := b.OpenUntil(bkEndpoint, after), after.Add(20*time.Second); !got.Equal(want) {
		t.Errorf("OpenUntil with a probe out = %v, want %v", got, want)
	}
	if got, want := b.OpenEndpoints(after)[bkEndpoint], after.Add(20*time.Second); !got.Equal(want) {
		t.Errorf("OpenEndpoints with a probe out = %v, want %s until %v", b.OpenEndpoints(after), bkEndpoint, want)
	}

	// A probe never reported frees its place after ProbeTimeout.
	later := after.Add(20 * time.Second)
	if !b.Allow(bkEndpoint, later) {
		t.Errorf("Allow after the probe timed out = false, want true")
	}
	if b.Allow(bkEndpoint, later) {
		t.Errorf("second Allow after the probe timed out = true, want false")
	}
}

func TestBreakerProbeOutcome(t *testing.T) {
	after := bkT0.Add(30 * time.Second)
	for _, tt := range []struct {
		name      string
		probe     relay.Attempt
		wantOpen  bool
		wantUntil time.Time // when wantOpen
	}{
		{"success closes", bkOK, false, time.Time{}},
		{"404 closes: the endpoint answered", bk404, false, time.Time{}},
		{"500 re-opens for longer", bk500, true, after.Add(time.Minute)},
		{"429 re-opens for longer", bk429, true, after.Add(time.Minute)},
		{"timeout re-opens for longer", bkTimeout, true, after.Add(time.Minute)},
		// An abandoned probe frees the place for another.
		{"abandoned probe frees the place", bkRequestErr, false, time.Time{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newTestBreakers(BreakerOptions{})
			mustOpen(t, b, bkEndpoint, bkT0, 3)
			if !b.Allow(bkEndpoint, after) {
				t.Fatal("Allow for the probe = false, want true")
			}
			b.Report(bkEndpoint, after, tt.probe)
			if got, want := !b.Allow(bkEndpoint, after), tt.wantOpen; got != want {
				t.Fatalf("open after the probe = %v, want %v", got, want)
			}
			if tt.wantOpen {
				if got := b.OpenUntil(bkEndpoint, after); !got.Equal(tt.wantUntil) {
					t.Errorf("OpenUntil = %v, want %v", got, tt.wantUntil)
				}
			}
		})
	}
}

func TestBreakerCloseResets(t *testing.T) {
	b := newTestBreakers(BreakerOptions{})
	now := bkT0
	mustOpen(t, b, bkEndpoint, now, 3)
	for range 3 { // three failed probes: 30s, 1m, 2m
		now = b.OpenUntil(bkEndpoint, now)
		b.Allow(bkEndpoint, now)
		b.Report(bkEndpoint, now, bk500)
	}
	now = b.OpenUntil(bkEndpoint, now)
	if !b.Allow(bkEndpoint, now) {
		t.Fatal("Allow for the probe = false, want true")
	}
	b.Report(bkEndpoint, now, bkOK)
	for i := range 5 {
		if !b.Allow(bkEndpoint, now) {
			t.Fatalf("Allow %d after closing = false, want true", i)
		}
	}
	// Its history is gone: two failures do not open it, the third opens
	// it for the first cooldown again.
	b.Report(bkEndpoint, now, bk500)
	b.Report(bkEndpoint, now, bk500)
	if !b.Allow(bkEndpoint, now) {
		t.Fatal("Allow after 2 new failures = false, want true")
	}
	b.Report(bkEndpoint, now, bk500)
	if got, want := b.OpenUntil(bkEndpoint, now), now.Add(30*time.Second); !got.Equal(want) {
		t.Errorf("OpenUntil = %v, want %v", got, want)
	}
}

func TestBreakerStragglersWhileOpen(t *testing.T) {
	b := newTestBreakers(BreakerOptions{})
	mustOpen(t, b, bkEndpoint, bkT0, 3)
	// Attempts that began before it opened end while it is open: failures
	// do not extend the cooldown; a success shows the endpoint is back.
	b.Report(bkEndpoint, bkT0.Add(time.Second), bkTimeout)
	if got, want := b.OpenUntil(bkEndpoint, bkT0.Add(time.Second)), bkT0.Add(30*time.Second); !got.Equal(want) {
		t.Errorf("OpenUntil after a straggling failure = %v, want %v", got, want)
	}
	b.Report(bkEndpoint, bkT0.Add(2*time.Second), bkOK)
	if !b.Allow(bkEndpoint, bkT0.Add(2*time.Second)) {
		t.Errorf("Allow after a straggling success = false, want true")
	}
}

func TestBreakerEndpointsIndependent(t *testing.T) {
	b := newTestBreakers(BreakerOptions{})
	other := "https://other.example.com:443"
	mustOpen(t, b, bkEndpoint, bkT0, 3)
	if !b.Allow(other, bkT0) {
		t.Errorf("Allow(other) = false, want true")
	}
	got := b.OpenEndpoints(bkT0)
	if len(got) != 1 || !got[bkEndpoint].Equal(bkT0.Add(30*time.Second)) {
		t.Errorf("OpenEndpoints = %v, want only %s until %v", got, bkEndpoint, bkT0.Add(30*time.Second))
	}
}

func TestBreakerForgetsIdleEndpoints(t *testing.T) {
	b := newTestBreakers(BreakerOptions{IdleTTL: time.Hour})
	b.Report("https://a.example:443", bkT0, bk500) // closed, one failure
	mustOpen(t, b, "https://b.example:443", bkT0, 3)
	b.Report("https://c.example:443", bkT0, bkOK) // never failed: nothing kept
	if got, want := b.size(), 2; got != want {
		t.Fatalf("endpoints kept = %d, want %d", got, want)
	}

	b.Allow("https://d.example:443", bkT0.Add(59*time.Minute)) // any call may sweep
	if got, want := b.size(), 2; got != want {
		t.Errorf("endpoints kept before IdleTTL = %d, want %d", got, want)
	}
	b.Allow("https://d.example:443", bkT0.Add(2*time.Hour))
	if got, want := b.size(), 0; got != want {
		t.Errorf("endpoints kept after IdleTTL = %d, want %d", got, want)
	}
	if got := b.OpenEndpoints(bkT0.Add(2 * time.Hour)); len(got) != 0 {
		t.Errorf("OpenEndpoints = %v, want none", got)
	}
}

func TestBreakerConcurrent(t *testing.T) {
	b := NewBreakers(BreakerOptions{})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 2000 {
				endpoint := fmt.Sprintf("https://h%d.example:443", (g+i)%7)
				now := bkT0.Add(time.Duration(i) * time.Second)
				if b.Allow(endpoint, now) {
					a := bk500
					if i%5 == 0 {
						a = bkOK
					}
					b.Report(endpoint, now, a)
				}
				if i%50 == 0 {
					b.OpenEndpoints(now)
					b.OpenUntil(endpoint, now)
				}
			}
		})
	}
	wg.Wait()
}

// size is the number of endpoints the registry remembers.
func (b *Breakers) size() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.endpoints)
}
