// Package ingress is the relay's front door: the push URL WeChat calls for
// each tenant. It verifies, decrypts and de-duplicates a push, has it stored
// durably, and only then answers WeChat.
package ingress

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/relay/rejection"
	"github.com/wxrelay/wxrelay/relay/ttlcache"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// MaxBodyBytes caps push bodies. WeChat's pushes are a few KiB.
const MaxBodyBytes = 1 << 20

// answerDeadline bounds the work on one push: WeChat drops the connection
// after 5 s and retries, so an answer later than that is wasted.
const answerDeadline = 4500 * time.Millisecond

// Appender stores events durably; relay.Ingestor is one.
type Appender interface {
	Append(ctx context.Context, e *relay.Event) (relay.AppendResult, error)
}

// DefaultMaxSkew is how far a push's timestamp may be from the relay's clock.
// WeChat stamps a push when it first sends it and retries it three times
// within about 15 s, so five minutes leave room for clocks that are a
// little off, and still make a captured push useless soon: in plaintext
// mode the signature covers only Token, timestamp and nonce, not the body.
// The de-duplication record of a push outlives this window by far (the
// retention is at least an hour), so a replay is refused either as a
// duplicate or as stale.
const DefaultMaxSkew = 5 * time.Minute

// Options wire a Handler. Tenants and Events are required.
type Options struct {
	// Tenants reads tenants, usually through a short-lived tenant.Cache.
	Tenants *tenant.Cache
	Events  Appender
	Logger  *slog.Logger
	Metrics *Metrics // nil: not measured
	Now     func() time.Time
	// MaxSkew bounds how far a push's timestamp may be from Now; zero
	// means DefaultMaxSkew.
	MaxSkew time.Duration
	// UnverifiedBytes bounds the bytes of push bodies being read before
	// anything has authenticated them, across all tenants; zero means
	// DefaultUnverifiedBytes.
	UnverifiedBytes int64
	// Nonces remembers plaintext pushes' query signatures, so that one
	// signs one push; nil remembers none (a captured plaintext query then
	// carries any body while its timestamp is fresh).
	Nonces Nonces
	// Components serves the message URLs of third-party platforms
	// (ServeComponent); nil: none.
	Components Components
	// Rejections counts the pushes refused, per tenant and cause, for
	// health and the console; nil counts none.
	Rejections *rejection.Tally
}

// Nonces claims a plaintext push's query signature for its body;
// *store.NonceStore is one.
type Nonces interface {
	// ClaimNonce reports whether signature, tenant tid's, is free or
	// signed the body of this digest already; it is remembered until
	// until. tenant.ErrNotFound.
	ClaimNonce(ctx context.Context, tid tenant.ID, signature string, digest []byte, now, until time.Time) (bool, error)
}

// DefaultUnverifiedBytes is the budget for push bodies read before they
// are authenticated: only an encrypted-mode push without a query
// signature, which WeChat always sends, needs it, so 16 pushes of the
// largest size, or thousands of real ones, fit.
const DefaultUnverifiedBytes = 16 * MaxBodyBytes

// Handler serves GET and POST /wx/{id}.
type Handler struct {
	receivers  *receivers
	unverified *byteBudget
	nonces     Nonces
	events     Appender
	log        *slog.Logger
	metrics    *Metrics
	now        func() time.Time
	maxSkew    time.Duration
	comps      componentKeys
	rejections *rejection.Tally
}

// New returns a Handler. Route it as "/wx/{id}".
func New(opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{
		receivers:  newReceivers(opts.Tenants),
		unverified: newByteBudget(cmp.Or(opts.UnverifiedBytes, DefaultUnverifiedBytes)),
		nonces:     opts.Nonces,
		events:     opts.Events,
		log:        opts.Logger,
		metrics:    opts.Metrics,
		now:        opts.Now,
		maxSkew:    cmp.Or(opts.MaxSkew, DefaultMaxSkew),
		rejections: opts.Rejections,
		comps: componentKeys{lookup: opts.Components,
			components: ttlcache.Cache[tenant.ComponentID, *tenant.Component]{TTL: componentTTL},
			appids:     ttlcache.Cache[string, tenant.ID]{TTL: componentTTL}},
	}
	h.receivers.ofComponent = h.componentReceiver
	return h
}

// Forget drops what the handler holds of tenant id (its receivers, with
// its decrypted push secrets): wire it to tenant changes, on this replica
// (tenant.Service.OnChange) and from others (store.DB.WatchTenants), so
// that a deleted tenant's secrets leave memory with it.
func (h *Handler) Forget(id tenant.ID) {
	h.receivers.forget(id)
	h.comps.appids.Forget(func(_ string, tid tenant.ID) bool { return tid == id })
}

