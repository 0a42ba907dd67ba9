package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay"
)

// target is a test webhook: it counts the connections it accepts and
// keeps the requests it gets.
type target struct {
	*httptest.Server
	conns atomic.Int32

	mu   sync.Mutex
	reqs []receivedRequest
}

type receivedRequest struct {
	method string
	path   string
	header http.Header
	body   []byte
}

// newTarget starts a webhook serving h on listener ln (loopback IPv4 when
// nil), with TLS when tls is set.
func newTarget(tb testing.TB, ln net.Listener, tls bool, h http.HandlerFunc) *target {
	tb.Helper()
	tg := &target{}
	tg.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		tg.mu.Lock()
		tg.reqs = append(tg.reqs, receivedRequest{r.Method, r.URL.Path, r.Header.Clone(), body})
		tg.mu.Unlock()
		if h != nil {
			h(w, r)
		}
	}))
	if ln != nil {
		tg.Listener.Close()
		tg.Listener = ln
	}
	tg.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			tg.conns.Add(1)
		}
	}
	if tls {
		tg.StartTLS()
	} else {
		tg.Start()
	}
	tb.Cleanup(tg.Close)
	return tg
}

func (tg *target) requests() []receivedRequest {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]receivedRequest(nil), tg.reqs...)
}

func (tg *target) port() string {
	_, p, _ := net.SplitHostPort(tg.Listener.Addr().String())
	return p
}

func newTestSender(tb testing.TB, o SenderOptions) *Sender {
	tb.Helper()
	s := NewSender(o)
	tb.Cleanup(s.Close)
	return s
}

func testRequest(url string) Request {
	return Request{
		URL:     url,
		EventID: "evt_0123456789",
		Body:    []byte(`{"id":"evt_0123456789","type":"message.text"}`),
		Secrets: []string{testSecret},
		Now:     time.Now().Truncate(time.Second),
	}
}

// fakeResolver answers from a table, like a DNS server under test control.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if addrs, ok := f[host]; ok {
		return addrs, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestSendAnswers(t *testing.T) {
	s := newTestSender(t, SenderOptions{AllowPrivate: true})
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name           string
		handler        http.HandlerFunc
		wantStatus     int
		wantClass      string
		wantErrIn      string
		wantRetryAfter time.Duration
		wantBody       string
	}{
		{
			name:       "200 is success",
			handler:    func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") },
			wantStatus: 200, wantBody: "ok",
		},
		{
			name:       "204 is success",
			handler:    func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) },
			wantStatus: 204,
		},
		{
			name:       "299 is success",
			handler:    func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) },
			wantStatus: 299,
		},
		{
			name: "500",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(500)
				io.WriteString(w, "boom")
			},
			wantStatus: 500, wantClass: relay.ErrorHTTPStatus, wantErrIn: "HTTP 500 Internal Server Error", wantBody: "boom",
		},
		{
			name:       "404",
			handler:    func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) },
			wantStatus: 404, wantClass: relay.ErrorHTTPStatus, wantErrIn: "HTTP 404", wantBody: "404 page not found\n",
		},
		{
			name: "429 with Retry-After seconds",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "120")
				w.WriteHeader(429)
			},
			wantStatus: 429, wantClass: relay.ErrorHTTPStatus, wantErrIn: "HTTP 429", wantRetryAfter: 120 * time.Second,
		},
		{
			name: "429 with Retry-After date",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", now.Add(90*time.Second).Format(http.TimeFormat))
				w.WriteHeader(429)
			},
			wantStatus: 429, wantClass: relay.ErrorHTTPStatus, wantRetryAfter: 90 * time.Second,
		},
		{
			name: "503 with Retry-After seconds",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", " 7 ")
				w.WriteHeader(503)
			},
			wantStatus: 503, wantClass: relay.ErrorHTTPStatus, wantRetryAfter: 7 * time.Second,
		},
		{
			name: "503 with Retry-After in the past",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", now.Add(-time.Hour).Format(http.TimeFormat))
				w.WriteHeader(503)
			},
			wantStatus: 503, wantClass: relay.ErrorHTTPStatus,
		},
		{
			name: "429 with garbage Retry-After",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "soon")
				w.WriteHeader(429)
			},
			wantStatus: 429, wantClass: relay.ErrorHTTPStatus,
		},
		{
			name: "500 Retry-After is not read",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "120")
				w.WriteHeader(500)
			},
			wantStatus: 500, wantClass: relay.ErrorHTTPStatus,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tg := newTarget(t, nil, false, tt.handler)
			req := testRequest(tg.URL + "/hook")
			req.Now = now
			res := s.Send(context.Background(), req)
			a := res.Attempt
			if got, want := a.HTTPStatus, tt.wantStatus; got != want {
				t.Errorf("HTTPStatus = %d, want %d", got, want)
			}
			if got, want := a.ErrorClass, tt.wantClass; got != want {
				t.Errorf("ErrorClass = %q, want %q (Error %q)", got, want, a.Error)
			}
			if got, want := res.OK(), tt.wantClass == ""; got != want {
				t.Errorf("OK() = %v, want %v", got, want)
			}
			if got, want := a.Error == "", tt.wantClass == ""; got != want {
				t.Errorf("Error = %q, want empty: %v", a.Error, want)
			}
			if !strings.Contains(a.Error, tt.wantErrIn) {
				t.Errorf("Error = %q, want it to contain %q", a.Error, tt.wantErrIn)
			}
			if got, want := res.RetryAfter, tt.wantRetryAfter; got != want {
				t.Errorf("RetryAfter = %v, want %v", got, want)
			}
			if got, want := string(a.ResponseBody), tt.wantBody; got != want {
				t.Errorf("ResponseBody = %q, want %q", got, want)
			}
			if got, want := a.Time, now; !got.Equal(want) {
				t.Errorf("Time = %v, want %v", got, want)
			}
			if a.Latency <= 0 {
				t.Errorf("Latency = %v, want > 0", a.Latency)
			}
			if got, want := len(tg.requests()), 1; got != want {
				t.Errorf("requests received = %d, want %d", got, want)
			}
		})
	}
}

