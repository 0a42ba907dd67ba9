package delivery

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/tenant"
)

// Sender defaults and bounds.
const (
	// DefaultTimeout bounds one attempt, from dialling to the last byte of
	// the response read.
	DefaultTimeout = 15 * time.Second
	// UserAgent identifies the relay to webhooks.
	UserAgent = "wxrelay/1"

	// maxResponseBody is what an Attempt keeps of the webhook's answer.
	maxResponseBody = 4 << 10
	// maxDrain is how much more of the answer is read and thrown away so
	// that the connection can be reused; a longer answer costs the
	// connection instead.
	maxDrain = 64 << 10
	// retryAfterCap bounds a parsed Retry-After only so that an absurd one
	// cannot overflow; the retry policy decides how much of it to honour.
	retryAfterCap = 365 * 24 * time.Hour
)

// Resolver looks up the addresses of a host name; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// SenderOptions configure a Sender. The zero value is the production
// setting: public addresses only, DefaultTimeout, the system resolver and
// certificate roots.
type SenderOptions struct {
	// AllowPrivate lets webhooks reach loopback, private and other
	// non-public addresses, and use plain http
	// (WXRELAY_ALLOW_PRIVATE_WEBHOOKS).
	AllowPrivate bool
	// Timeout bounds one attempt; DefaultTimeout when zero.
	Timeout time.Duration
	// Resolver looks up webhook host names; net.DefaultResolver when nil.
	Resolver Resolver
	// TLSConfig is used for https webhooks; nil means the system roots.
	TLSConfig *tls.Config
	// ConnsPerHost is how many idle connections are kept per endpoint
	// (default 16). Set it to the dispatcher's PerTenant: with fewer,
	// every delivery beyond it dials a new connection and closes it after.
	ConnsPerHost int
}

// Sender makes single delivery attempts to webhooks: it signs, POSTs and
// classifies the outcome. It neither retries nor follows redirects. Unless
// private webhooks are allowed, it connects only to public addresses, checked
// on the address actually dialled so that DNS cannot slip a private one past
// an earlier check. Safe for concurrent use; one Sender shares a connection
// pool among all tenants.
type Sender struct {
	allowPrivate bool
	timeout      time.Duration
	resolver     Resolver
	dialer       *net.Dialer
	transport    *http.Transport
	client       *http.Client
}