// ForgetAll is Forget for every tenant.
func (h *Handler) ForgetAll() { h.receivers.forgetAll() }

// ServeHTTP answers one request from WeChat. Error bodies are short plain
// text: WeChat shows none of them, but an operator with curl reads them.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	outcome := h.serve(w, r)
	h.metrics.observe(outcome, time.Since(start))
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) string {
	ctx, cancel := context.WithTimeout(r.Context(), answerDeadline)
	defer cancel()
	if r.Method == http.MethodPost {
		// Until the body is read (push), an answer closes the connection:
		// Go's server would otherwise read what is left of a refused
		// body, up to 256 KiB and for as long as it trickles, before it
		// answered, to reuse the connection.
		w.Header().Set("Connection", "close")
	}
	return h.serveTenant(ctx, w, r, tenant.ID(r.PathValue("id")), "")
}

// serveTenant serves a push to tenant id, which must be component's
// tenant when component is set, and not a component's otherwise.
func (h *Handler) serveTenant(ctx context.Context, w http.ResponseWriter, r *http.Request, id tenant.ID, component tenant.ComponentID) string {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "push URLs take GET (verification) and POST (pushes)", http.StatusMethodNotAllowed)
		return "bad_method"
	}
	rc, err := h.receivers.get(ctx, id)
	switch {
	case errors.Is(err, tenant.ErrNotFound) || errors.Is(err, tenant.ErrComponentNotFound) ||
		(err == nil && rc.tenant.ComponentID != component):
		// A component's tenant takes pushes at its component's message
		// URL only, and other tenants at their own.
		http.Error(w, "unknown tenant", http.StatusNotFound)
		return "unknown_tenant"
	case err != nil:
		h.log.ErrorContext(ctx, "push: load tenant", "tenant", id, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return "error"
	case rc.tenant.State != tenant.StateActive:
		http.Error(w, "tenant is disabled", http.StatusForbidden)
		return "disabled"
	}
	var outcome string
	if r.Method == http.MethodGet {
		outcome = h.verifyURL(w, r, rc)
	} else {
		outcome = h.push(ctx, w, r, rc)
	}
	if h.rejections != nil && rejection.Counted(outcome) {
		// Counted in memory, flushed in the background: a refused push
		// costs no write.
		h.rejections.Note(rc.tenant.ID, rejection.Cause(outcome), h.now())
	}
	return outcome
}

// verifyURL answers the GET WeChat sends when the push URL is saved in the
// console: the echostr, unchanged, if the signature holds. Safe mode does
// not change this request.
func (h *Handler) verifyURL(w http.ResponseWriter, r *http.Request, rc *receiver) string {
	query, now := r.URL.Query(), h.now()
	if outcome := h.checkTimestamp(w, query, now); outcome != "" {
		return outcome
	}
	var echo string
	err := wechat.ErrBadSignature
	for _, rcv := range rc.receiversAt(now) {
		if echo, err = wechat.VerifyURL(rcv.Token, query); err == nil {
			break
		}
	}
	if err != nil {
		http.Error(w, "signature does not match the tenant's token", http.StatusUnauthorized)
		return "bad_signature"
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, echo)
	return "verified"
}