func TestSendHeaders(t *testing.T) {
	tg := newTarget(t, nil, false, nil)
	s := newTestSender(t, SenderOptions{AllowPrivate: true})
	req := testRequest(tg.URL + "/hook?tenant=1")
	req.Secrets = []string{testSecret, testSecretOld}
	if res := s.Send(context.Background(), req); !res.OK() {
		t.Fatalf("Send: %+v", res.Attempt)
	}
	reqs := tg.requests()
	if len(reqs) != 1 {
		t.Fatalf("requests received = %d, want 1", len(reqs))
	}
	got := reqs[0]
	for _, tt := range []struct{ name, got, want string }{
		{"method", got.method, "POST"},
		{"path", got.path, "/hook"},
		{"Content-Type", got.header.Get("Content-Type"), "application/json"},
		{"User-Agent", got.header.Get("User-Agent"), "wxrelay/1"},
		{"webhook-id", got.header.Get("webhook-id"), "evt_0123456789"},
		{"webhook-timestamp", got.header.Get("webhook-timestamp"), strconv.FormatInt(req.Now.Unix(), 10)},
		{"Content-Length", got.header.Get("Content-Length"), strconv.Itoa(len(req.Body))},
		{"body", string(got.body), string(req.Body)},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	// The receiver's view, checked by the independent library with each
	// of the secrets signing during a rotation.
	for i, secret := range req.Secrets {
		if err := mustVerifier(t, secret).Verify(got.body, got.header); err != nil {
			t.Errorf("Verify with secret %d: %v", i+1, err)
		}
	}
}

func TestSendRedirectNotFollowed(t *testing.T) {
	final := newTarget(t, nil, false, nil)
	s := newTestSender(t, SenderOptions{AllowPrivate: true})
	for _, code := range []int{301, 302, 307, 308} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			tg := newTarget(t, nil, false, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, final.URL+"/elsewhere", code)
			})
			a := s.Send(context.Background(), testRequest(tg.URL)).Attempt
			if got, want := a.HTTPStatus, code; got != want {
				t.Errorf("HTTPStatus = %d, want %d", got, want)
			}
			if got, want := a.ErrorClass, relay.ErrorHTTPStatus; got != want {
				t.Errorf("ErrorClass = %q, want %q", got, want)
			}
			if !strings.Contains(a.Error, "redirects are not followed") {
				t.Errorf("Error = %q, want it to say redirects are not followed", a.Error)
			}
		})
	}
	if got, want := len(final.requests()), 0; got != want {
		t.Errorf("redirect target received %d requests, want %d", got, want)
	}
}

