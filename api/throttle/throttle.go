// Package throttle makes failed authentication cheap for the relay and
// costly for whoever fails: each client address has a small budget of
// failures, and an address over it is refused before its credentials are
// looked at. It is what stands between a stranger guessing API keys,
// appids or console passwords and the database those guesses would read.
//
// A client's address is the connection's, or, behind a proxy the operator
// trusts (--trusted-proxies), the last address the proxies added to
// X-Forwarded-For: the nearest one no trusted proxy vouches for.
package throttle

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Proxies are the addresses whose X-Forwarded-For is believed.
type Proxies []netip.Prefix

// DefaultProxies trusts loopback: a proxy on the same machine (the shipped
// nginx, Caddy and systemd layouts). Anyone who can connect from loopback
// can already reach the relay's other loopback-only listeners.
var DefaultProxies = Proxies{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// ParseProxies reads a comma-separated list of addresses and CIDR
// prefixes; "" and "none" trust nobody.
func ParseProxies(s string) (Proxies, error) {
	var ps Proxies
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return ps, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if p, err := netip.ParsePrefix(part); err == nil {
			ps = append(ps, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR prefix such as 10.0.0.0/8", part)
		}
		ps = append(ps, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return ps, nil
}

func (p Proxies) trusts(a netip.Addr) bool {
	for _, pr := range p {
		if pr.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr is the address r came from: the connection's, or, while that
// is a trusted proxy, the address before it in X-Forwarded-For.
func (p Proxies) ClientAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	addr = addr.Unmap().WithZone("")
	if !p.trusts(addr) {
		return addr
	}
	// The proxies append: the nearest hop is last.
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return addr // a hop that is no address: stop at the last known one
		}
		addr = h.Unmap().WithZone("")
		if !p.trusts(addr) {
			return addr
		}
	}
	return addr
}

// Failures counts failed authentications by client address: an address
// may fail Burst times at once and then Rate times a second; past that it
// is Blocked until its budget refills. IPv6 addresses count by their /64,
// which one subscriber usually holds whole.
type Failures struct {
	rate  rate.Limit
	burst int
	now   func() time.Time

	mu sync.Mutex
	m  map[netip.Prefix]*rate.Limiter
}

// maxAddresses bounds the addresses remembered. Past it the oldest budgets
// are forgotten all at once: an attacker with that many addresses gains
// a fresh budget for each, which it had anyway.
const maxAddresses = 1 << 16

// NewFailures returns a budget of burst failures, refilled at perSecond.
// now may be nil for time.Now.
func NewFailures(perSecond float64, burst int, now func() time.Time) *Failures {
	if now == nil {
		now = time.Now
	}
	return &Failures{rate: rate.Limit(perSecond), burst: burst, now: now, m: map[netip.Prefix]*rate.Limiter{}}
}

func key(a netip.Addr) netip.Prefix {
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// Blocked reports whether a has used up its failures.
func (f *Failures) Blocked(a netip.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.m[key(a)]
	return ok && l.TokensAt(f.now()) < 1
}

// Fail counts one failure of a.
func (f *Failures) Fail(a netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := key(a)
	l, ok := f.m[k]
	if !ok {
		if len(f.m) >= maxAddresses {
			clear(f.m)
		}
		l = rate.NewLimiter(f.rate, f.burst)
		f.m[k] = l
	}
	l.AllowN(f.now(), 1)
}

// Guard serves next unless the client (p.ClientAddr) has used up its
// failures, which it answers 429 without calling next; an answer of next
// of status 400 or more counts as one failure. It is for endpoints anyone
// may call whose work costs something a stranger must not spend at will
// (a call to WeChat on the operator's quota, say).
func (f *Failures) Guard(p Proxies, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := p.ClientAddr(r)
		if f.Blocked(client) {
			w.Header().Set("Retry-After", "10")
			http.Error(w, "too many failed attempts from this address; try again later", http.StatusTooManyRequests)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		if sw.status >= 400 {
			f.Fail(client)
		}
	})
}

// statusWriter remembers the status of the answer it writes.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}