// NewSender returns a Sender configured by o.
func NewSender(o SenderOptions) *Sender {
	s := &Sender{
		allowPrivate: o.AllowPrivate,
		timeout:      o.Timeout,
		resolver:     o.Resolver,
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.resolver == nil {
		s.resolver = net.DefaultResolver
	}
	s.dialer = &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !s.allowPrivate {
		// dial checks each resolved address before dialling it; this
		// checks the socket's address once more just before connect(2),
		// whatever path led there.
		s.dialer.Control = controlPublic
	}
	var tlsConfig *tls.Config
	if o.TLSConfig != nil {
		tlsConfig = o.TLSConfig.Clone()
	}
	connsPerHost := o.ConnsPerHost
	if connsPerHost <= 0 {
		connsPerHost = 16
	}
	s.transport = &http.Transport{
		// Never a proxy: the environment's proxy would do the dialling,
		// out of reach of the address check.
		Proxy:             nil,
		DialContext:       s.dial,
		TLSClientConfig:   tlsConfig,
		ForceAttemptHTTP2: true,
		// Many tenants, each with up to PerTenant concurrent deliveries:
		// a pool of that size per endpoint, and a larger one overall.
		MaxIdleConns:           4096,
		MaxIdleConnsPerHost:    connsPerHost,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		// Compressed answers would only be decompressed to be cut at 4
		// KiB; asking for none also rules out decompression bombs.
		DisableCompression: true,
	}
	s.client = &http.Client{
		Transport: s.transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return s
}

// Timeout is the bound on one attempt, for callers sizing leases.
func (s *Sender) Timeout() time.Duration { return s.timeout }

// Close drops the idle pooled connections.
func (s *Sender) Close() {
	s.transport.CloseIdleConnections()
}

// Request is one delivery attempt.
type Request struct {
	URL     string // the tenant's webhook_url
	EventID string // webhook-id: the event id, the same on every attempt
	Body    []byte // the JSON webhook body
	// Secrets sign the body (tenant.WebhookSecrets.Signing): whsec_ each.
	Secrets []string
	// Now is the attempt's time: webhook-timestamp and Attempt.Time. The
	// current time when zero.
	Now time.Time
}

// Result is the outcome of one attempt.
type Result struct {
	// Attempt is what is recorded: success when ErrorClass is "".
	Attempt relay.Attempt
	// RetryAfter is the delay a 429 or 503 answer asked for in its
	// Retry-After header (delta-seconds or HTTP date); zero when absent,
	// unparseable or already past. The retry policy decides how much of it
	// to honour.
	RetryAfter time.Duration
	// Canceled reports that the caller's context ended before the attempt
	// did (shutdown): the attempt says nothing about the webhook, and is
	// better released than recorded. Its ErrorClass is relay.ErrorRequest.
	Canceled bool
}

// OK reports whether the webhook accepted the event (a 2xx answer).
func (r Result) OK() bool { return r.Attempt.ErrorClass == "" }

// errAttemptTimeout is the cause of an attempt's context when the attempt
// timeout, not the caller, ended it.
var errAttemptTimeout = errors.New("delivery: attempt timed out")

// Send makes one attempt to deliver r: a signed POST, bounded by the
// attempt timeout and ctx. It never returns an error: every failure is
// classified in the Attempt (see the relay.Error* classes).
func (s *Sender) Send(ctx context.Context, r Request) Result {
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	res := Result{Attempt: relay.Attempt{Time: now}}
	fail := func(class, msg string) Result {
		res.Attempt.ErrorClass, res.Attempt.Error = class, msg
		return res
	}

	actx, cancel := context.WithTimeoutCause(ctx, s.timeout, errAttemptTimeout)
	defer cancel()
	// The request parses the URL: checkURL looks at that parse rather than
	// parsing it again. Only a URL that does not parse fails here.
	req, err := http.NewRequestWithContext(actx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return fail(relay.ErrorRequest, errURLParse.Error())
	}
	if err := s.checkURL(req.URL); err != nil {
		return fail(relay.ErrorRequest, err.Error())
	}
	sig, err := Sign(r.Secrets, r.EventID, now, r.Body)
	if err != nil {
		return fail(relay.ErrorRequest, "cannot sign: "+err.Error())
	}
	// Set in canonical form directly: Header.Set would canonicalise each
	// name at every attempt.
	req.Header = http.Header{
		"Content-Type":      {"application/json"},
		"User-Agent":        {UserAgent},
		"Webhook-Id":        {r.EventID},
		"Webhook-Timestamp": {strconv.FormatInt(now.Unix(), 10)},
		"Webhook-Signature": {sig},
	}

	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		res.Attempt.Latency = time.Since(start)
		return s.classify(ctx, actx, res, err)
	}
	// The answer's first bytes are kept; read errors here do not change
	// the verdict, which the status already gave.
	if resp.ContentLength != 0 { // a 204, as most webhooks answer, has none
		res.Attempt.ResponseBody, _ = io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	}
	res.Attempt.Latency = time.Since(start)
	if resp.ContentLength != 0 {
		_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	}
	resp.Body.Close()

	res.Attempt.ResponseHeaders = headerLines(resp.Header, relay.MaxResponseHeaders)
	code := resp.StatusCode
	res.Attempt.HTTPStatus = code
	if code >= 200 && code <= 299 {
		return res
	}
	// The standard reason phrase, not the webhook's own, which could be
	// anything up to the header limit.
	status := strings.TrimSpace(fmt.Sprintf("HTTP %d %s", code, http.StatusText(code)))
	switch {
	case code >= 300 && code <= 399:
		return fail(relay.ErrorHTTPStatus, status+": redirects are not followed; set webhook_url to the final address")
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		res.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	return fail(relay.ErrorHTTPStatus, status)
}

// errURLParse is the attempt error of a webhook URL that does not parse.
var errURLParse = errors.New("invalid webhook URL: does not parse")

// checkURL re-checks what ValidateWebhookURL checked when the URL was
// stored, in case the setting changed since: an absolute http(s) URL (http
// only when private webhooks are allowed) naming a host, without
// credentials. Whether the host is private is left to the dial, which sees
// the resolved address.
func (s *Sender) checkURL(u *url.URL) error {
	switch {
	case u.Scheme == "http" && !s.allowPrivate:
		return errors.New("invalid webhook URL: must use https (plain http is accepted only with WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true)")
	case u.Scheme != "https" && u.Scheme != "http":
		return errors.New("invalid webhook URL: must be an https URL")
	case u.Hostname() == "":
		return errors.New("invalid webhook URL: must name a host")
	case u.User != nil:
		return errors.New("invalid webhook URL: must not carry credentials")
	}
	return nil
}

// classify turns a failed round trip into an Attempt error. ctx is the
// caller's context, actx the attempt's.
func (s *Sender) classify(ctx, actx context.Context, res Result, err error) Result {
	err = unwrapURLError(err)
	var blocked *blockedError
	var nerr net.Error
	a := &res.Attempt
	switch {
	case errors.As(err, &blocked):
		a.ErrorClass, a.Error = relay.ErrorBlocked, blocked.Error()
	case ctx.Err() != nil:
		res.Canceled = true
		a.ErrorClass, a.Error = relay.ErrorRequest, "attempt abandoned: "+context.Cause(ctx).Error()
	case errors.Is(context.Cause(actx), errAttemptTimeout):
		a.ErrorClass, a.Error = relay.ErrorTimeout, fmt.Sprintf("no answer within %s", s.timeout)
	case errors.As(err, &nerr) && nerr.Timeout():
		a.ErrorClass, a.Error = relay.ErrorTimeout, "timed out: "+describe(err)
	default:
		a.ErrorClass, a.Error = relay.ErrorConnect, "connection failed: "+describe(err)
	}
	return res
}

// describe is err's text for the tenant's eyes: a DNS error loses the
// address of the relay's own resolver.
func describe(err error) string {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return "lookup " + dnsErr.Name + ": " + dnsErr.Err
	}
	return err.Error()
}

// unwrapURLError drops the *url.Error wrapper, whose text repeats the whole
// URL (its query may hold a token) to leave what actually went wrong.
func unwrapURLError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}

