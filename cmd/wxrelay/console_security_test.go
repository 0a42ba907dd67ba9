package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// consoleClient is a browser-like HTTP client of the console that does
// not follow redirects, so that each answer can be looked at.
type consoleClient struct {
	t      *testing.T
	origin string
	cookie *http.Cookie
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (c *consoleClient) do(method, path string, form url.Values, header map[string]string) answer {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.origin+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.cookie != nil {
		req.AddCookie(c.cookie)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// signIn posts token to the sign-in form and keeps the session cookie.
func (c *consoleClient) signIn(token string, header map[string]string) answer {
	c.t.Helper()
	a := c.do("POST", "/console/login", url.Values{"token": {token}}, header)
	for _, raw := range a.header.Values("Set-Cookie") {
		if ck, err := http.ParseSetCookie(raw); err == nil && ck.Name == "wxrelay_console" {
			c.cookie = ck
		}
	}
	return a
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token from a console page.
func (c *consoleClient) csrf(path string) string {
	c.t.Helper()
	a := c.do("GET", path, nil, nil)
	m := csrfField.FindStringSubmatch(a.body)
	if a.status != 200 || m == nil {
		c.t.Fatalf("GET %s: %d, no CSRF token in\n%s", path, a.status, a.body)
	}
	return m[1]
}

// TestConsole_Security: no console page or action works without a
// session; the session cookie is HttpOnly, SameSite=Strict, Secure behind
// TLS, and ends with its admin token; a form post without the session's
// CSRF token, or from another origin, is refused and changes nothing; a
// hostile display name stays text; every page carries a strict CSP.
func TestConsole_Security(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir, "WXRELAY_ALLOW_PRIVATE_WEBHOOKS=true")
	admin := adminTokenIn(t, dir)
	var created struct {
		Tenant struct{ ID string } `json:"tenant"`
		APIKey string              `json:"api_key"`
	}
	const hostile = `<script>alert(1)</script><img src=x onerror="document.title='pwned'">`
	body := `{"appid":"wx0123456789abcd77","app_secret":"5ec2e75ec2e75ec2e75ec2e75ec2e75e","token":"PushToken1","encrypt_mode":"ENCRYPT_MODE_PLAINTEXT",
		"webhook_url":"http://127.0.0.1:1/hook","display_name":` + string(mustJSON(t, hostile)) + `}`
	if code := p.api(t, "POST", "/v1/tenants", admin, body, &created); code != 200 {
		t.Fatalf("create tenant: %d", code)
	}
	tid := created.Tenant.ID
	anon := &consoleClient{t: t, origin: "http://" + p.http}

	// Without a session: pages send to the sign-in page, actions are
	// refused, and the API wants its own bearer token.
	for _, path := range []string{"/console/", "/console/tenants/new", "/console/tenants/" + tid, "/console/tenants/" + tid + "/events", "/console/tenants/" + tid + "/settings",
		"/console/tenants/" + tid + "/events/evt_x", "/console/nowhere"} {
		a := anon.do("GET", path, nil, nil)
		if loc := a.header.Get("Location"); a.status != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/login?next=") {
			t.Errorf("GET %s without a session: %d to %q, want 303 to the sign-in page", path, a.status, loc)
		}
	}
	for _, path := range []string{"/console/tenants", "/console/tenants/" + tid + "/settings", "/console/tenants/" + tid + "/rotate-api-key", "/console/tenants/" + tid + "/rotate-webhook-secret",
		"/console/tenants/" + tid + "/events/evt_x/redeliver", "/console/logout"} {
		if a := anon.do("POST", path, url.Values{"csrf": {"x"}}, nil); a.status != http.StatusUnauthorized {
			t.Errorf("POST %s without a session: %d, want 401", path, a.status)
		}
	}
	if a := anon.do("GET", "/console/tenants/"+tid+"/chart.svg", nil, nil); a.status != http.StatusUnauthorized {
		t.Errorf("the chart without a session: %d, want 401", a.status)
	}
	if a := anon.do("GET", "/console", nil, nil); a.status/100 != 3 || a.header.Get("Location") != "/console/" {
		t.Errorf("GET /console: %d to %q, want a redirect to /console/", a.status, a.header.Get("Location"))
	}
	if a := anon.do("GET", "/console/static/console.css", nil, nil); a.status != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), "text/css") {
		t.Errorf("the stylesheet: %d %s, want it served to anyone (the sign-in page needs it)", a.status, a.header.Get("Content-Type"))
	}
	if a := anon.do("GET", "/v1/tenants", nil, nil); a.status != http.StatusUnauthorized {
		t.Errorf("the API without a token: %d, want 401", a.status)
	}

	// Sign-in refuses what is not an admin token, and never echoes it.
	for _, bad := range []string{"", "not-a-token", created.APIKey, admin + "x"} {
		a := anon.signIn(bad, nil)
		if a.status != http.StatusUnauthorized || anon.cookie != nil || (bad != "" && strings.Contains(a.body, bad)) {
			t.Errorf("sign-in with %.12q…: %d, cookie %v; want 401, no session, the token not in the page", bad, a.status, anon.cookie)
		}
	}
	// An open redirect after sign-in is not followed.
	op := &consoleClient{t: t, origin: anon.origin}
	a := op.do("POST", "/console/login", url.Values{"token": {admin}, "next": {"//evil.example/console/"}}, nil)
	if loc := a.header.Get("Location"); loc != "/console/" {
		t.Errorf("sign-in with next=//evil.example: redirected to %q, want /console/", loc)
	}

	// The cookie: HttpOnly, SameSite=Strict, scoped to the console,
	// expiring with the token; Secure when the request came over TLS.
	if a := op.signIn(admin, nil); a.status != http.StatusSeeOther || op.cookie == nil {
		t.Fatalf("sign-in: %d, cookie %v", a.status, op.cookie)
	}
	ck := op.cookie
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/console/" || ck.Secure {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/console/, not Secure over plain HTTP", ck)
	}
	if d := time.Until(ck.Expires); d < 23*time.Hour || d > 24*time.Hour+time.Minute {
		t.Errorf("cookie expires in %s, want with the admin token (24 h)", d)
	}
	// Another operator, with an admin token of their own.
	behindTLS := &consoleClient{t: t, origin: anon.origin}
	behindTLS.signIn(adminTokenIn(t, dir), map[string]string{"X-Forwarded-Proto": "https"})
	if behindTLS.cookie == nil || !behindTLS.cookie.Secure {
		t.Errorf("cookie behind a TLS proxy %+v, want Secure", behindTLS.cookie)
	}

	// The chart alone, as an image, for a signed-in operator.
	if a := op.do("GET", "/console/tenants/"+tid+"/chart.svg", nil, nil); a.status != 200 ||
		a.header.Get("Content-Type") != "image/svg+xml" || !strings.HasPrefix(a.body, "<svg xmlns=") {
		t.Errorf("chart.svg: %d %s %.40q, want an SVG image", a.status, a.header.Get("Content-Type"), a.body)
	}

	// Every page: a strict CSP, no caching, no framing.
	page := op.do("GET", "/console/tenants/"+tid, nil, nil)
	if csp := page.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") ||
		strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q, want default-src 'none', script-src 'self', no unsafe-inline, frame-ancestors 'none'", csp)
	}
	if page.header.Get("Cache-Control") != "no-store" || page.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v, want Cache-Control: no-store and nosniff", page.header)
	}
	if strings.Contains(page.body, "<script>alert(1)") || !strings.Contains(page.body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("the hostile display name is not escaped in the tenant page")
	}

	// A forged form post: no CSRF token, a wrong one, or the right one
	// from another origin. Each is refused, and the API key still works.
	rotate := "/console/tenants/" + tid + "/rotate-api-key"
	token := op.csrf("/console/tenants/" + tid)
	for name, f := range map[string]struct {
		form   url.Values
		header map[string]string
	}{
		"no token":                {url.Values{}, nil},
		"wrong token":             {url.Values{"csrf": {token[:len(token)-2] + "xx"}}, nil},
		"another session's token": {url.Values{"csrf": {behindTLS.csrf("/console/")}}, nil},
		"cross-site":              {url.Values{"csrf": {token}}, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}},
	} {
		if a := op.do("POST", rotate, f.form, f.header); a.status != http.StatusForbidden {
			t.Errorf("forged rotation (%s): %d, want 403", name, a.status)
		}
	}
	if code := p.api(t, "GET", "/v1/tenants/"+tid, created.APIKey, "", nil); code != 200 {
		t.Fatalf("after the forged posts the API key answers %d, want it unchanged (200)", code)
	}
	// The console's own post does rotate: the check above could fail.
	if a := op.do("POST", rotate, url.Values{"csrf": {token}}, nil); a.status != 200 || !strings.Contains(a.body, `id="new-secret"`) {
		t.Fatalf("rotation with the CSRF token: %d", a.status)
	}
	if code := p.api(t, "GET", "/v1/tenants/"+tid, created.APIKey, "", nil); code != http.StatusUnauthorized {
		t.Errorf("the rotated-out API key answers %d, want 401", code)
	}

	// Signing out ends the cookie, and the session: the old cookie,
	// replayed, opens nothing, while the admin token it was opened with
	// still works for the API.
	a = op.do("POST", "/console/logout", url.Values{"csrf": {token}}, nil)
	if a.status != http.StatusSeeOther || !strings.Contains(a.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("sign-out: %d, Set-Cookie %q; want the cookie cleared", a.status, a.header.Get("Set-Cookie"))
	}
	if a := op.do("GET", "/console/", nil, nil); a.status != http.StatusSeeOther {
		t.Errorf("the signed-out session's cookie, replayed: %d, want 303 to sign in", a.status)
	}
	if strings.Contains(op.cookie.Value, ".") || strings.Contains(admin, op.cookie.Value) {
		t.Errorf("the session cookie holds the admin token (or part of it)")
	}
	if code := p.api(t, "GET", "/v1/tenants", admin, "", nil); code != 200 {
		t.Errorf("the admin token after signing out of the console: %d, want 200", code)
	}

	// A session ends with its token.
	short := &consoleClient{t: t, origin: anon.origin}
	short.signIn(adminTokenFor(t, dir, nil, "--ttl", "2s"), nil)
	if a := short.do("GET", "/console/", nil, nil); a.status != 200 {
		t.Fatalf("with a fresh 2 s token: %d", a.status)
	}
	time.Sleep(3 * time.Second)
	if a := short.do("GET", "/console/", nil, nil); a.status != http.StatusSeeOther {
		t.Errorf("after the token expired: %d, want 303 to sign in again", a.status)
	}

	// In a real browser the hostile name is text: no script ran, the
	// title is the console's, and the cell reads the name as typed.
	ctx := browser(t)
	do(t, ctx, "sign in", chromedp.Navigate(anon.origin+"/console/login"),
		chromedp.SendKeys(chromedp.ID("token"), admin), chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-tenant="`+tid+`"]`)))
	if cell := text(t, ctx, `tr[data-tenant="`+tid+`"] td a`); cell != hostile {
		t.Errorf("the name's cell reads %q, want the name as text", cell)
	}
	do(t, ctx, "open the tenant", chromedp.Navigate(anon.origin+"/console/tenants/"+tid), chromedp.WaitVisible(chromedp.CSS("h1")))
	if title := get(t, ctx, "title", chromedp.Title()); title != hostile+" · wxrelay console" {
		t.Errorf("the title is %q, want the hostile name as text (its onerror sets it to pwned)", title)
	}
	if n := js[int](t, ctx, `document.querySelectorAll("script:not([src]), img[src=x]").length`); n != 0 {
		t.Errorf("the hostile name made %d elements in the page, want none", n)
	}
	cookies := js[string](t, ctx, `document.cookie`)
	if strings.Contains(cookies, "wxrelay_console") {
		t.Errorf("page script can read the session cookie: %q", cookies)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConsole_SignInThrottled: after a few failed sign-ins an address is
// refused (429) before its token is looked at, while another address (as
// the trusted proxy on loopback says) signs in.
func TestConsole_SignInThrottled(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir)
	admin := adminTokenIn(t, dir)
	origin := "http://" + p.http
	stranger := &consoleClient{t: t, origin: origin}
	from := func(ip string) map[string]string { return map[string]string{"X-Forwarded-For": ip} }
	var refused int
	for range 30 {
		switch a := stranger.signIn("eyJhbGciOiJIUzI1NiJ9.e30.guess", from("203.0.113.9")); a.status {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			refused++
		default:
			t.Fatalf("a wrong token: %d", a.status)
		}
	}
	if refused < 15 {
		t.Errorf("%d of 30 failed sign-ins from one address refused unread, want those past the budget of 10", refused)
	}
	// The right token from that address waits too: the budget is the
	// address's, whatever it sends next.
	if a := stranger.signIn(admin, from("203.0.113.9")); a.status != http.StatusTooManyRequests {
		t.Errorf("a good token from the throttled address: %d, want 429", a.status)
	}
	op := &consoleClient{t: t, origin: origin}
	if a := op.signIn(admin, from("198.51.100.4")); a.status != http.StatusSeeOther || op.cookie == nil {
		t.Errorf("another address's sign-in: %d, want 303 and a session", a.status)
	}
}