func TestSendTimeout(t *testing.T) {
	tg := newTarget(t, nil, false, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	s := newTestSender(t, SenderOptions{AllowPrivate: true, Timeout: 100 * time.Millisecond})
	start := time.Now()
	res := s.Send(context.Background(), testRequest(tg.URL))
	a := res.Attempt
	if got, want := a.ErrorClass, relay.ErrorTimeout; got != want {
		t.Errorf("ErrorClass = %q, want %q (Error %q)", got, want, a.Error)
	}
	if got, want := a.Error, "no answer within 100ms"; got != want {
		t.Errorf("Error = %q, want %q", got, want)
	}
	if a.HTTPStatus != 0 || res.Canceled {
		t.Errorf("HTTPStatus = %d, Canceled = %v, want 0, false", a.HTTPStatus, res.Canceled)
	}
	if a.Latency < 100*time.Millisecond || time.Since(start) > 3*time.Second {
		t.Errorf("Latency = %v (took %v), want about 100ms", a.Latency, time.Since(start))
	}
}

func TestSendTimeoutWhileBodyStalls(t *testing.T) {
	// The answer's status came in time: a stalled body cuts ResponseBody
	// short but does not change the verdict.
	tg := newTarget(t, nil, false, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	s := newTestSender(t, SenderOptions{AllowPrivate: true, Timeout: 200 * time.Millisecond})
	a := s.Send(context.Background(), testRequest(tg.URL)).Attempt
	if a.ErrorClass != "" || a.HTTPStatus != 200 {
		t.Errorf("Attempt = %d %q, want 200 success", a.HTTPStatus, a.ErrorClass)
	}
	if got, want := string(a.ResponseBody), "partial"; got != want {
		t.Errorf("ResponseBody = %q, want %q", got, want)
	}
}

func TestSendCanceled(t *testing.T) {
	tg := newTarget(t, nil, false, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	s := newTestSender(t, SenderOptions{AllowPrivate: true})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	res := s.Send(ctx, testRequest(tg.URL))
	if !res.Canceled {
		t.Errorf("Canceled = false, want true")
	}
	if got, want := res.Attempt.ErrorClass, relay.ErrorRequest; got != want {
		t.Errorf("ErrorClass = %q, want %q (Error %q)", got, want, res.Attempt.Error)
	}
}

func TestSendRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	s := newTestSender(t, SenderOptions{AllowPrivate: true})
	a := s.Send(context.Background(), testRequest("http://"+addr+"/hook")).Attempt
	if got, want := a.ErrorClass, relay.ErrorConnect; got != want {
		t.Errorf("ErrorClass = %q, want %q (Error %q)", got, want, a.Error)
	}
	if !strings.Contains(a.Error, "refused") {
		t.Errorf("Error = %q, want it to say the connection was refused", a.Error)
	}
	if a.HTTPStatus != 0 {
		t.Errorf("HTTPStatus = %d, want 0", a.HTTPStatus)
	}
}

func TestSendDNSFailure(t *testing.T) {
	s := newTestSender(t, SenderOptions{AllowPrivate: true, Resolver: fakeResolver{"empty.example": nil}})
	for _, host := range []string{"nxdomain.example", "empty.example"} {
		t.Run(host, func(t *testing.T) {
			a := s.Send(context.Background(), testRequest("https://"+host+"/hook")).Attempt
			if got, want := a.ErrorClass, relay.ErrorConnect; got != want {
				t.Errorf("ErrorClass = %q, want %q (Error %q)", got, want, a.Error)
			}
			if !strings.Contains(a.Error, host) {
				t.Errorf("Error = %q, want it to name %s", a.Error, host)
			}
		})
	}
}

func TestSendHugeResponse(t *testing.T) {
	huge := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	tg := newTarget(t, nil, false, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req-42")
		for i := range 100 { // far more than an attempt keeps
			w.Header().Set(fmt.Sprintf("X-Filler-%03d", i), strings.Repeat("f", 40))
		}
		w.Write(huge)
	})
	s := newTestSender(t, SenderOptions{AllowPrivate: true})
	a := s.Send(context.Background(), testRequest(tg.URL)).Attempt
	if a.ErrorClass != "" {
		t.Fatalf("Send: %q %s", a.ErrorClass, a.Error)
	}
	if got, want := len(a.ResponseBody), 4096; got != want {
		t.Errorf("len(ResponseBody) = %d, want %d", got, want)
	}
	if !bytes.Equal(a.ResponseBody, huge[:4096]) {
		t.Errorf("ResponseBody is not the first 4 KiB of the answer")
	}
	// The headers, sorted, in whole lines, within their bound.
	h := a.ResponseHeaders
	if len(h) > relay.MaxResponseHeaders || len(h) < relay.MaxResponseHeaders-100 || !strings.HasPrefix(h, "Content-Type: ") ||
		!strings.Contains(h, "\nDate: ") || !strings.HasSuffix(h, "\n") || strings.Contains(h, "X-Request-Id") {
		t.Errorf("ResponseHeaders (%d bytes) =\n%s\nwant sorted whole lines, at most %d bytes (X-Request-Id sorts past the bound)", len(h), h, relay.MaxResponseHeaders)
	}
}

func TestSendReusesConnections(t *testing.T) {
	// An answer longer than what is kept, but short enough to drain,
	// leaves the connection fit for the next attempt.
	tg := newTarget(t, nil, false, func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 20<<10))
	})
	s := newTestSender(t, SenderOptions{AllowPrivate: true})
	for i := range 3 {
		if a := s.Send(context.Background(), testRequest(tg.URL)).Attempt; a.ErrorClass != "" {
			t.Fatalf("Send %d: %s", i, a.Error)
		}
	}
	if got, want := tg.conns.Load(), int32(1); got != want {
		t.Errorf("connections = %d, want %d", got, want)
	}
}

