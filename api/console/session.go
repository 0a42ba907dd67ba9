package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// cookieName is the session cookie. It holds the admin token the operator
// signed in with, and nothing else: the relay keeps no session state, so
// any replica serves any page, and the session ends when the token does.
const cookieName = "wxrelay_console"

// session is a signed-in operator's request.
type session struct {
	token   string
	expires time.Time
}

// csrf is the token every form of this session carries: an HMAC keyed by
// the session's admin token, which a page of another site can neither
// read (the cookie is HttpOnly) nor compute. Stateless, so the same on
// every replica, and it changes with the session.
func (s *session) csrf() string {
	if s == nil {
		return ""
	}
	m := hmac.New(sha256.New, []byte(s.token))
	m.Write([]byte("wxrelay console csrf v1"))
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

// sessionOf returns r's session, if its cookie holds an admin token that
// is still good.
func (c *Console) sessionOf(r *http.Request) (*session, bool) {
	ck, err := r.Cookie(cookieName)
	if err != nil || ck.Value == "" {
		return nil, false
	}
	exp, err := c.o.Admins.VerifyAdmin(ck.Value)
	if err != nil {
		return nil, false
	}
	return &session{token: ck.Value, expires: exp}, true
}

// setSession opens a session with token, until it expires.
func (c *Console) setSession(w http.ResponseWriter, r *http.Request, token string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: token, Path: "/console/",
		Expires: expires, MaxAge: max(1, int(time.Until(expires).Seconds())),
		HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteStrictMode,
	})
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

// login opens a session for a good admin token. The token is never
// echoed back, also not in the form after a failure.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	token := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(r.PostFormValue("token")), "Bearer "))
	next := safeNext(r.PostFormValue("next"))
	exp, err := c.o.Admins.VerifyAdmin(token)
	if token == "" || err != nil {
		msg := "That is not an admin token of this relay, or it has expired. Make one with: wxrelay admin-token"
		if token == "" {
			msg = "Paste an admin token (wxrelay admin-token prints one)."
		}
		c.render(w, "login", http.StatusUnauthorized, pageData{Title: "Sign in", Body: loginBody{Next: next, Error: msg}})
		return
	}
	c.setSession(w, r, token, exp)
	c.o.Logger.Info("console: operator signed in", "session_expires", exp.UTC())
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, _ *session) {
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
