package ingress

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// TenantGetter loads a tenant with its secrets; tenant.Service is one.
type TenantGetter interface {
	Get(ctx context.Context, id tenant.ID) (*tenant.Tenant, error)
}

// receiver is a tenant ready to take pushes: its protocol settings turned
// into a wechat.Receiver once, not on every push.
type receiver struct {
	tenant   *tenant.Tenant
	receiver *wechat.Receiver
	format   wechat.Format // the tenant's configured format, for replies
	loadedAt time.Time
}

// receiverCache keeps receivers for a short time. Loading a tenant means a
// database read and opening its sealed secrets; at thousands of pushes a
// second that is worth sparing, and a second of staleness is harmless.
type receiverCache struct {
	tenants TenantGetter
	ttl     time.Duration
	now     func() time.Time

	mu sync.Mutex
	m  map[tenant.ID]*receiver
}

func newReceiverCache(tenants TenantGetter, ttl time.Duration, now func() time.Time) *receiverCache {
	return &receiverCache{tenants: tenants, ttl: ttl, now: now, m: map[tenant.ID]*receiver{}}
}

func (c *receiverCache) get(ctx context.Context, id tenant.ID) (*receiver, error) {
	now := c.now()
	c.mu.Lock()
	rc := c.m[id]
	c.mu.Unlock()
	if rc != nil && now.Sub(rc.loadedAt) < c.ttl {
		return rc, nil
	}
	t, err := c.tenants.Get(ctx, id)
	if err != nil {
		c.mu.Lock()
		delete(c.m, id) // a deleted tenant stops taking pushes at once
		c.mu.Unlock()
		return nil, err
	}
	rc, err = newReceiver(t, now)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.m[id] = rc
	c.mu.Unlock()
	return rc, nil
}

var modes = map[tenant.EncryptMode]wechat.Mode{
	tenant.EncryptPlaintext:  wechat.ModePlaintext,
	tenant.EncryptCompatible: wechat.ModeCompatible,
	tenant.EncryptSafe:       wechat.ModeSafe,
}

func newReceiver(t *tenant.Tenant, now time.Time) (*receiver, error) {
	mode, ok := modes[t.EncryptMode]
	if !ok {
		return nil, fmt.Errorf("tenant %s: unknown encrypt mode %d", t.ID, t.EncryptMode)
	}
	r := &wechat.Receiver{Token: t.Secrets.Token, Mode: mode, OriginalID: t.OriginalID}
	if mode != wechat.ModePlaintext {
		c, err := wechat.NewCipher(t.Secrets.EncodingAESKey, t.AppID)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: %w", t.ID, err)
		}
		r.Cipher = c
	}
	format := wechat.FormatXML
	if t.DataFormat == tenant.FormatJSON {
		format = wechat.FormatJSON
	}
	return &receiver{tenant: t, receiver: r, format: format, loadedAt: now}, nil
}