func TestSendInvalidRequest(t *testing.T) {
	tg := newTarget(t, nil, false, nil)
	for _, tt := range []struct {
		name         string
		allowPrivate bool
		url          string
		secrets      []string
		wantIn       string
	}{
		{"http without private webhooks", false, tg.URL, []string{testSecret}, "must use https"},
		{"ftp", true, "ftp://example.com/hook", []string{testSecret}, "must be an https URL"},
		{"relative", true, "/hook", []string{testSecret}, "must be an https URL"},
		{"no host", true, "https:///hook", []string{testSecret}, "must name a host"},
		{"credentials", true, "http://user:pass@" + strings.TrimPrefix(tg.URL, "http://"), []string{testSecret}, "must not carry credentials"},
		{"unparseable", true, "http://[::1", []string{testSecret}, "does not parse"},
		{"malformed secret", true, tg.URL, []string{"whsec_!!notbase64!!"}, "secret 1 of 1 is not standard base64"},
		{"no secret", true, tg.URL, nil, "no secret"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSender(t, SenderOptions{AllowPrivate: tt.allowPrivate})
			req := testRequest(tt.url)
			req.Secrets = tt.secrets
			a := s.Send(context.Background(), req).Attempt
			if got, want := a.ErrorClass, relay.ErrorRequest; got != want {
				t.Errorf("ErrorClass = %q, want %q (Error %q)", got, want, a.Error)
			}
			if !strings.Contains(a.Error, tt.wantIn) {
				t.Errorf("Error = %q, want it to contain %q", a.Error, tt.wantIn)
			}
			for _, secret := range tt.secrets {
				if strings.Contains(a.Error, strings.TrimPrefix(secret, "whsec_")) {
					t.Errorf("Error = %q reveals a secret", a.Error)
				}
			}
		})
	}
	if got := len(tg.requests()); got != 0 {
		t.Errorf("requests received = %d, want 0", got)
	}
}

func TestSendErrorHidesURLQuery(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := newTestSender(t, SenderOptions{AllowPrivate: true})
	a := s.Send(context.Background(), testRequest("http://"+addr+"/hook?token=hunter2")).Attempt
	if a.ErrorClass == "" || strings.Contains(a.Error, "hunter2") {
		t.Errorf("Error = %q, want a failure that does not repeat the URL's query", a.Error)
	}
}

