package ingress

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/wxrelay/wxrelay/relay/ttlcache"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// A third-party platform's (a component's) message URL,
// /wxc/{id}/{appid}: WeChat pushes every authorizer's customer-service
// messages there, with $APPID$ in the configured URL replaced by the
// authorizer's appid, in safe mode and XML, signed with the component's
// Token and sealed with its key for its appid (protocol §9). The push is
// routed to the tenant bound to that appid, and from there it is a push
// like any other: durable before success, de-duplicated, delivered.

// Components reads what the message URL needs: the component's keys, and
// which tenant an appid is. *store.ComponentStore and *store.TenantStore
// together are one (ComponentLookup).
type Components interface {
	FindComponent(ctx context.Context, id tenant.ComponentID) (*tenant.Component, error)
	IDByAppID(ctx context.Context, appid string) (tenant.ID, error)
}

// ComponentLookup joins the two stores a Components reads.
type ComponentLookup struct {
	Components interface {
		FindComponent(ctx context.Context, id tenant.ComponentID) (*tenant.Component, error)
	}
	Tenants interface {
		IDByAppID(ctx context.Context, appid string) (tenant.ID, error)
	}
}

func (l ComponentLookup) FindComponent(ctx context.Context, id tenant.ComponentID) (*tenant.Component, error) {
	return l.Components.FindComponent(ctx, id)
}

func (l ComponentLookup) IDByAppID(ctx context.Context, appid string) (tenant.ID, error) {
	return l.Tenants.IDByAppID(ctx, appid)
}

// componentTTL is how long a component, or an appid's tenant, is used as
// read: a change on another replica applies within it (on this one at
// once, through ForgetComponent and Forget).
const componentTTL = 2 * time.Second

// componentKeys is the component part of a Handler.
type componentKeys struct {
	lookup     Components
	components ttlcache.Cache[tenant.ComponentID, *tenant.Component]
	appids     ttlcache.Cache[string, tenant.ID]
}

// ForgetComponent drops what the handler holds of component id, with its
// keys: wire it to component changes.
func (h *Handler) ForgetComponent(id tenant.ComponentID) {
	h.comps.components.Forget(func(k tenant.ComponentID, _ *tenant.Component) bool { return k == id })
	h.receivers.forgetComponent(id)
}

// ServeComponent serves POST (and GET) /wxc/{id}/{appid}. An appid with
// no tenant, or whose tenant is not this component's, is 404 and nothing
// is stored.
func (h *Handler) ServeComponent(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	outcome := h.serveComponent(w, r)
	h.metrics.observe(outcome, time.Since(start))
}

func (h *Handler) serveComponent(w http.ResponseWriter, r *http.Request) string {
	if r.Method == http.MethodPost {
		w.Header().Set("Connection", "close")
	}
	if h.comps.lookup == nil {
		http.NotFound(w, r)
		return "unknown_tenant"
	}
	cid, appid := tenant.ComponentID(r.PathValue("id")), r.PathValue("appid")
	if !tenant.ValidComponentID(cid) || !tenant.ValidAppID(appid) {
		http.Error(w, "unknown component or appid", http.StatusNotFound)
		return "unknown_tenant"
	}
	ctx, cancel := context.WithTimeout(r.Context(), answerDeadline)
	defer cancel()
	tid, err := h.comps.appids.Get(ctx, appid, h.comps.lookup.IDByAppID)
	if errors.Is(err, tenant.ErrNotFound) {
		http.Error(w, "no tenant of this component for this appid", http.StatusNotFound)
		return "unknown_tenant"
	} else if err != nil {
		h.log.ErrorContext(ctx, "component push: find the appid's tenant", "component", cid, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return "error"
	}
	return h.serveTenant(ctx, w, r, tid, cid)
}

// componentReceiver builds the receiver of tenant t of a component: the
// component's Token, and a cipher with its key for its appid.
func (h *Handler) componentReceiver(ctx context.Context, t *tenant.Tenant) (*receiver, error) {
	c, err := h.comps.components.Get(ctx, t.ComponentID, h.comps.lookup.FindComponent)
	if err != nil {
		return nil, err
	}
	cipher, err := wechat.NewCipher(c.Secrets.EncodingAESKey, c.AppID)
	if err != nil {
		return nil, err
	}
	r := &wechat.Receiver{Token: c.Secrets.Token, Mode: wechat.ModeSafe, Cipher: cipher, OriginalID: t.OriginalID}
	return &receiver{tenant: t, receiver: r, format: wechat.FormatXML, withPrevious: []*wechat.Receiver{r}, component: c}, nil
}
