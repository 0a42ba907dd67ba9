// Package perkey keeps a token bucket per key, such as a tenant: made on
// the key's first call, and dropped once it has filled again (a full
// bucket is what a new one would be), so that the memory follows the keys
// calling now rather than every key that ever called.
package perkey

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiters is a bucket of burst tokens per key, refilled at a rate. It is
// safe for concurrent use.
type Limiters[K comparable] struct {
	rate  rate.Limit
	burst int

	mu        sync.Mutex
	buckets   map[K]*rate.Limiter
	lastSweep time.Time
}

// New returns limiters of burst tokens refilled at perSecond.
func New[K comparable](perSecond float64, burst int) *Limiters[K] {
	return &Limiters[K]{rate: rate.Limit(perSecond), burst: burst, buckets: map[K]*rate.Limiter{}}
}

// Take spends one of k's tokens at now, or says how long until one is
// there, spending none.
func (l *Limiters[K]) Take(k K, now time.Time) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b := l.buckets[k]
	if b == nil {
		b = rate.NewLimiter(l.rate, l.burst)
		l.buckets[k] = b
	}
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 || !r.OK() {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// sweep drops the buckets that filled again, at most once per time a
// bucket takes to fill, so that a sweep's cost is spread over the calls.
// l.mu must be held.
func (l *Limiters[K]) sweep(now time.Time) {
	if l.rate <= 0 {
		return
	}
	full := time.Duration(float64(l.burst) / float64(l.rate) * float64(time.Second))
	if now.Sub(l.lastSweep) < full {
		return
	}
	l.lastSweep = now
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
}

// Forget drops k's bucket: it starts full on its next call.
func (l *Limiters[K]) Forget(k K) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.buckets, k)
}

// Len is how many keys hold a bucket now.
func (l *Limiters[K]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
