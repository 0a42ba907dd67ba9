// Package console serves the operator console at /console/: server-rendered
// pages over the relay's own API, for the admins who run it.
//
// The console holds no authority of its own. An operator signs in with an
// admin token, which the console keeps, sealed, in a session of the
// database (the cookie holds only the session's random id) and presents,
// as the bearer token, on every call it makes to the API on the
// operator's behalf, through the API's own interceptors: a page shows
// exactly what the token may see, and the validation messages of a form
// are the API's. Signing out ends the session on every replica.
//
// Everything is in the binary (templates and assets are embedded), and
// nothing is fetched at run time: the console works offline, and its
// Content-Security-Policy allows only its own scripts and styles.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
	"github.com/wxrelay/wxrelay/api/throttle"
	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/tenant"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Prefix is where the console is served.
const Prefix = "/console/"

// AdminVerifier checks an admin token and says when it expires;
// *tenant.Authenticator is one.
type AdminVerifier interface {
	VerifySignIn(ctx context.Context, token string) (tenant.Principal, time.Time, error)
}

// Stats counts a tenant's delivery attempts by the minute, for the chart;
// *store.EventStore is one.
type Stats interface {
	AttemptsPerMinute(ctx context.Context, tid tenant.ID, from, to time.Time) ([]relay.MinuteCount, error)
}

// Sessions keeps console sessions, each the admin token it was opened
// with, by the SHA-256 of its id; *store.SessionStore is one.
type Sessions interface {
	CreateSession(ctx context.Context, idHash []byte, token string, expires time.Time) error
	FindSession(ctx context.Context, idHash []byte, now time.Time) (token string, expires time.Time, ok bool, err error)
	DeleteSession(ctx context.Context, idHash []byte) error
}

// Options configure a Console. All are required but Logger, Now, Proxies
// and Failures.
type Options struct {
	// API reaches the relay's services; the console calls them with the
	// operator's token (api.Server.Client).
	API      grpc.ClientConnInterface
	Admins   AdminVerifier
	Stats    Stats
	Sessions Sessions
	// Proxies name the client of a request behind trusted proxies, and
	// Failures counts failed sign-ins by client; nil Failures means
	// DefaultFailures.
	Proxies  throttle.Proxies
	Failures *throttle.Failures
	// SecureCookies marks the session cookie Secure even on requests
	// that arrive over plain HTTP: set when a proxy terminates TLS (the
	// public URL is https). Requests over TLS always get Secure cookies.
	SecureCookies bool
	Logger        *slog.Logger
	Now           func() time.Time
}

// Console is the operator console's HTTP handler.
type Console struct {
	o       Options
	tenants wxrelayv1.TenantServiceClient
	events  wxrelayv1.EventServiceClient
	calls   wxrelayv1.CallServiceClient
	ops     wxrelayv1.OperatorServiceClient
	audit   wxrelayv1.AuditServiceClient
	// components: third-party platforms (components.go).
	components wxrelayv1.ComponentServiceClient
	pages      map[string]*template.Template
	handler    http.Handler
}

