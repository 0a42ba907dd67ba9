package wxapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/wxrelay/wxrelay/relay/message"
	"github.com/wxrelay/wxrelay/tenant"
)

// IdempotencyHeader carries an idempotency key on a compatible send, as on
// the REST send: WeChat has none, so SDKs send none, but a tenant's own
// code retrying a send may.
const IdempotencyHeader = "Idempotency-Key"

// codeInvalidArgs is WeChat's "invalid args", for a key reused with
// another body: retrying the same call cannot help.
const codeInvalidArgs = 40097

// idempotent runs the idempotency key of a send, if it has one, as the REST
// send does (api.messageServer.sendOnce): the first call with a key
// reserves it and, once WeChat has answered, records the answer; a repeat
// within message.IdempotencyTTL with the same body is answered that
// record and sends nothing. It returns done when it has answered the call
// itself, and otherwise finish, to call with WeChat's answer (nil when
// WeChat was not reached, which frees the key for a retry).
func (h *Handler) idempotent(a *answer, r *http.Request, tid tenant.ID, body []byte) (finish func(*response), done bool) {
	key := r.Header.Get(IdempotencyHeader)
	if key == "" || h.opts.Idempotency == nil {
		return func(*response) {}, false
	}
	if len(key) > message.MaxIdempotencyKeyLen {
		a.refuse(http.StatusBadRequest, codeInvalidArgs, fmt.Sprintf("invalid args: %s is longer than %d bytes", IdempotencyHeader, message.MaxIdempotencyKeyLen))
		return nil, true
	}
	// The rule of every API: the same message, however written, under the
	// same key is the same send (a key used on the REST send too).
	fp := message.FingerprintBody(body)
	ctx := r.Context()
	prev, err := h.opts.Idempotency.ReserveIdempotencyKey(ctx, tid, key, fp, h.now(), message.IdempotencyTTL)
	switch {
	case errors.Is(err, message.ErrKeyTaken) && prev.Fingerprint != fp:
		a.refuse(http.StatusConflict, codeInvalidArgs, "invalid args: this Idempotency-Key was used for a different body within 24 hours; use a new key")
		return nil, true
	case errors.Is(err, message.ErrKeyTaken) && !prev.Done:
		a.refuse(http.StatusConflict, codeSystemError, "system error: a send with this Idempotency-Key is in progress; retry shortly")
		return nil, true
	case errors.Is(err, message.ErrKeyTaken):
		o := prev.Outcome
		if o.Errcode == 0 && o.Errmsg == "" {
			o.Errmsg = "ok" // a success the REST send recorded
		}
		a.errcode, a.errmsg = strconv.Itoa(o.Errcode), o.Errmsg
		a.json(http.StatusOK, struct {
			Errcode int    `json:"errcode"`
			Errmsg  string `json:"errmsg"`
		}{o.Errcode, o.Errmsg})
		return nil, true
	case err != nil:
		h.tenantError(a, r, err)
		return nil, true
	}
	return func(res *response) {
		// The send happened, or not, whether or not the caller is still
		// there: the key's fate is recorded regardless.
		bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if res == nil {
			if err := h.opts.Idempotency.ReleaseIdempotencyKey(bg, tid, key); err != nil {
				h.log.ErrorContext(ctx, "wxapi: release an idempotency key", "tenant", tid, "err", err)
			}
			return
		}
		o := message.Outcome{Errmsg: res.errmsg}
		if code, err := strconv.Atoi(res.errcode); err == nil {
			o.Errcode = code
		} else {
			// No errcode to read: WeChat may or may not have taken it, so a
			// repeat must not send again.
			o.Errcode, o.Errmsg = codeSystemError, "system error: WeChat's answer to the first send with this key was unreadable; it may have been delivered"
		}
		if o.Errcode != 0 {
			o.Code = 2 // gRPC UNKNOWN: a replay here reads Errcode and Errmsg only
		} else if o.Errmsg == "" {
			o.Errmsg = "ok"
		}
		if err := h.opts.Idempotency.FinishIdempotencyKey(bg, tid, key, o, h.now()); err != nil {
			h.log.ErrorContext(ctx, "wxapi: record an idempotency outcome", "tenant", tid, "err", err)
		}
	}, false
}