// TestSSRF checks that, with private webhooks disallowed, no connection is
// made to a non-public address, whichever way the URL names it.
func TestSSRF(t *testing.T) {
	// TLS, since plain http is refused before any dial when private
	// webhooks are disallowed; the check happens before the handshake.
	v4 := newTarget(t, nil, true, nil)
	var v6 *target
	if ln, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		v6 = newTarget(t, ln, true, nil)
	}
	rebind := fakeResolver{
		"hooks.example.com":  {netip.MustParseAddr("127.0.0.1")},
		"meta.example.com":   {netip.MustParseAddr("169.254.169.254")},
		"mapped.example.com": {netip.MustParseAddr("::ffff:10.1.2.3")},
		"many.example.com":   {netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("192.168.0.1"), netip.MustParseAddr("fd00::1")},
	}
	s := newTestSender(t, SenderOptions{Resolver: rebind})
	sys := newTestSender(t, SenderOptions{}) // the system resolver
	tests := []struct {
		name   string
		sender *Sender
		url    string
		wantIn string
	}{
		{"127.0.0.1", s, "https://127.0.0.1:" + v4.port() + "/hook", "blocked: 127.0.0.1 is a loopback"},
		{"10.x", s, "https://10.1.2.3/hook", "10.1.2.3"},
		{"172.16.x", s, "https://172.16.0.1/hook", "172.16.0.1"},
		{"192.168.x", s, "https://192.168.1.1/hook", "192.168.1.1"},
		{"169.254.169.254 (cloud metadata)", s, "https://169.254.169.254/latest/meta-data", "169.254.169.254"},
		{"100.64.x (CGNAT)", s, "https://100.64.0.1/hook", "100.64.0.1"},
		{"0.0.0.0", s, "https://0.0.0.0:" + v4.port() + "/hook", "0.0.0.0"},
		{"224.0.0.1 (multicast)", s, "https://224.0.0.1/hook", "224.0.0.1"},
		{"fc00::1", s, "https://[fc00::1]/hook", "fc00::1"},
		{"fe80::1", s, "https://[fe80::1]/hook", "fe80::1"},
		{"fe80::1 with zone", s, "https://[fe80::1%25lo]/hook", "fe80::1%lo"},
		{"::ffff:127.0.0.1 (v4-mapped)", s, "https://[::ffff:127.0.0.1]:" + v4.port() + "/hook", "::ffff:127.0.0.1"},
		{"localhost via the system resolver", sys, "https://localhost:" + v4.port() + "/hook", "localhost resolves to"},
		{"public-looking name resolving to loopback", s, "https://hooks.example.com:" + v4.port() + "/hook", "hooks.example.com resolves to 127.0.0.1"},
		{"name resolving to cloud metadata", s, "https://meta.example.com/hook", "169.254.169.254"},
		{"name resolving to v4-mapped private", s, "https://mapped.example.com/hook", "mapped.example.com resolves to 10.1.2.3"},
		{"name resolving to several private", s, "https://many.example.com/hook", "many.example.com resolves to 10.0.0.1"},
	}
	if v6 != nil {
		tests = append(tests,
			struct {
				name   string
				sender *Sender
				url    string
				wantIn string
			}{"::1", s, "https://[::1]:" + v6.port() + "/hook", "blocked: ::1 is a loopback"})
	} else {
		t.Log("no IPv6 loopback: ::1 is checked without a listener")
		tests = append(tests, struct {
			name   string
			sender *Sender
			url    string
			wantIn string
		}{"::1", s, "https://[::1]/hook", "blocked: ::1"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.sender.Send(context.Background(), testRequest(tt.url))
			a := res.Attempt
			if got, want := a.ErrorClass, relay.ErrorBlocked; got != want {
				t.Errorf("ErrorClass = %q, want %q (Error %q)", got, want, a.Error)
			}
			if !strings.Contains(a.Error, "WXRELAY_ALLOW_PRIVATE_WEBHOOKS") || !strings.Contains(a.Error, tt.wantIn) {
				t.Errorf("Error = %q, want it to contain %q and name WXRELAY_ALLOW_PRIVATE_WEBHOOKS", a.Error, tt.wantIn)
			}
			if a.HTTPStatus != 0 {
				t.Errorf("HTTPStatus = %d, want 0", a.HTTPStatus)
			}
		})
	}
	for _, tg := range []*target{v4, v6} {
		if tg == nil {
			continue
		}
		if got := tg.conns.Load(); got != 0 {
			t.Errorf("%s accepted %d connections, want 0", tg.Listener.Addr(), got)
		}
		if got := len(tg.requests()); got != 0 {
			t.Errorf("%s received %d requests, want 0", tg.Listener.Addr(), got)
		}
	}
}