// parseRetryAfter reads a Retry-After value, delta-seconds or an HTTP date,
// as a delay from now. Zero when absent, invalid or past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if strings.Trim(v, "0123456789") == "" { // delta-seconds
		d = retryAfterCap
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && n < uint64(retryAfterCap/time.Second) {
			d = time.Duration(n) * time.Second
		}
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, retryAfterCap))
}

// blockedError is a dial refused because the address is not public.
type blockedError struct {
	host string     // the host dialled, as the URL names it; may be empty
	addr netip.Addr // the (first) address it resolved to
}

func (e *blockedError) Error() string {
	what := e.addr.String()
	if e.host != "" && e.host != what {
		what = e.host + " resolves to " + what + ", which"
	}
	return "blocked: " + what + " is a loopback, private or reserved address; " +
		"webhooks may reach it only with WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true"
}

// dial is the transport's DialContext: it resolves the host once, keeps the
// public addresses (all of them when private webhooks are allowed) and dials
// those addresses, never the name, so that a second resolution cannot
// answer differently. The dialer's Control checks them again.
func (s *Sender) dial(ctx context.Context, network, address string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("invalid port %q", portStr)
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		ipNet := "ip"
		switch network {
		case "tcp4":
			ipNet = "ip4"
		case "tcp6":
			ipNet = "ip6"
		}
		addrs, err = s.resolver.LookupNetIP(ctx, ipNet, host)
		if err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
		}
		for i, a := range addrs {
			addrs[i] = a.Unmap() // the "ip" lookup answers IPv4 as ::ffff:a.b.c.d
		}
	}
	allowed := addrs
	if !s.allowPrivate {
		allowed = make([]netip.Addr, 0, len(addrs))
		for _, a := range addrs {
			if isPublic(a) {
				allowed = append(allowed, a)
			}
		}
		if len(allowed) == 0 {
			return nil, &blockedError{host: host, addr: addrs[0]}
		}
	}
	// One address after another, each given a share of the time left, as
	// net.Dialer does with the addresses it resolves itself.
	var firstErr error
	for i, a := range allowed {
		dctx, cancel := ctx, context.CancelFunc(func() {})
		if deadline, ok := ctx.Deadline(); ok {
			left := time.Until(deadline)
			share := left / time.Duration(len(allowed)-i)
			if share < 2*time.Second {
				share = min(2*time.Second, left)
			}
			dctx, cancel = context.WithTimeout(ctx, share)
		}
		c, err := s.dialer.DialContext(dctx, network, netip.AddrPortFrom(a, uint16(port)).String())
		cancel()
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// controlPublic is the dialer's last check, on the socket's address just
// before it connects.
func controlPublic(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("blocked: cannot check address %q", address)
	}
	if !isPublic(ap.Addr()) {
		return &blockedError{addr: ap.Addr()}
	}
	return nil
}

// isPublic is tenant.IsPublicAddr on the address without its IPv6 zone:
// netip.Prefix.Contains never matches a zoned address, so fe80::1%eth0
// would otherwise pass for public.
func isPublic(a netip.Addr) bool {
	return tenant.IsPublicAddr(a.WithZone(""))
}

// headerLines writes h as "Name: value" lines, sorted by name, whole lines
// only, at most limit bytes: what an operator reads of an answer.
func headerLines(h http.Header, limit int) string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(h)) {
		line := name + ": " + strings.Join(h[name], ", ") + "\n"
		if b.Len()+len(line) > limit {
			break
		}
		b.WriteString(line)
	}
	return b.String()
}
