package ingress

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// receiver is a tenant ready to take pushes: its protocol settings turned
// into a wechat.Receiver once, not on every push.
type receiver struct {
	tenant   *tenant.Tenant
	receiver *wechat.Receiver
	format   wechat.Format // the tenant's configured format, for replies
	// withPrevious is receiver, then one with the push Token and
	// EncodingAESKey in use before the last change, accepted until the
	// tenant's Secrets.PreviousUntil; just receiver when there are none.
	// Built once, like receiver, so that a push allocates nothing for it.
	withPrevious []*wechat.Receiver
	// component is the component whose keys receiver holds, for a tenant
	// of a component; nil otherwise.
	component *tenant.Component
}

// receiversAt returns the receivers to try at now: the current one, then
// the previous one while its grace period lasts.
func (rc *receiver) receiversAt(now time.Time) []*wechat.Receiver {
	if rc.tenant.Secrets.PreviousInForce(now) {
		return rc.withPrevious
	}
	return rc.withPrevious[:1]
}

// receivers builds receivers from cached tenants, and builds one again only
// when the cache hands out a tenant it has read anew.
type receivers struct {
	tenants *tenant.Cache
	// ofComponent builds the receiver of a component's tenant; it reads
	// the component through a short-lived cache.
	ofComponent func(context.Context, *tenant.Tenant) (*receiver, error)

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
	if t.ComponentID != "" {
		// Built anew whenever the cached component was read anew.
		return rs.ofComponent(ctx, t)
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

// forget drops what is known of tenant id: its cached tenant and its
// receivers, which hold its decrypted push secrets.
func (rs *receivers) forget(id tenant.ID) {
	rs.tenants.Forget(id)
	rs.mu.Lock()
	delete(rs.built, id)
	rs.mu.Unlock()
}

// forgetComponent drops the receivers holding component id's keys.
func (rs *receivers) forgetComponent(id tenant.ComponentID) {
	rs.mu.Lock()
	for tid, rc := range rs.built {
		if rc.component != nil && rc.component.ID == id {
			delete(rs.built, tid)
		}
	}
	rs.mu.Unlock()
}

// forgetAll drops every receiver, for when notices of changes may have
// been missed.
func (rs *receivers) forgetAll() {
	rs.mu.Lock()
	clear(rs.built)
	rs.mu.Unlock()
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
	r, err := newWeChatReceiver(t, mode, t.Secrets.Token, t.Secrets.EncodingAESKey)
	if err != nil {
		return nil, err
	}
	format := wechat.FormatXML
	if t.DataFormat == tenant.FormatJSON {
		format = wechat.FormatJSON
	}
	rc := &receiver{tenant: t, receiver: r, format: format, withPrevious: []*wechat.Receiver{r}}
	if s := t.Secrets; !s.PreviousUntil.IsZero() && s.PreviousToken != "" {
		// A previous key that makes no cipher in today's mode (the
		// tenant was plaintext before) has nothing to accept.
		if prev, err := newWeChatReceiver(t, mode, s.PreviousToken, s.PreviousEncodingAESKey); err == nil {
			rc.withPrevious = append(rc.withPrevious, prev)
		}
	}
	return rc, nil
}

func newWeChatReceiver(t *tenant.Tenant, mode wechat.Mode, token, aesKey string) (*wechat.Receiver, error) {
	r := &wechat.Receiver{Token: token, Mode: mode, OriginalID: t.OriginalID}
	if mode != wechat.ModePlaintext {
		c, err := wechat.NewCipher(aesKey, t.AppID)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: %w", t.ID, err)
		}
		r.Cipher = c
	}
	return r, nil
}
