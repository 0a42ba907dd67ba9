package throttle

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestClientAddr(t *testing.T) {
	proxies, err := ParseProxies("127.0.0.1, 10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		remote, xff, want string
	}{
		{"198.51.100.1:5000", "", "198.51.100.1"},
		{"198.51.100.1:5000", "203.0.113.9", "198.51.100.1"}, // not a trusted proxy: its header is ignored
		{"127.0.0.1:5000", "203.0.113.9", "203.0.113.9"},
		{"127.0.0.1:5000", "203.0.113.9, 10.1.2.3", "203.0.113.9"}, // two trusted hops
		{"127.0.0.1:5000", "1.2.3.4, 203.0.113.9", "203.0.113.9"},  // a forged first entry is not believed
		{"127.0.0.1:5000", "junk", "127.0.0.1"},
		{"127.0.0.1:5000", "", "127.0.0.1"},
		{"[::ffff:198.51.100.1]:5000", "", "198.51.100.1"},
	} {
		r := &http.Request{RemoteAddr: tt.remote, Header: http.Header{}}
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := proxies.ClientAddr(r); got.String() != tt.want {
			t.Errorf("ClientAddr(%s, XFF %q) = %s, want %s", tt.remote, tt.xff, got, tt.want)
		}
	}
	if _, err := ParseProxies("10.0.0.0/8,banana"); err == nil {
		t.Error("ParseProxies accepted banana")
	}
	if p, err := ParseProxies("none"); err != nil || len(p) != 0 {
		t.Errorf("ParseProxies(none) = %v, %v", p, err)
	}
}

func TestFailures(t *testing.T) {
	now := time.Unix(1000, 0)
	f := NewFailures(1, 3, func() time.Time { return now })
	a := netip.MustParseAddr("203.0.113.7")
	b := netip.MustParseAddr("2001:db8:1:2::1")
	sameNet := netip.MustParseAddr("2001:db8:1:2::ffff")
	for range 3 {
		if f.Blocked(a) {
			t.Fatal("blocked within its budget")
		}
		f.Fail(a)
	}
	if !f.Blocked(a) {
		t.Fatal("not blocked after the budget of 3")
	}
	if f.Blocked(netip.MustParseAddr("203.0.113.8")) {
		t.Error("a neighbour was blocked")
	}
	now = now.Add(time.Second)
	if f.Blocked(a) {
		t.Error("still blocked after a second refilled one failure")
	}
	for range 3 {
		f.Fail(b)
	}
	if !f.Blocked(sameNet) {
		t.Error("an IPv6 address of the same /64 was not blocked")
	}
}

// Guard lets an address fail its burst, then answers 429 without calling
// the handler; successes cost nothing, and another address is not held.
func TestGuard(t *testing.T) {
	calls := 0
	status := http.StatusBadGateway
	h := NewFailures(0.0001, 3, nil).Guard(nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.WriteHeader(status)
	}))
	get := func(addr string) int {
		r := httptest.NewRequest("GET", "/x", nil)
		r.RemoteAddr = addr
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	status = http.StatusOK
	for range 5 {
		if code := get("192.0.2.1:1"); code != 200 {
			t.Fatalf("a success: %d", code)
		}
	}
	status = http.StatusBadGateway
	for range 3 {
		get("192.0.2.1:1")
	}
	before := calls
	if code := get("192.0.2.1:2"); code != http.StatusTooManyRequests || calls != before {
		t.Errorf("past the burst: %d, handler called %d more times; want 429 and none", code, calls-before)
	}
	if code := get("198.51.100.7:1"); code != http.StatusBadGateway {
		t.Errorf("another address: %d, want the handler's answer", code)
	}
}