func (h *Handler) push(ctx context.Context, w http.ResponseWriter, r *http.Request, rc *receiver) string {
	// Everything the headers and the query can tell is checked before the
	// body is read: anyone may POST to a push URL (the tenant id is in
	// it), and a body is up to 1 MiB.
	if r.ContentLength > MaxBodyBytes {
		http.Error(w, "push body exceeds 1 MiB", http.StatusRequestEntityTooLarge)
		return "too_large"
	}
	query, now := r.URL.Query(), h.now()
	if outcome := h.checkTimestamp(w, query, now); outcome != "" {
		return outcome
	}
	signed, err := querySigned(rc.receiversAt(now), rc.tenant.EncryptMode, query)
	if err != nil {
		http.Error(w, "signature does not match the tenant's token", http.StatusUnauthorized)
		return "bad_signature"
	}
	if !signed {
		// Only the body's msg_signature can vouch for this push: its bytes
		// come out of a small budget that all tenants' unverified pushes
		// share, so that strangers cannot make the relay hold gigabytes.
		release, ok := h.unverified.take(r.ContentLength)
		if !ok {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many unverified pushes are being read; retry", http.StatusServiceUnavailable)
			return "busy"
		}
		defer release()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		http.Error(w, "push body exceeds 1 MiB", http.StatusRequestEntityTooLarge)
		return "too_large"
	case err != nil:
		http.Error(w, "could not read the push body", http.StatusBadRequest)
		return "bad_body"
	}
	w.Header().Del("Connection") // read whole: the connection may serve WeChat's next push
	rcv, msg, err := receive(rc.receiversAt(now), query, body)
	if err != nil {
		status, outcome, text := refusal(err)
		if status == http.StatusInternalServerError {
			h.log.ErrorContext(ctx, "push: tenant settings unusable", "tenant", rc.tenant.ID, "err", err)
		} else {
			// The error names what failed, never the message content. At
			// debug: anyone may have pushes refused, and a line each would
			// let them fill the log; the refusals are counted instead
			// (Options.Rejections), and the health change they make is
			// logged once.
			h.log.DebugContext(ctx, "push rejected", "tenant", rc.tenant.ID, "outcome", outcome, "err", err)
		}
		http.Error(w, text, status)
		return outcome
	}
	if outcome := h.claimSignature(ctx, w, rc, query, body, now); outcome != "" {
		return outcome
	}
	ev, err := relay.NewEvent(rc.tenant, msg, body, now)
	if errors.Is(err, relay.ErrInvalid) {
		http.Error(w, "push has fields that are not valid text", http.StatusBadRequest)
		return "malformed"
	}
	if err != nil {
		h.log.ErrorContext(ctx, "push: make event", "tenant", rc.tenant.ID, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return "error"
	}
	res, err := h.events.Append(ctx, ev)
	if errors.Is(err, tenant.ErrNotFound) {
		// Deleted by another replica a moment ago, before its notice
		// arrived: the events' foreign key refused the row, which is all
		// there is to know (no need to read the tenant again). 404, as for
		// any unknown tenant, rather than a 500 that WeChat would retry.
		h.receivers.forget(rc.tenant.ID)
		http.Error(w, "unknown tenant", http.StatusNotFound)
		return "unknown_tenant"
	}
	if err != nil {
		// Never "success" for an event that is not stored: a 500 makes
		// WeChat retry, and the retry is de-duplicated if this one did land.
		h.log.ErrorContext(ctx, "push: store event", "tenant", rc.tenant.ID, "err", err)
		http.Error(w, "could not store the push; WeChat will retry", http.StatusInternalServerError)
		return "store_error"
	}
	h.log.DebugContext(ctx, "push stored", "tenant", rc.tenant.ID, "event", res.ID, "type", ev.Type, "duplicate", res.Duplicate)
	outcome := "stored"
	if res.Duplicate {
		outcome = "duplicate"
	}
	// A duplicate gets the same answer as the original: the answer depends
	// only on the message and the tenant's settings.
	if rc.tenant.ReplyMode == tenant.ReplyTransferCustomerService && !msg.IsEvent() {
		return h.transfer(ctx, w, query, rc, rcv, msg, now, outcome)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, wechat.Success)
	return outcome
}

// transfer answers a user message with transfer_customer_service, handing
// the conversation to WeChat's customer-service tool.
// The reply is sealed by rcv, the receiver that opened the push: WeChat
// expects the keys it pushed with.
func (h *Handler) transfer(ctx context.Context, w http.ResponseWriter, query map[string][]string, rc *receiver, rcv *wechat.Receiver, msg *wechat.Message, now time.Time, outcome string) string {
	reply := wechat.TransferReply(msg, rc.format, now.Unix())
	sealed, err := rcv.Reply(query, rc.format, reply, now.Unix())
	if err != nil {
		// The event is stored; "success" still tells WeChat so, and the
		// tenant can reply through the send API.
		h.log.ErrorContext(ctx, "push: seal transfer reply", "tenant", rc.tenant.ID, "err", err)
		io.WriteString(w, wechat.Success)
		return outcome
	}
	if rc.format == wechat.FormatJSON {
		w.Header().Set("Content-Type", "application/json")
	} else {
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(sealed)))
	w.Write(sealed)
	return outcome
}

// receive opens a push with the first of rcvs that authenticates it. A
// push that none accepts gets the current receiver's error: the one that
// says what is wrong with the tenant's settings as they are now.
func receive(rcvs []*wechat.Receiver, query url.Values, body []byte) (*wechat.Receiver, *wechat.Message, error) {
	var first error
	for _, rcv := range rcvs {
		msg, err := rcv.Receive(query, body)
		if err == nil {
			return rcv, msg, nil
		}
		if first == nil {
			first = err
		}
		if !errors.Is(err, wechat.ErrBadSignature) && !errors.Is(err, wechat.ErrBadCiphertext) && !errors.Is(err, wechat.ErrAppIDMismatch) {
			break // the body itself is wrong: no key would open it
		}
	}
	return nil, nil, first
}