// New returns the console.
func New(o Options) (*Console, error) {
	if o.API == nil || o.Admins == nil || o.Stats == nil || o.Sessions == nil {
		return nil, errors.New("console: API, Admins, Stats and Sessions are required")
	}
	if o.Failures == nil {
		o.Failures = DefaultFailures()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Console{o: o, tenants: wxrelayv1.NewTenantServiceClient(o.API), events: wxrelayv1.NewEventServiceClient(o.API),
		calls:      wxrelayv1.NewCallServiceClient(o.API),
		ops:        wxrelayv1.NewOperatorServiceClient(o.API),
		audit:      wxrelayv1.NewAuditServiceClient(o.API),
		components: wxrelayv1.NewComponentServiceClient(o.API)}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", cacheStatic(http.FileServerFS(static))))
	mux.HandleFunc("GET /console/login", c.loginPage)
	mux.HandleFunc("POST /console/login", c.login)
	// Everything else needs a session; a POST also its CSRF token.
	for pattern, h := range map[string]func(http.ResponseWriter, *http.Request, *session){
		"POST /console/logout":                                c.logout,
		"GET /console/{$}":                                    c.tenantList,
		"GET /console/tenants/new":                            c.forChangers(c.newTenantPage),
		"POST /console/tenants":                               c.createTenant,
		"GET /console/tenants/{id}":                           c.tenantPage,
		"GET /console/tenants/{id}/settings":                  c.forChangers(c.editTenantPage),
		"POST /console/tenants/{id}/settings":                 c.updateTenant,
		"GET /console/tenants/{id}/chart.svg":                 c.chart,
		"POST /console/tenants/{id}/rotate-api-key":           c.rotateAPIKey,
		"POST /console/tenants/{id}/rotate-webhook-secret":    c.rotateWebhookSecret,
		"GET /console/tenants/{id}/events":                    c.eventList,
		"GET /console/tenants/{id}/events/{event}":            c.eventPage,
		"POST /console/tenants/{id}/events/{event}/redeliver": c.redeliver,
		"POST /console/tenants/{id}/test-event":               c.sendTestEvent,
		"GET /console/tenants/{id}/calls":                     c.callList,
		"GET /console/search":                                 c.search,
		"POST /console/tenants/{id}/recover":                  c.recoverFailed,
		"GET /console/operators":                              c.operatorList,
		"POST /console/operators":                             c.createOperator,
		"POST /console/operators/{id}/delete":                 c.deleteOperator,
		"POST /console/operators/{id}/rotate-key":             c.rotateOperatorKey,
		"GET /console/audit":                                  c.auditList,
		"GET /console/":                                       c.notFound,
		"GET /console/components":                             c.componentList,
		"GET /console/components/new":                         c.forChangers(c.newComponentPage),
		"POST /console/components":                            c.createComponent,
		"GET /console/components/{id}":                        c.componentPage,
		"POST /console/tenants/{id}/authorization-url":        c.authorizationURL,
	} {
		mux.Handle(pattern, c.withSession(h))
	}
	// Defence in depth beside the CSRF token: browsers say where a request
	// comes from, and a cross-origin POST is refused before any handler.
	csrf := http.NewCrossOriginProtection()
	c.handler = securityHeaders(csrf.Handler(mux))
	return c, nil
}

// ServeHTTP serves the console's pages under Prefix.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.handler.ServeHTTP(w, r) }

// contentSecurityPolicy allows the console's own scripts, styles and
// images and nothing else: no inline script or style, no frames, forms
// posting only here.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, "/console/static/") {
			// Pages show tenants' data and, once, new secrets.
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

func cacheStatic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Short: the assets change with the binary, and their names don't.
		w.Header().Set("Cache-Control", "public, max-age=300")
		next.ServeHTTP(w, r)
	})
}

// callCtx is ctx carrying the operator's token to the API.
func callCtx(ctx context.Context, s *session) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+s.token)
}

// pageData is what every page's layout needs.
type pageData struct {
	Title string
	CSRF  string
	// Who is the signed-in operator.
	Who signedIn
	// Nav marks the current section in the header.
	Nav string
	// Flash is a one-line notice at the top of the page.
	Flash string
	// Refresh reloads the page every so many seconds (0: never): for the
	// pages an operator keeps open to watch, never for one that shows a
	// secret once or holds a form.
	Refresh int
	Body    any
}

// render writes page name with the layout, status 200 unless given.
func (c *Console) render(w http.ResponseWriter, name string, status int, d pageData) {
	t, ok := c.pages[name]
	if !ok {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", d); err != nil {
		c.o.Logger.Error("console: render", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(b.String()))
}

// apiError answers a failed API call: a lapsed session goes back to the
// sign-in page; anything else is a page saying what the API said.
func (c *Console) apiError(w http.ResponseWriter, r *http.Request, s *session, err error) {
	st := status.Convert(err)
	code := http.StatusInternalServerError
	switch st.Code() {
	case codes.Unauthenticated:
		c.clearSession(w, r)
		http.Redirect(w, r, "/console/login?expired=1", http.StatusSeeOther)
		return
	case codes.NotFound:
		code = http.StatusNotFound
	case codes.InvalidArgument, codes.FailedPrecondition:
		code = http.StatusBadRequest
	case codes.PermissionDenied:
		code = http.StatusForbidden
	case codes.AlreadyExists:
		code = http.StatusConflict
	case codes.Unavailable, codes.ResourceExhausted:
		code = http.StatusServiceUnavailable
	}
	c.render(w, "error", code, pageData{Title: http.StatusText(code), CSRF: s.csrf(), Who: s.who(), Body: errorBody{
		Status: code, Message: st.Message(),
	}})
}

type errorBody struct {
	Status  int
	Message string
}

// forChangers keeps a viewer off a page that is only a form to change
// something, which the API would refuse on submission: they are told so
// before they fill it in.
func (c *Console) forChangers(page func(http.ResponseWriter, *http.Request, *session)) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		if s.who().ReadOnly {
			c.render(w, "error", http.StatusForbidden, pageData{Title: "Viewers change nothing", CSRF: s.csrf(), Who: s.who(), Body: errorBody{
				Status: http.StatusForbidden, Message: fmt.Sprintf("%s is a viewer: this page is a form to change the relay, which viewers may read, not change; an admin operator can", s.who().Name),
			}})
			return
		}
		page(w, r, s)
	}
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request, s *session) {
	c.render(w, "error", http.StatusNotFound, pageData{Title: "Not found", CSRF: s.csrf(), Who: s.who(), Body: errorBody{
		Status: http.StatusNotFound, Message: fmt.Sprintf("there is no console page at %s", r.URL.Path),
	}})
}
