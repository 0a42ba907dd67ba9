package tenant

import (
	"context"
	"sync"
	"time"
)

// Getter reads one tenant with its secrets; Service is one.
type Getter interface {
	Get(ctx context.Context, id ID) (*Tenant, error)
}

// Cache keeps tenants read through a Getter for a short time. The push path
// and delivery read a tenant for every event; at thousands of events a
// second a database read and the opening of sealed secrets each time are
// worth sparing, and a second of staleness is harmless: a change made
// through another replica applies within the TTL.
type Cache struct {
	getter Getter
	ttl    time.Duration
	now    func() time.Time

	mu sync.Mutex
	m  map[ID]cachedTenant
}

type cachedTenant struct {
	t        *Tenant
	loadedAt time.Time
}

// NewCache returns a cache over g. now may be nil for time.Now.
func NewCache(g Getter, ttl time.Duration, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	return &Cache{getter: g, ttl: ttl, now: now, m: map[ID]cachedTenant{}}
}

// Get returns the tenant, read again once its entry is older than the TTL.
// The returned tenant is shared: callers must not modify it. A tenant that
// was deleted is forgotten at once (ErrNotFound).
func (c *Cache) Get(ctx context.Context, id ID) (*Tenant, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if ok && now.Sub(e.loadedAt) < c.ttl {
		return e.t, nil
	}
	t, err := c.getter.Get(ctx, id)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		delete(c.m, id)
		return nil, err
	}
	c.m[id] = cachedTenant{t: t, loadedAt: now}
	return t, nil
}