// claimSignature, for a plaintext push, claims its query signature for
// its body: the signature covers only Token, timestamp and nonce, so a
// captured query would otherwise carry any body while its timestamp is
// fresh. WeChat's retries repeat the body and pass. It answers a replay
// (401) or a failure to remember (500: never success for a push that
// might be one) and returns its outcome; "" lets the push on.
func (h *Handler) claimSignature(ctx context.Context, w http.ResponseWriter, rc *receiver, query url.Values, body []byte, now time.Time) string {
	if h.nonces == nil || rc.tenant.EncryptMode != tenant.EncryptPlaintext {
		return ""
	}
	ts, _ := strconv.ParseInt(query.Get("timestamp"), 10, 64) // checkTimestamp read it
	digest := sha256.Sum256(body)
	// Remembered while the timestamp could still pass checkTimestamp.
	ok, err := h.nonces.ClaimNonce(ctx, rc.tenant.ID, query.Get("signature"), digest[:], now, time.Unix(ts, 0).Add(h.maxSkew+time.Minute))
	switch {
	case errors.Is(err, tenant.ErrNotFound):
		http.Error(w, "unknown tenant", http.StatusNotFound)
		return "unknown_tenant"
	case err != nil:
		h.log.ErrorContext(ctx, "push: remember its signature", "tenant", rc.tenant.ID, "err", err)
		http.Error(w, "could not store the push; WeChat will retry", http.StatusInternalServerError)
		return "store_error"
	case !ok:
		h.log.DebugContext(ctx, "push rejected", "tenant", rc.tenant.ID, "outcome", "replayed")
		http.Error(w, "this signature already signed another push: a replay", http.StatusUnauthorized)
		return "replayed"
	}
	return ""
}

// querySigned checks a push's query signature, over Token, timestamp and
// nonce, before its body is read. Plaintext pushes must carry it; in
// compatible and safe modes msg_signature, over the body's Encrypt, is
// what authenticates a push, but WeChat sends signature beside it, valid
// (protocol §2), so a push that carries one that is wrong is refused
// unread. signed is false for an encrypted-mode push without one: its
// body must be read to be judged.
func querySigned(rcvs []*wechat.Receiver, mode tenant.EncryptMode, query url.Values) (signed bool, err error) {
	sig := query.Get("signature")
	if sig == "" {
		if mode == tenant.EncryptPlaintext {
			return false, wechat.ErrBadSignature
		}
		return false, nil
	}
	ts, nonce := query.Get("timestamp"), query.Get("nonce")
	for _, rcv := range rcvs {
		if wechat.VerifySignature(sig, rcv.Token, ts, nonce) {
			return true, nil
		}
	}
	return false, wechat.ErrBadSignature
}

// checkTimestamp refuses a push or verification whose timestamp is not a
// number of seconds within maxSkew of now, answering 400 and returning its
// outcome; it returns "" for a fresh one. The check precedes the
// signature's: a stale signature is not worth computing.
func (h *Handler) checkTimestamp(w http.ResponseWriter, query url.Values, now time.Time) string {
	ts, err := strconv.ParseInt(query.Get("timestamp"), 10, 64)
	if err != nil {
		http.Error(w, "timestamp must be Unix seconds", http.StatusBadRequest)
		return "bad_timestamp"
	}
	skew := now.Sub(time.Unix(ts, 0))
	if skew > h.maxSkew || skew < -h.maxSkew {
		http.Error(w, fmt.Sprintf("timestamp is more than %s away from the relay's clock: a stale or replayed push", h.maxSkew), http.StatusBadRequest)
		return "stale_timestamp"
	}
	return ""
}

// refusal maps a push the protocol refuses to its answer.
func refusal(err error) (status int, outcome, text string) {
	switch {
	case errors.Is(err, wechat.ErrBadSignature):
		return http.StatusUnauthorized, "bad_signature", "signature does not match the tenant's token"
	case errors.Is(err, wechat.ErrAppIDMismatch):
		return http.StatusForbidden, "wrong_appid", "push is encrypted for another mini-program"
	case errors.Is(err, wechat.ErrWrongRecipient):
		return http.StatusForbidden, "wrong_recipient", "push is addressed to another original_id"
	case errors.Is(err, wechat.ErrBadCiphertext):
		return http.StatusBadRequest, "bad_ciphertext", "Encrypt does not decrypt with the tenant's EncodingAESKey"
	case errors.Is(err, wechat.ErrNotEncrypted):
		return http.StatusBadRequest, "not_encrypted", "push has no Encrypt field, but the tenant expects safe mode: " +
			"set the tenant's encrypt_mode to the mode chosen in the mini-program console (消息推送: 明文, 兼容 or 安全模式)"
	case errors.Is(err, wechat.ErrMalformed):
		return http.StatusBadRequest, "malformed", "push body does not parse"
	default:
		return http.StatusInternalServerError, "error", "internal error"
	}
}
