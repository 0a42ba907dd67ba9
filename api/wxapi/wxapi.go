// Package wxapi is wxrelay's WeChat-compatible API: a stand-in for
// https://api.weixin.qq.com, per tenant, so that a tenant's existing WeChat
// SDK works through the relay by changing its API host, while the relay
// stays the only holder of the AppSecret and of the real access token.
//
//   - GET /cgi-bin/token and POST /cgi-bin/stable_token answer as WeChat
//     does, but the secret they take is the tenant's wxrelay API key, and
//     the access_token they give is a relay token (tenant.WeChatToken),
//     valid for as long as the real token is.
//   - Every other call under an allowed path prefix (AllowedPrefixes) that
//     carries a relay token is forwarded to WeChat with the real token in
//     its place: the query, headers and body byte for byte, and WeChat's
//     answer back unchanged. A call WeChat refuses for its token is retried
//     once with a refreshed one (compare-and-refresh through the keeper).
//   - Customer-service sends are first checked against the user's reply
//     window, as the REST send API checks them; a send WeChat would
//     certainly refuse is answered with WeChat's own errcode (45015 or
//     45047) without calling WeChat.
//
// Every refusal of the relay's own is in WeChat's shape ({"errcode": N,
// "errmsg": "..."}) with WeChat's codes, so an SDK's error handling, and
// its token refresh on 40001 and 42001, work as they do against WeChat.
package wxapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxrelay/wxrelay/api/internal/perkey"
	"github.com/wxrelay/wxrelay/api/throttle"
	"github.com/wxrelay/wxrelay/relay/calllog"
	"github.com/wxrelay/wxrelay/relay/message"
	"github.com/wxrelay/wxrelay/tenant"
)

// Tokens hands out tenants' real access tokens with their expiry;
// *token.Keeper is one.
type Tokens interface {
	TokenExpiry(ctx context.Context, tid tenant.ID) (string, time.Time, error)
	RefreshExpiry(ctx context.Context, tid tenant.ID, failed string) (string, time.Time, error)
}

// Replies checks and counts a send against the user's reply window;
// *message.Service is one.
type Replies interface {
	ReserveReply(ctx context.Context, tid tenant.ID, touser string) (release func(), err error)
}

// AppIDs finds the tenant of an appid; *store.TenantStore is one.
type AppIDs interface {
	IDByAppID(ctx context.Context, appid string) (tenant.ID, error)
}

// CallRecorder takes call records; *calllog.Recorder is one.
type CallRecorder interface{ Record(calllog.Call) }

// Options configure a Handler. Auth, Tenants, AppIDs, Tokens and Replies
// are required.
type Options struct {
	Auth    *tenant.Authenticator
	Tenants tenant.Getter // a *tenant.Cache: read on every call
	AppIDs  AppIDs
	Tokens  Tokens
	Replies Replies

	// Upstream is WeChat's API base URL; "" means https://api.weixin.qq.com.
	Upstream string
	// HTTP forwards calls to Upstream. Nil means a client of its own with
	// keep-alive connections and a 30 s timeout. Redirects are never
	// followed: they would carry the real token elsewhere.
	HTTP *http.Client

	// Rate and Burst limit each tenant's calls (token calls included), in
	// calls per second; Rate 0 means DefaultRate, below 0 no limit. Only
	// calls that authenticated as the tenant count.
	Rate  float64
	Burst int

	// Proxies are the proxies whose X-Forwarded-For names the caller;
	// Failures counts failed authentications by caller address, and an
	// address over its budget is refused before its credentials are
	// read. Nil Failures means DefaultFailures.
	Proxies  throttle.Proxies
	Failures *throttle.Failures

	// Idempotency keeps the idempotency keys of sends that carry one
	// (IdempotencyHeader); nil ignores the header. *store.IdempotencyStore
	// is one.
	Idempotency message.IdempotencyStore

	// Calls records each call of a known tenant, for the tenant to list;
	// nil records nothing. *calllog.Recorder is one.
	Calls CallRecorder

	Registry prometheus.Registerer // nil: metrics are not registered
	Logger   *slog.Logger          // nil discards
	Now      func() time.Time      // nil: time.Now
}

// DefaultRate and DefaultBurst are the per-tenant limit on the compatible
// API: well above what WeChat itself lets one mini program send (its
// customer-service quota is some thousands a minute), so that only a
// runaway client meets it.
const (
	DefaultRate  = 200
	DefaultBurst = 400
)

