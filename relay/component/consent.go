package component

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// PreAuther asks for pre-auth codes; *wechat.Client is one.
type PreAuther interface {
	PreAuthCode(ctx context.Context, componentToken, componentAppID string) (string, time.Duration, error)
}

// Consent makes consent links for components' tenants and serves the
// page WeChat's consent page sends the merchant's browser back to.
type Consent struct {
	store      Components
	tokens     ComponentTokens
	wx         PreAuther
	authorizer *Authorizer
	mp         string // WeChat's consent page host, e.g. https://mp.weixin.qq.com
	publicURL  string
	log        *slog.Logger
	now        func() time.Time
}

// NewConsent returns a Consent; mp and publicURL are base URLs.
func NewConsent(s Components, tokens ComponentTokens, wx PreAuther, authorizer *Authorizer, mp, publicURL string, log *slog.Logger, now func() time.Time) *Consent {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Consent{store: s, tokens: tokens, wx: wx, authorizer: authorizer,
		mp: strings.TrimRight(mp, "/"), publicURL: strings.TrimRight(publicURL, "/"), log: log, now: now}
}

// AuthorizationURL makes a fresh consent link for tenant t of a component
// (pre-auth codes expire in minutes, so never reuse one): the merchant
// opening it authorizes the component for t's mini program (auth_type 2,
// mini programs; biz_appid pins t's appid), and the browser comes back to
// {public_url}/wxc/{component}/authorized.
func (c *Consent) AuthorizationURL(ctx context.Context, t *tenant.Tenant) (string, time.Time, error) {
	if t.ComponentID == "" {
		return "", time.Time{}, &tenant.FieldError{Field: "id", Reason: "is not a tenant of a component (component_id): it has no consent link"}
	}
	comp, err := c.store.FindComponent(ctx, t.ComponentID)
	if err != nil {
		return "", time.Time{}, err
	}
	var life time.Duration
	code, _, err := withToken(ctx, c.tokens, comp.ID, func(tok string) (code string, err error) {
		code, life, err = c.wx.PreAuthCode(ctx, tok, comp.AppID)
		return code, err
	})
	if err != nil {
		return "", time.Time{}, err
	}
	q := url.Values{
		"component_appid": {comp.AppID},
		"pre_auth_code":   {code},
		"redirect_uri":    {c.publicURL + "/wxc/" + string(comp.ID) + "/authorized"},
		"auth_type":       {"2"},
		"biz_appid":       {t.AppID},
	}
	return c.mp + "/cgi-bin/componentloginpage?" + q.Encode(), c.now().Add(life).UTC(), nil
}

var redirectPage = template.Must(template.New("authorized").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body><h1>{{.Title}}</h1><p>{{.Text}}</p></body></html>
`))

// ServeHTTP serves GET /wxc/{id}/authorized?auth_code=…&expires_in=…: the
// code is exchanged at once (the authorized event may come before or
// after, once or twice: the outcome is the same), and the merchant reads
// which mini program is now authorized, or what went wrong.
func (c *Consent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	page := func(status int, title, text string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		redirectPage.Execute(w, struct{ Title, Text string }{title, text})
	}
	id := tenant.ComponentID(r.PathValue("id"))
	code := r.URL.Query().Get("auth_code")
	if !tenant.ValidComponentID(id) || code == "" || len(code) > 512 {
		page(http.StatusNotFound, "Not found", "This page is where WeChat's consent page sends you back; it needs the authorization code WeChat adds.")
		return
	}
	comp, err := c.store.FindComponent(r.Context(), id)
	if errors.Is(err, tenant.ErrComponentNotFound) {
		page(http.StatusNotFound, "Not found", "No such third-party platform here.")
		return
	} else if err != nil {
		c.log.ErrorContext(r.Context(), "consent redirect: find the component", "component", id, "err", err)
		page(http.StatusInternalServerError, "Something went wrong", "The authorization could not be recorded now; it will be when WeChat's notice of it arrives.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	auth, err := c.authorizer.Authorize(ctx, comp, code, c.now())
	if err != nil {
		c.log.WarnContext(ctx, "consent redirect: exchange the code", "component", id, "err", err)
		msg := "The authorization could not be recorded now; it will be when WeChat's notice of it arrives."
		if wechat.Errcode(err) == 61010 {
			msg = "The authorization code has expired: open a new consent link and authorize again."
		}
		page(http.StatusBadGateway, "Not authorized yet", msg)
		return
	}
	page(http.StatusOK, "Authorized", fmt.Sprintf("The mini program %s has authorized %s. You can close this page.", auth.AuthorizerAppID, displayName(comp)))
}

func displayName(c *tenant.Component) string {
	if c.DisplayName != "" {
		return c.DisplayName
	}
	return c.AppID
}
