package wxsim

import (
	"net/http"
	"net/netip"
	"time"
)

// Token rules from protocol §6.
const (
	tokenLifetime = 2 * time.Hour    // expires_in 7200
	tokenOverlap  = 5 * time.Minute  // an old token's grace once a new one exists
	forceGap      = 30 * time.Second // force_refresh calls closer than this do not refresh
	forceDailyMax = 20               // force_refresh refreshes per app per day

	// tokenBytes of randomness make a 128-character token: real tokens are
	// long, and the relay must store at least 512 characters.
	tokenBytes = 96
	tokenLen   = 128

	// tokenMemory is how long a dead token is remembered, so that it keeps
	// answering 42001 or 40001 as WeChat's would, before being forgotten to
	// keep a long-running wxsim from growing without bound.
	tokenMemory = 24 * time.Hour
)

// beijing is the zone whose midnight starts WeChat's quota day. WeChat
// states quotas per day without a zone; China Standard Time is our
// assumption. China has no daylight saving, so a fixed zone is exact and
// needs no tzdata.
var beijing = time.FixedZone("CST", 8*60*60)

// app is a registered mini program and its token state.
type app struct {
	id     string
	secret string

	tokens  []*token // every remembered token, classic and stable, oldest first
	classic *token   // latest from /cgi-bin/token
	stable  *token   // current from /cgi-bin/stable_token

	forcedDay   string    // Beijing date of the force_refresh count
	forcedToday int       // force_refresh refreshes on forcedDay
	lastForced  time.Time // time of the last force_refresh that refreshed
}

// token is one access token. Classic and stable tokens are separate
// families: issuing one never affects the other (protocol §6).
type token struct {
	value   string
	appid   string
	stable  bool
	expires time.Time // end of its two hours: 42001 from then on
	end     time.Time // when it stops working: expires, or earlier when superseded or invalidated (40001)
}

// retire makes t stop working at at, unless it already stops sooner.
func (t *token) retire(at time.Time) {
	if at.Before(t.end) {
		t.end = at
	}
}

// remaining is how long t still works.
func (t *token) remaining(now time.Time) time.Duration {
	return t.end.Sub(now)
}

// check answers whether t authorizes a call at now: 40001 once superseded
// or invalidated, 42001 once it has simply run out.
func (t *token) check(now time.Time) error {
	switch {
	case now.Before(t.end):
		return nil
	case t.end.Before(t.expires):
		return fail(codeInvalidCredential, "token was superseded or invalidated")
	default:
		return fail(codeTokenExpired, "token expired")
	}
}

// tokenResult is the success answer of both token endpoints. It has no
// errcode field, as on WeChat (protocol §6).
type tokenResult struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

func answerToken(t *token, now time.Time) tokenResult {
	return tokenResult{AccessToken: t.value, ExpiresIn: int(t.remaining(now) / time.Second)}
}

// AddApp registers a mini program, or changes the secret of a registered
// one. Tokens already issued stay valid; InvalidateTokens kills them.
func (s *Server) AddApp(appid, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.apps[appid]; ok {
		a.secret = secret
		return
	}
	s.apps[appid] = &app{id: appid, secret: secret}
}

