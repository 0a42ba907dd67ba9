package delivery

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/wxrelay/wxrelay/relay"
)

// BreakerOptions tune Breakers; zero fields take the defaults.
type BreakerOptions struct {
	// Threshold is the number of consecutive unhealthy attempts that opens
	// an endpoint (default 5).
	Threshold int
	// Cooldown is how long an endpoint stays open the first time (default
	// 30 s); it doubles each time a probe fails, up to MaxCooldown
	// (default 10 min).
	Cooldown    time.Duration
	MaxCooldown time.Duration
	// Jitter is the largest fraction of a cooldown taken off at random, so
	// that endpoints opened together do not all probe at once (default
	// 0.2; at most 1).
	Jitter float64
	// ProbeTimeout is how long the one probe allowed after a cooldown holds
	// the endpoint before another may go, in case its outcome is never
	// reported (default 30 s: longer than an attempt).
	ProbeTimeout time.Duration
	// IdleTTL is how long an endpoint with no news is remembered (default
	// 1 h): a closed one's count of recent failures, an open one's
	// cooldown once it has passed.
	IdleTTL time.Duration
	// Rand returns a number in [0, 1) for the jitter (default
	// math/rand/v2.Float64). It must be safe for concurrent use.
	Rand func() float64
}

// Breakers is a registry of per-endpoint circuit breakers. An endpoint is
// whatever key the caller names, compared as a string: the Dispatcher's is
// a tenant and its webhook URL (see endpoint), so that one tenant's
// failing handler never holds up another's deliveries on the same host.
//
// After Threshold consecutive unhealthy attempts (timeouts, connection
// failures, 5xx and 429 answers) an endpoint opens: Allow refuses it for a
// cooldown. Then it is half-open: Allow lets one probe through and refuses
// the rest until the probe is reported. A healthy probe closes the endpoint
// and forgets its history; an unhealthy one opens it again for twice as
// long. Any other answer (2xx, 3xx, a 4xx other than 429) counts as healthy: the
// endpoint answered, so whatever went wrong was the request's fault. A
// blocked or unmade request says nothing about the endpoint.
//
// Time is passed in. Breakers are safe for concurrent use, and hold
// memory only for endpoints that failed lately.
type Breakers struct {
	o BreakerOptions

	mu        sync.Mutex
	endpoints map[string]*breaker // only those with failures or open
	open      map[string]*breaker // those with openUntil set: OpenEndpoints
	lastSweep time.Time
}

// breaker is one endpoint's state. Closed: openUntil is zero. Open: now is
// before openUntil. Half-open: openUntil has passed; a probe is out while
// now is before probeUntil.
type breaker struct {
	failures   int // consecutive unhealthy attempts while closed
	opens      int // failed probes since it first opened: the cooldown's doubling
	openUntil  time.Time
	probeUntil time.Time
	seen       time.Time // the last Allow or Report
}

// NewBreakers returns an empty registry.
func NewBreakers(o BreakerOptions) *Breakers {
	if o.Threshold <= 0 {
		o.Threshold = 5
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&o.Cooldown, 30 * time.Second}, {&o.MaxCooldown, 10 * time.Minute},
		{&o.ProbeTimeout, 30 * time.Second}, {&o.IdleTTL, time.Hour},
	} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	o.MaxCooldown = max(o.MaxCooldown, o.Cooldown)
	if o.Jitter <= 0 {
		o.Jitter = 0.2
	}
	o.Jitter = min(o.Jitter, 1)
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	return &Breakers{
		o:         o,
		endpoints: map[string]*breaker{},
		open:      map[string]*breaker{},
	}
}

// Allow reports whether an attempt to endpoint may go now. When it lets
// the probe of a half-open endpoint through, that attempt must be
// reported: other attempts are refused until it is, or until ProbeTimeout.
// Use OpenUntil to ask without taking the probe.
func (b *Breakers) Allow(endpoint string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sweepLocked(now)
	br := b.endpoints[endpoint]
	if br == nil {
		return true
	}
	br.seen = now
	if !br.refusedUntil(now).IsZero() {
		return false
	}
	if !br.openUntil.IsZero() { // half-open: this is the probe
		br.probeUntil = now.Add(b.o.ProbeTimeout)
	}
	return true
}