// DefaultFailures is the budget of failed authentications of one address
// on the compatible API: a misconfigured SDK retrying its wrong secret
// stays within it; a guesser is slowed to a few tries a second.
func DefaultFailures() *throttle.Failures { return throttle.NewFailures(5, 20, nil) }

// Body limits. A call's body is held in memory, so that it can be sent
// again after a token refresh, up to maxHeldBody; a larger one (a media
// upload) is streamed to WeChat as it arrives, and is not retried by the
// relay: the refresh still happens, and the SDK's own retry then succeeds.
const (
	maxHeldBody  = 1 << 20
	maxMediaBody = 10<<20 + 64<<10 // WeChat's 10 MiB, plus the multipart framing
)

// Handler serves the compatible API at the root of its mux: mount it under
// /wxapi with http.StripPrefix, or at the root of a listener of its own.
type Handler struct {
	opts     Options
	upstream string
	http     *http.Client
	log      *slog.Logger
	now      func() time.Time
	metrics  *metrics

	limits *perkey.Limiters[tenant.ID] // nil: no rate limit
}

// New returns a Handler.
func New(opts Options) (*Handler, error) {
	if opts.Auth == nil || opts.Tenants == nil || opts.AppIDs == nil || opts.Tokens == nil || opts.Replies == nil {
		return nil, errors.New("wxapi: Auth, Tenants, AppIDs, Tokens and Replies are required")
	}
	h := &Handler{
		opts:     opts,
		upstream: strings.TrimRight(opts.Upstream, "/"),
		http:     opts.HTTP,
		log:      opts.Logger,
		now:      opts.Now,
	}
	if h.upstream == "" {
		h.upstream = "https://api.weixin.qq.com"
	}
	if h.http == nil {
		h.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second,
			ForceAttemptHTTP2: true,
		}}
	}
	hc := *h.http
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	h.http = &hc
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.opts.Rate == 0 {
		h.opts.Rate, h.opts.Burst = DefaultRate, DefaultBurst
	}
	if h.opts.Burst <= 0 {
		h.opts.Burst = max(1, int(h.opts.Rate))
	}
	if h.opts.Rate > 0 {
		h.limits = perkey.New[tenant.ID](h.opts.Rate, h.opts.Burst)
	}
	if h.opts.Failures == nil {
		h.opts.Failures = DefaultFailures()
	}
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	h.metrics = m
	return h, nil
}

// ServeHTTP routes a call: the token endpoints, or a forwarded call.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	class := classify(r.URL.Path)
	a := &answer{w: w, class: class}
	client := h.opts.Proxies.ClientAddr(r)
	defer func() {
		took := time.Since(start)
		h.metrics.observe(class, a.errcode, took)
		h.record(r, a, start, took)
		if a.authFailed {
			h.opts.Failures.Fail(client)
		}
	}()
	if class != classNone && h.opts.Failures.Blocked(client) {
		a.refuse(http.StatusOK, codeMinuteQuota, "api minute-quota reach limit: too many failed authentications from your address; wxrelay answers it again in a few seconds")
		return
	}
	switch class {
	case classToken:
		h.serveToken(a, r)
	case classNone:
		a.refuse(http.StatusNotFound, codeInvalidURL, fmt.Sprintf("invalid url: wxrelay forwards only paths under %s", strings.Join(AllowedPrefixes, ", ")))
	default:
		h.forward(a, r, class)
	}
}

// record keeps the call for its tenant to list, once the tenant is known:
// a call whose token or appid names no tenant is nobody's to see.
func (h *Handler) record(r *http.Request, a *answer, start time.Time, took time.Duration) {
	if h.opts.Calls == nil || a.tenant == "" {
		return
	}
	code, err := strconv.Atoi(a.errcode)
	h.opts.Calls.Record(calllog.Call{
		TenantID: a.tenant, Time: start.UTC(), Method: r.Method, Path: r.URL.Path, PathClass: string(a.class),
		HTTPStatus: a.status, Errcode: code, HasErrcode: err == nil, Errmsg: truncate(a.errmsg, 256),
		Duration: took, Retried: a.retried,
	})
}

// truncate cuts s to at most n bytes, at a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// allow takes one call from tid's rate limit.
func (h *Handler) allow(tid tenant.ID) bool {
	if h.limits == nil {
		return true
	}
	_, ok := h.limits.Take(tid, time.Now())
	return ok
}

// Forget drops what the handler holds for tenant id (its rate limiter);
// wire it to tenant.Service.OnChange so deleted tenants leave nothing.
func (h *Handler) Forget(id tenant.ID) {
	if h.limits != nil {
		h.limits.Forget(id)
	}
}
