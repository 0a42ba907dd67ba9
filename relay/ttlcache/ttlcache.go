// Package ttlcache keeps values read from the store for a short while, for
// hot paths whose answer may lag another replica's change by that while
// (a push's component keys, a send's authorization). Only successful
// loads are kept, so lookups of what does not exist (a stranger's guesses)
// cost a read each and hold no memory.
package ttlcache

import (
	"context"
	"sync"
	"time"
)

// Cache keeps values for TTL after they are loaded. The zero value is
// unusable: set TTL.
type Cache[K comparable, V any] struct {
	TTL time.Duration

	mu   sync.Mutex
	vals map[K]entry[V]
}

type entry[V any] struct {
	v  V
	at time.Time
}

// Get returns k's value, loaded with load when it is not kept or older
// than TTL.
func (c *Cache[K, V]) Get(ctx context.Context, k K, load func(context.Context, K) (V, error)) (V, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.vals[k]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < c.TTL {
		return e.v, nil
	}
	v, err := load(ctx, k)
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	if c.vals == nil {
		c.vals = map[K]entry[V]{}
	}
	c.vals[k] = entry[V]{v, now}
	c.mu.Unlock()
	return v, nil
}

// Forget drops the values match picks.
func (c *Cache[K, V]) Forget(match func(K, V) bool) {
	c.mu.Lock()
	for k, e := range c.vals {
		if match(k, e.v) {
			delete(c.vals, k)
		}
	}
	c.mu.Unlock()
}
