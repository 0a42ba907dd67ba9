package ingress

import (
	"context"
	"fmt"
	"sync"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// receiver is a tenant ready to take pushes: its protocol settings turned
// into a wechat.Receiver once, not on every push.
type receiver struct {
	tenant   *tenant.Tenant
	receiver *wechat.Receiver
	format   wechat.Format // the tenant's configured format, for replies
}

// receivers builds receivers from cached tenants, and builds one again only
// when the cache hands out a tenant it has read anew.
type receivers struct {
	tenants *tenant.Cache

	mu    sync.Mutex
	built map[tenant.ID]*receiver
}

func newReceivers(tenants *tenant.Cache) *receivers {
	return &receivers{tenants: tenants, built: map[tenant.ID]*receiver{}}
}

func (rs *receivers) get(ctx context.Context, id tenant.ID) (*receiver, error) {
	t, err := rs.tenants.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	rs.mu.Lock()
	rc := rs.built[id]
	rs.mu.Unlock()
	if rc != nil && rc.tenant == t {
		return rc, nil
	}
	if rc, err = newReceiver(t); err != nil {
		return nil, err
	}
	rs.mu.Lock()
	rs.built[id] = rc
	rs.mu.Unlock()
	return rc, nil
}

var modes = map[tenant.EncryptMode]wechat.Mode{
	tenant.EncryptPlaintext:  wechat.ModePlaintext,
	tenant.EncryptCompatible: wechat.ModeCompatible,
	tenant.EncryptSafe:       wechat.ModeSafe,
}

func newReceiver(t *tenant.Tenant) (*receiver, error) {
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
	return &receiver{tenant: t, receiver: r, format: format}, nil
}