// TestSSRFDialerControl checks the dialer's own check, which holds even
// for a path that hands it an address unchecked.
func TestSSRFDialerControl(t *testing.T) {
	tg := newTarget(t, nil, false, nil)
	s := newTestSender(t, SenderOptions{})
	_, err := s.dialer.DialContext(context.Background(), "tcp", tg.Listener.Addr().String())
	var blocked *blockedError
	if !errors.As(err, &blocked) {
		t.Fatalf("dial loopback = %v, want a blockedError", err)
	}
	if got := tg.conns.Load(); got != 0 {
		t.Errorf("accepted %d connections, want 0", got)
	}

	for _, tt := range []struct {
		addr        string
		wantBlocked bool
	}{
		{"127.0.0.1:443", true},
		{"[::1]:443", true},
		{"10.0.0.1:443", true},
		{"172.16.0.1:443", true},
		{"192.168.0.1:443", true},
		{"169.254.169.254:80", true},
		{"100.64.0.1:443", true},
		{"0.0.0.0:443", true},
		{"224.0.0.1:443", true},
		{"[fc00::1]:443", true},
		{"[fe80::1%lo]:443", true},
		{"[::ffff:127.0.0.1]:443", true},
		{"[64:ff9b::a00:1]:443", true}, // NAT64 of 10.0.0.1
		{"not-an-address:443", true},
		{"93.184.215.14:443", false},
		{"[2606:4700::1111]:443", false},
	} {
		t.Run(tt.addr, func(t *testing.T) {
			err := controlPublic("tcp", tt.addr, nil)
			if got, want := err != nil, tt.wantBlocked; got != want {
				t.Errorf("controlPublic(%s) = %v, want blocked: %v", tt.addr, err, want)
			}
		})
	}
}

func TestSendPrivateAllowed(t *testing.T) {
	tg := newTarget(t, nil, false, nil)
	urls := []string{
		tg.URL + "/hook",
		"http://localhost:" + tg.port() + "/hook",
		"http://hooks.example.com:" + tg.port() + "/hook",
	}
	s := newTestSender(t, SenderOptions{
		AllowPrivate: true,
		Resolver:     fakeResolver{"hooks.example.com": {netip.MustParseAddr("127.0.0.1")}},
	})
	for _, u := range urls {
		t.Run(u, func(t *testing.T) {
			// localhost needs the system resolver.
			sender := s
			if strings.Contains(u, "localhost") {
				sender = newTestSender(t, SenderOptions{AllowPrivate: true})
			}
			a := sender.Send(context.Background(), testRequest(u)).Attempt
			if a.ErrorClass != "" || a.HTTPStatus != 200 {
				t.Errorf("Attempt = %d %q %q, want 200 success", a.HTTPStatus, a.ErrorClass, a.Error)
			}
		})
	}
	if got, want := len(tg.requests()), len(urls); got != want {
		t.Errorf("requests received = %d, want %d", got, want)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"30", 30 * time.Second},
		{"-5", 0},
		{"1.5", 0},
		{"99999999999999999999", retryAfterCap},
		{now.Add(time.Minute).Format(http.TimeFormat), time.Minute},
		{now.Add(time.Minute).Format("Monday, 02-Jan-06 15:04:05 GMT"), time.Minute},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"tomorrow", 0},
	} {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			if got := parseRetryAfter(tt.in, now); got != tt.want {
				t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestNewSenderSettings(t *testing.T) {
	for _, tt := range []struct {
		name        string
		o           SenderOptions
		wantTimeout time.Duration
	}{
		{"defaults", SenderOptions{}, 15 * time.Second},
		{"configured timeout", SenderOptions{Timeout: 2 * time.Second}, 2 * time.Second},
		{"configured pool", SenderOptions{ConnsPerHost: 64}, DefaultTimeout},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSender(t, tt.o)
			if got, want := s.Timeout(), tt.wantTimeout; got != want {
				t.Errorf("Timeout() = %v, want %v", got, want)
			}
			if s.transport.Proxy != nil {
				t.Errorf("transport.Proxy is set: an environment proxy would dial past the address check")
			}
			want := 16
			if tt.o.ConnsPerHost > 0 {
				want = tt.o.ConnsPerHost
			}
			if got := s.transport.MaxIdleConnsPerHost; got != want {
				t.Errorf("MaxIdleConnsPerHost = %d, want %d", got, want)
			}
			if s.dialer.Control == nil {
				t.Errorf("dialer.Control is nil with private webhooks disallowed")
			}
		})
	}
}

// BenchmarkSender_Send is one attempt to a loopback webhook answering 204, for
// the Sender's own CPU and allocations per delivery (see BenchmarkDrain
// for the whole path):
//
//	go test ./relay/delivery -run '^$' -bench Sender_Send -benchmem
func BenchmarkSender_Send(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s := NewSender(SenderOptions{AllowPrivate: true})
	defer s.Close()
	req := Request{URL: srv.URL + "/hook", EventID: "evt_x", Body: bytes.Repeat([]byte("x"), 400), Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}
	b.ReportAllocs()
	for b.Loop() {
		if res := s.Send(context.Background(), req); !res.OK() {
			b.Fatal(res.Attempt.Error)
		}
	}
}