// OpenUntil reports when endpoint may be tried again if Allow would refuse
// it now: the end of its cooldown, or of the probe in flight. It is zero
// when Allow would say yes. It changes nothing.
func (b *Breakers) OpenUntil(endpoint string, now time.Time) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	br := b.endpoints[endpoint]
	if br == nil {
		return time.Time{}
	}
	return br.refusedUntil(now)
}

// OpenEndpoints lists the endpoints Allow would refuse now, with the time
// each may be tried again. Its cost grows with the open endpoints only.
func (b *Breakers) OpenEndpoints(now time.Time) map[string]time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := make(map[string]time.Time, len(b.open))
	for ep, br := range b.open {
		if until := br.refusedUntil(now); !until.IsZero() {
			m[ep] = until
		}
	}
	return m
}

// Report records the outcome of an attempt to endpoint, made or finished
// at now. Every attempt Allow let through should be reported; one that
// was abandoned (relay.ErrorRequest) frees a probe without a verdict.
func (b *Breakers) Report(endpoint string, now time.Time, a relay.Attempt) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sweepLocked(now)
	br := b.endpoints[endpoint]
	switch judge(a) {
	case healthy:
		if br != nil { // close, and forget the history
			delete(b.endpoints, endpoint)
			delete(b.open, endpoint)
		}
	case neutral:
		if br != nil {
			br.seen = now
			br.probeUntil = time.Time{}
		}
	case unhealthy:
		if br == nil {
			br = &breaker{}
			b.endpoints[endpoint] = br
		}
		br.seen = now
		switch {
		case br.openUntil.IsZero(): // closed
			if br.failures++; br.failures >= b.o.Threshold {
				b.openLocked(endpoint, br, now)
			}
		case !now.Before(br.openUntil): // half-open: the probe failed
			br.opens++
			b.openLocked(endpoint, br, now)
		default:
			// Open already: an attempt that started before it opened.
		}
	}
}

func (b *Breakers) openLocked(endpoint string, br *breaker, now time.Time) {
	br.failures = 0
	br.openUntil = now.Add(b.cooldown(br.opens))
	br.probeUntil = time.Time{}
	b.open[endpoint] = br
}

// cooldown is Cooldown doubled n times, at most MaxCooldown, less jitter.
func (b *Breakers) cooldown(n int) time.Duration {
	d := b.o.Cooldown
	for ; n > 0 && d < b.o.MaxCooldown; n-- {
		d *= 2
	}
	d = min(d, b.o.MaxCooldown)
	return d - time.Duration(float64(d)*b.o.Jitter*b.o.Rand())
}

// sweepLocked forgets endpoints with no news for IdleTTL, at most once a
// tenth of IdleTTL, so that memory follows the endpoints failing lately.
func (b *Breakers) sweepLocked(now time.Time) {
	if now.Sub(b.lastSweep) < b.o.IdleTTL/10 {
		return
	}
	b.lastSweep = now
	for ep, br := range b.endpoints {
		last := br.seen
		if br.openUntil.After(last) {
			last = br.openUntil
		}
		if br.probeUntil.After(last) {
			last = br.probeUntil
		}
		if now.Sub(last) > b.o.IdleTTL {
			delete(b.endpoints, ep)
			delete(b.open, ep)
		}
	}
}

// refusedUntil is when the endpoint may be tried again, zero if now.
func (br *breaker) refusedUntil(now time.Time) time.Time {
	switch {
	case br.openUntil.IsZero():
		return time.Time{} // closed
	case now.Before(br.openUntil):
		return br.openUntil // open
	case now.Before(br.probeUntil):
		return br.probeUntil // half-open, probe out
	}
	return time.Time{} // half-open, probe free
}

// verdict is what an attempt says about its endpoint's health.
type verdict int

const (
	neutral   verdict = iota // nothing: blocked, or never sent
	healthy                  // the endpoint answered
	unhealthy                // it did not answer, or answered that it is failing or overloaded
)

func judge(a relay.Attempt) verdict {
	switch a.ErrorClass {
	case "":
		return healthy
	case relay.ErrorTimeout, relay.ErrorConnect:
		return unhealthy
	case relay.ErrorHTTPStatus:
		if a.HTTPStatus == 429 || a.HTTPStatus >= 500 {
			return unhealthy
		}
		return healthy
	}
	return neutral
}