// classicToken serves GET /cgi-bin/token. Every call issues a new token;
// the one it replaces keeps working for five minutes, then answers 40001
// (protocol §6).
func (s *Server) classicToken(r *http.Request, rec *Call) (any, error) {
	q := r.URL.Query()
	rec.AppID = q.Get("appid")
	if gt := q.Get("grant_type"); gt != "client_credential" {
		return nil, failf(codeInvalidGrantType, "grant_type %q", gt)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.authenticate(r, q.Get("appid"), q.Get("secret"))
	if err != nil {
		return nil, err
	}
	now := s.now()
	if a.classic != nil {
		a.classic.retire(now.Add(tokenOverlap))
	}
	a.classic = s.issue(a, false, now)
	s.countIssue(a.id, func(c *TokenCounts) { c.Classic++ })
	return answerToken(a.classic, now), nil
}

// stableTokenRequest is the JSON body of /cgi-bin/stable_token, its only
// input: query parameters are ignored (protocol §6).
type stableTokenRequest struct {
	GrantType    string `json:"grant_type"`
	AppID        string `json:"appid"`
	Secret       string `json:"secret"`
	ForceRefresh bool   `json:"force_refresh"`
}

// stableToken serves POST /cgi-bin/stable_token. In normal mode it returns
// the current token unchanged until the token's last five minutes; a call
// then gets a new token and the old one lives out its two hours, so
// expires_in is never below 300 (protocol §6).
func (s *Server) stableToken(r *http.Request, rec *Call) (any, error) {
	var req stableTokenRequest
	if err := readJSON(r, rec, &req); err != nil {
		return nil, err
	}
	rec.AppID = req.AppID
	if req.GrantType != "client_credential" {
		return nil, failf(codeInvalidGrantType, "grant_type %q", req.GrantType)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.authenticate(r, req.AppID, req.Secret)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if req.ForceRefresh {
		t, err := s.forceRefresh(a, now)
		if err != nil {
			return nil, err
		}
		return answerToken(t, now), nil
	}
	if a.stable == nil || a.stable.remaining(now) < tokenOverlap {
		a.stable = s.issue(a, true, now)
		s.countIssue(a.id, func(c *TokenCounts) { c.Stable++ })
	}
	return answerToken(a.stable, now), nil
}

// forceRefresh applies force_refresh:true: the current stable token dies at
// once and a new one is issued, at most 20 times a day; a force_refresh
// within 30 s of the last one that refreshed returns the current token
// instead, and does not count (protocol §6). s.mu must be held.
func (s *Server) forceRefresh(a *app, now time.Time) (*token, error) {
	if cur := a.stable; cur != nil && cur.remaining(now) > 0 && now.Sub(a.lastForced) < forceGap {
		return cur, nil
	}
	if day := now.In(beijing).Format(time.DateOnly); a.forcedDay != day {
		a.forcedDay, a.forcedToday = day, 0
	}
	if a.forcedToday >= forceDailyMax {
		return nil, failf(codeDailyQuota, "force_refresh already refreshed %d times on %s (Beijing)", a.forcedToday, a.forcedDay)
	}
	for _, t := range a.tokens {
		if t.stable {
			t.retire(now)
		}
	}
	a.stable = s.issue(a, true, now)
	a.forcedToday++
	a.lastForced = now
	s.countIssue(a.id, func(c *TokenCounts) { c.StableForced++ })
	return a.stable, nil
}

// authenticate checks the credentials of a token request, in this order:
// appid present (41002), secret present (41004), appid registered (40013),
// secret right (40125), then the IP whitelist switch (40164). s.mu must be
// held.
func (s *Server) authenticate(r *http.Request, appid, secret string) (*app, error) {
	switch {
	case appid == "":
		return nil, fail(codeAppIDMissing, "")
	case secret == "":
		return nil, fail(codeSecretMissing, "")
	}
	a, ok := s.apps[appid]
	switch {
	case !ok:
		return nil, failf(codeInvalidAppID, "appid %q is not registered", appid)
	case secret != a.secret:
		return nil, fail(codeInvalidSecret, "wrong secret")
	case s.faults.ipWhitelist:
		return nil, &apiError{code: codeIPNotWhitelisted, msg: notWhitelisted(r.RemoteAddr), note: "IP whitelist switched on"}
	}
	return a, nil
}

// notWhitelisted renders WeChat's 40164 errmsg, which names the caller's
// address twice: "invalid ip 1.2.3.4 ipv6 ::ffff:1.2.3.4, not in whitelist"
// (protocol §6).
func notWhitelisted(remoteAddr string) string {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return errmsg(codeIPNotWhitelisted)
	}
	ip := ap.Addr().Unmap()
	v4, v6 := ip.String(), ip.String()
	if ip.Is4() {
		v6 = "::ffff:" + v4
	}
	return "invalid ip " + v4 + " ipv6 " + v6 + ", not in whitelist"
}

// issue makes a new token for a and remembers it. s.mu must be held.
func (s *Server) issue(a *app, stable bool, now time.Time) *token {
	s.forget(a, now)
	t := &token{
		value:   randomID(tokenBytes),
		appid:   a.id,
		stable:  stable,
		expires: now.Add(tokenLifetime),
	}
	t.end = t.expires
	a.tokens = append(a.tokens, t)
	s.tokens[t.value] = t
	return t
}

// forget drops a's tokens that stopped working over tokenMemory ago; they
// then read as unknown (40001). s.mu must be held.
func (s *Server) forget(a *app, now time.Time) {
	kept := a.tokens[:0]
	for _, t := range a.tokens {
		if now.Sub(t.end) >= tokenMemory {
			delete(s.tokens, t.value)
			continue
		}
		kept = append(kept, t)
	}
	clear(a.tokens[len(kept):])
	a.tokens = kept
}

// authorize resolves the access_token of an API call to the app it belongs
// to, recording the appid when the token is known: 41001 when it is
// missing, 40014 when it cannot be a token at all, 40001 when it looks like
// one but was never issued or was superseded or invalidated, 42001 when it
// expired.
func (s *Server) authorize(r *http.Request, rec *Call) (appid string, err error) {
	v := r.URL.Query().Get("access_token")
	if v == "" {
		return "", fail(codeTokenMissing, "")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[v]
	switch {
	case ok:
		rec.AppID = t.appid
		return t.appid, t.check(s.now())
	case wellFormed(v):
		return "", fail(codeInvalidCredential, "token was never issued, or forgotten")
	default:
		return "", fail(codeInvalidToken, "not a token wxsim could have issued")
	}
}

// wellFormed reports whether v has the shape of a token wxsim issues.
func wellFormed(v string) bool {
	if len(v) != tokenLen {
		return false
	}
	for _, c := range []byte(v) {
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}
