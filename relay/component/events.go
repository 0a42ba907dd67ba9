// Package component serves the push URLs of WeChat third-party platforms
// (components, protocol §9): the authorization-event URL, which receives a
// component_verify_ticket every 10 minutes and the authorizations of
// merchants' mini programs.
package component

import (
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// Store is what the authorization-event URL needs of the store;
// *store.ComponentStore is one.
type Store interface {
	FindComponent(ctx context.Context, id tenant.ComponentID) (*tenant.Component, error)
	SaveTicket(ctx context.Context, id tenant.ComponentID, t tenant.Ticket) error
	SaveComponentPush(ctx context.Context, id tenant.ComponentID, p tenant.ComponentPush) error
}

// Options configure an EventsHandler.
type Options struct {
	Store  Store
	Logger *slog.Logger     // nil discards
	Now    func() time.Time // nil: time.Now
	// MaxSkew bounds how far a push's timestamp may be from Now, so that a
	// captured push cannot be replayed later; zero means 5 minutes.
	MaxSkew time.Duration
	// Kick, if set, asks for a stored authorization event (or release
	// check) to be acted on at once rather than at the next scheduled
	// run: the Authorizer's Kick.
	Kick func()
}

// maxEventBody bounds a push to the authorization-event URL: a ticket or
// an authorization event is well under 2 KiB encrypted.
const maxEventBody = 64 << 10

// commitTimeout bounds the durable write before WeChat's 5 s run out.
const commitTimeout = 4 * time.Second

// pushURL is what a component's push URLs share: the checks of a push
// made before and while its body is read.
type pushURL struct {
	store   Store
	log     *slog.Logger
	now     func() time.Time
	maxSkew time.Duration
	kick    func()
}

func newPushURL(o Options) pushURL {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Kick == nil {
		o.Kick = func() {}
	}
	return pushURL{store: o.Store, log: o.Logger, now: o.Now, maxSkew: cmp.Or(o.MaxSkew, 5*time.Minute), kick: o.Kick}
}

// admit reads the push of r to component {id}: a POST, to a component
// that exists, with a fresh timestamp and the query signature of the
// component's Token (WeChat signs every push's query, so a stranger's is
// refused before its body is read), and a body of at most maxEventBody.
// It answers whatever it refuses, and returns false then.
func (p *pushURL) admit(w http.ResponseWriter, r *http.Request) (c *tenant.Component, q url.Values, body []byte, now time.Time, ok bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "this URL takes WeChat's POST pushes", http.StatusMethodNotAllowed)
		return
	}
	id := tenant.ComponentID(r.PathValue("id"))
	if !tenant.ValidComponentID(id) {
		http.NotFound(w, r)
		return
	}
	q, now = r.URL.Query(), p.now()
	ts, err := strconv.ParseInt(q.Get("timestamp"), 10, 64)
	if err != nil || time.Unix(ts, 0).Sub(now).Abs() > p.maxSkew {
		http.Error(w, "timestamp missing, or too far from the relay's clock", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	c, err = p.store.FindComponent(ctx, id)
	if errors.Is(err, tenant.ErrComponentNotFound) {
		http.NotFound(w, r)
		return
	} else if err != nil {
		p.log.ErrorContext(ctx, "component push: find the component", "component", id, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if !wechat.VerifySignature(q.Get("signature"), c.Secrets.Token, q.Get("timestamp"), q.Get("nonce")) {
		w.Header().Set("Connection", "close")
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxEventBody))
	if err != nil {
		http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	return c, q, body, now, true
}

// cipher is component c's cipher; it answers 500 when c's key is
// unusable (it was checked when saved, so never in practice).
func (p *pushURL) cipher(w http.ResponseWriter, r *http.Request, c *tenant.Component) (*wechat.Cipher, bool) {
	cipher, err := wechat.NewCipher(c.Secrets.EncodingAESKey, c.AppID)
	if err != nil {
		p.log.ErrorContext(r.Context(), "component push: the component's key", "component", c.ID, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return nil, false
	}
	return cipher, true
}

// refused answers a push that err, its opening's failure, refuses: 401
// for a bad signature, 403 for one sealed for another component, 400 for
// a malformed one. It reports whether there was one.
func refused(w http.ResponseWriter, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, wechat.ErrBadSignature):
		http.Error(w, "bad signature", http.StatusUnauthorized)
	case errors.Is(err, wechat.ErrAppIDMismatch):
		http.Error(w, "the push is for another component", http.StatusForbidden)
	default:
		http.Error(w, "malformed push", http.StatusBadRequest)
	}
	return true
}

// EventsHandler serves POST /wxc/{id}/events.
type EventsHandler struct{ pushURL }

// NewEventsHandler returns an EventsHandler.
func NewEventsHandler(o Options) *EventsHandler {
	return &EventsHandler{newPushURL(o)}
}

// ServeHTTP verifies, decrypts and keeps a push: a ticket as the
// component's last good one, any other event in the component's inbox,
// durably in either case before it answers success. Nothing is stored for
// a push that does not verify: 401 for a bad signature, 403 for a push
// sealed for another component, 400 for a malformed or stale one.
func (h *EventsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, q, body, now, ok := h.admit(w, r)
	if !ok {
		return
	}
	ctx, id := r.Context(), c.ID
	cipher, ok := h.cipher(w, r, c)
	if !ok {
		return
	}
	e, inner, err := wechat.OpenComponentEvent(c.Secrets.Token, cipher, q, body)
	if refused(w, err) {
		return
	}

	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	if e.InfoType == wechat.InfoTicket {
		err = h.store.SaveTicket(ctx, id, tenant.Ticket{Value: e.ComponentVerifyTicket, ReceiveTime: now.UTC()})
		h.log.DebugContext(ctx, "component ticket received", "component", id)
	} else {
		err = h.store.SaveComponentPush(ctx, id, tenant.ComponentPush{
			InfoType: e.InfoType, AuthorizerAppID: e.AuthorizerAppid, CreateTime: e.CreateTime, Body: inner, ReceiveTime: now.UTC()})
		h.log.InfoContext(ctx, "component authorization event received", "component", id, "info_type", e.InfoType, "authorizer", e.AuthorizerAppid)
	}
	if err != nil {
		// Never success for what was not stored: WeChat pushes again.
		h.log.ErrorContext(ctx, "component push not stored", "component", id, "info_type", e.InfoType, "err", err)
		http.Error(w, "not stored", http.StatusInternalServerError)
		return
	}
	io.WriteString(w, wechat.Success)
	if e.InfoType != wechat.InfoTicket {
		h.kick() // a revocation refuses the tenant's sends from now, not in 10 s
	}
}
