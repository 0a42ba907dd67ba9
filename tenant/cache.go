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

// Cache keeps tenants read through a Getter. The push path and delivery
// read a tenant for every event; at thousands of events a second a
// database read and the opening of sealed secrets each time are worth
// sparing.
//
// A change must not wait for the TTL: a tenant that rotates its webhook
// secret and then switches its verifier rejects deliveries signed with the
// old one. So entries are forgotten when a tenant changes: at once for a
// change made through this process's Service (Service.OnChange), and on
// notice from the database for a change made by another replica
// (store.DB.WatchTenants). The TTL only bounds how long a missed notice can
// leave an entry stale.
type Cache struct {
	getter Getter
	ttl    time.Duration
	now    func() time.Time

	mu sync.Mutex
	m  map[ID]cachedTenant
	// gen counts Forget and ForgetAll calls. A read that started before
	// one of them may have fetched the old tenant, so Get stores what it
	// read only if gen has not moved meanwhile.
	gen uint64
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

// Get returns the tenant, read again once its entry is older than the TTL
// or was forgotten. The returned tenant is shared: callers must not modify
// it. A tenant that was deleted is forgotten at once (ErrNotFound).
func (c *Cache) Get(ctx context.Context, id ID) (*Tenant, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[id]
	gen := c.gen
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
	if c.gen == gen {
		c.m[id] = cachedTenant{t: t, loadedAt: now}
	}
	return t, nil
}

// Forget drops the entry of tenant id, so that the next Get reads it anew.
func (c *Cache) Forget(id ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
	c.gen++
}

// ForgetAll drops every entry: for when notices of changes may have been
// missed, as when the connection that carries them was lost.
func (c *Cache) ForgetAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
	c.gen++
}

// APIKeyHash returns tenant id's current API key hash from the cache:
// Authenticator.Precheck asks it (see SetKeyCache). ErrNotFound.
func (c *Cache) APIKeyHash(ctx context.Context, id ID) ([]byte, error) {
	t, err := c.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return t.APIKeyHash, nil
}
