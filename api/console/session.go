package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wxrelay/wxrelay/api/throttle"
)

// cookieName is the session cookie. It holds a random session id, and
// nothing else: the session, in the database, holds the admin token the
// operator signed in with, so any replica serves any page, signing out
// ends the session everywhere, and the token itself never rides in a
// cookie (it cannot be revoked on its own).
const cookieName = "wxrelay_console"

// session is a signed-in operator's request.
type session struct {
	id      string // the cookie's value
	token   string
	expires time.Time
	actor   string // the operator's name, or "admin token"
	// readOnly is set for a viewer, whose pages offer no change.
	readOnly bool
}

// signedIn is who a page is shown to.
type signedIn struct {
	// Name is the operator's name, or "admin token"; "" on the sign-in
	// page.
	Name string
	// ReadOnly is a viewer's: the page shows no form that changes
	// anything (the API would refuse it).
	ReadOnly bool
}

// who names the signed-in operator in the header.
func (s *session) who() signedIn {
	if s == nil {
		return signedIn{}
	}
	return signedIn{Name: s.actor, ReadOnly: s.readOnly}
}

// newSessionID returns a fresh session id: 32 random bytes.
func newSessionID() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// idHash is how the store knows a session id: a copy of the database does
// not hold the ids that open sessions.
func idHash(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

// csrf is the token every form of this session carries: an HMAC keyed by
// the session's id, which a page of another site can neither read (the
// cookie is HttpOnly) nor compute. The same on every replica, and it
// changes with the session.
func (s *session) csrf() string {
	if s == nil {
		return ""
	}
	m := hmac.New(sha256.New, []byte(s.id))
	m.Write([]byte("wxrelay console csrf v2"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkCSRF reports whether r's form carries the session's CSRF token.
func (s *session) checkCSRF(r *http.Request) bool {
	got := r.PostFormValue("csrf")
	return got != "" && hmac.Equal([]byte(got), []byte(s.csrf()))
}

// withSession runs h for a signed-in operator; others are sent to sign in
// (a page) or refused (anything else). A POST without the session's CSRF
// token is refused 403.
func (c *Console) withSession(h func(http.ResponseWriter, *http.Request, *session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.sessionOf(r)
		if !ok {
			if r.Method == http.MethodGet && !strings.HasSuffix(r.URL.Path, ".svg") {
				next := url.QueryEscape(r.URL.RequestURI())
				http.Redirect(w, r, "/console/login?next="+next, http.StatusSeeOther)
				return
			}
			http.Error(w, "sign in to the console first", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if !s.checkCSRF(r) {
				http.Error(w, "this form is stale or was not sent by the console (bad CSRF token): reload the page and try again", http.StatusForbidden)
				return
			}
		}
		h(w, r, s)
	})
}

// maxFormBytes caps a form post.
const maxFormBytes = 64 << 10

// sessionOf returns r's session, if its cookie names an open session
// whose admin token is still good.
func (c *Console) sessionOf(r *http.Request) (*session, bool) {
	ck, err := r.Cookie(cookieName)
	if err != nil || ck.Value == "" || len(ck.Value) > 64 {
		return nil, false
	}
	token, exp, ok, err := c.o.Sessions.FindSession(r.Context(), idHash(ck.Value), c.o.Now())
	if err != nil {
		c.o.Logger.ErrorContext(r.Context(), "console: read a session", "err", err)
		return nil, false
	}
	if !ok {
		return nil, false
	}
	// The token is verified on every request: an operator removed, or an
	// admin token expired, ends the session at once.
	p, _, err := c.o.Admins.VerifySignIn(r.Context(), token)
	if err != nil {
		return nil, false
	}
	return &session{id: ck.Value, token: token, expires: exp, actor: p.Actor(), readOnly: p.ReadOnly}, true
}

// setSession opens a session with token, until it expires.
func (c *Console) setSession(w http.ResponseWriter, r *http.Request, token string, expires time.Time) error {
	id := newSessionID()
	if err := c.o.Sessions.CreateSession(r.Context(), idHash(id), token, expires); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: id, Path: "/console/",
		Expires: expires, MaxAge: max(1, int(time.Until(expires).Seconds())),
		HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteStrictMode,
	})
	return nil
}

func (c *Console) clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: "", Path: "/console/", MaxAge: -1,
		HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteStrictMode,
	})
}

// secure reports whether the cookie must be Secure: over TLS, or behind
// a proxy that terminates it.
func (c *Console) secure(r *http.Request) bool {
	return r.TLS != nil || c.o.SecureCookies || r.Header.Get("X-Forwarded-Proto") == "https"
}

// loginPage asks for an admin token.
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.sessionOf(r); ok {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
		return
	}
	d := loginBody{Next: safeNext(r.URL.Query().Get("next"))}
	if r.URL.Query().Get("expired") != "" {
		d.Error = "Your session has ended: sign in again."
	}
	c.render(w, "login", http.StatusOK, pageData{Title: "Sign in", Body: d})
}

type loginBody struct {
	Next  string
	Error string
}

// DefaultFailures is the budget of failed sign-ins of one address: a few
// mistyped pastes, then one every ten seconds. (An admin token is not to
// be guessed; the budget keeps a guesser from costing anything.)
func DefaultFailures() *throttle.Failures { return throttle.NewFailures(0.1, 10, nil) }

// login opens a session for a good admin token. The token is never
// echoed back, also not in the form after a failure.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	client := c.o.Proxies.ClientAddr(r)
	if c.o.Failures.Blocked(client) {
		w.Header().Set("Retry-After", "10")
		c.render(w, "login", http.StatusTooManyRequests, pageData{Title: "Sign in", Body: loginBody{Next: next,
			Error: "Too many failed sign-ins from your address: wait a little and try again."}})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	token := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(r.PostFormValue("token")), "Bearer "))
	next = safeNext(r.PostFormValue("next"))
	p, exp, err := c.o.Admins.VerifySignIn(r.Context(), token)
	if token == "" || err != nil {
		msg := "That is not an operator key or an admin token of this relay, or it no longer works. An admin makes keys under Operators; wxrelay admin-token prints an admin token."
		if token == "" {
			msg = "Paste your operator key, or an admin token (wxrelay admin-token prints one)."
		} else {
			c.o.Failures.Fail(client)
		}
		c.render(w, "login", http.StatusUnauthorized, pageData{Title: "Sign in", Body: loginBody{Next: next, Error: msg}})
		return
	}
	if err := c.setSession(w, r, token, exp); err != nil {
		c.o.Logger.ErrorContext(r.Context(), "console: open a session", "err", err)
		c.render(w, "login", http.StatusServiceUnavailable, pageData{Title: "Sign in", Body: loginBody{Next: next,
			Error: "The session could not be stored; try again in a moment."}})
		return
	}
	c.o.Logger.Info("console: operator signed in", "operator", p.Actor(), "session_expires", exp.UTC())
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session, on every replica: its cookie, replayed, opens
// nothing, and the admin token it held stays good for the API.
func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	if err := c.o.Sessions.DeleteSession(r.Context(), idHash(s.id)); err != nil {
		c.o.Logger.ErrorContext(r.Context(), "console: end a session", "err", err)
		http.Error(w, "the session could not be ended; try again", http.StatusInternalServerError)
		return
	}
	c.clearSession(w, r)
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

// safeNext keeps a post-login redirect inside the console: an open
// redirect would let a link to the sign-in page send the operator, just
// signed in, anywhere.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if next == "" || err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(u.Path, Prefix) || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return Prefix
	}
	return u.RequestURI()
}
