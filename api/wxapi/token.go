package wxapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// tokenRequest is what both token endpoints take: the query of GET
// /cgi-bin/token, the JSON body of POST /cgi-bin/stable_token.
type tokenRequest struct {
	GrantType    string `json:"grant_type"`
	AppID        string `json:"appid"`
	Secret       string `json:"secret"`
	ForceRefresh bool   `json:"force_refresh"`
}

// secretHint ends the errmsg of a refused secret: the one mistake a tenant
// moving an SDK over is sure to make is to keep its AppSecret there. The
// same words whatever was presented, so the answer says nothing of
// whether the secret was the AppSecret.
const secretHint = "invalid appsecret: the secret for wxrelay is the tenant's wxrelay api_key, not the AppSecret (wxrelay alone holds that)"

func (h *Handler) serveToken(a *answer, r *http.Request) {
	var req tokenRequest
	switch {
	case r.URL.Path == "/cgi-bin/token" && r.Method == http.MethodGet:
		q := r.URL.Query()
		req = tokenRequest{GrantType: q.Get("grant_type"), AppID: q.Get("appid"), Secret: q.Get("secret")}
	case r.URL.Path == "/cgi-bin/stable_token" && r.Method == http.MethodPost:
		body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, 64<<10))
		if err != nil {
			a.refuse(http.StatusOK, codeDataFormat, "data format error: the body could not be read: "+err.Error())
			return
		}
		if len(body) == 0 {
			a.refuse(http.StatusOK, codeEmptyPostData, "empty post data")
			return
		}
		if err := json.Unmarshal(body, &req); err != nil {
			a.refuse(http.StatusOK, codeDataFormat, "data format error: the body is not the JSON stable_token takes")
			return
		}
	default:
		want := http.MethodGet
		if r.URL.Path == "/cgi-bin/stable_token" {
			want = http.MethodPost
		}
		a.w.Header().Set("Allow", want)
		a.refuse(http.StatusMethodNotAllowed, codeInvalidURL, fmt.Sprintf("invalid url: %s takes %s", r.URL.Path, want))
		return
	}
	h.issue(a, r, req)
}

// issue answers a token request: WeChat's checks in WeChat's order
// (grant_type, appid, secret), then the real token's expiry from the
// keeper, and a relay token that lasts as long.
func (h *Handler) issue(a *answer, r *http.Request, req tokenRequest) {
	ctx := r.Context()
	switch {
	case req.GrantType != "client_credential":
		a.refuse(http.StatusOK, codeInvalidGrantType, `invalid grant_type: it must be "client_credential"`)
		return
	case req.AppID == "":
		a.refuse(http.StatusOK, codeAppIDMissing, "appid missing")
		return
	case req.Secret == "":
		a.refuse(http.StatusOK, codeSecretMissing, "appsecret missing")
		return
	}
	tid, err := h.opts.AppIDs.IDByAppID(ctx, req.AppID)
	if errors.Is(err, tenant.ErrNotFound) {
		a.authFailed = true
		a.refuse(http.StatusOK, codeInvalidAppID, "invalid appid: no tenant of wxrelay has this appid")
		return
	} else if err != nil {
		h.systemError(a, r, "find the tenant of an appid", err)
		return
	}
	if err := h.opts.Auth.CheckAPIKey(ctx, tid, req.Secret); err != nil {
		if !errors.Is(err, tenant.ErrUnauthenticated) {
			h.systemError(a, r, "check an api key", err)
			return
		}
		// Not the tenant's call: anyone who knows an appid could
		// otherwise spend its rate limit and fill its call list.
		a.authFailed = true
		a.refuse(http.StatusOK, codeInvalidSecret, secretHint)
		return
	}
	a.tenant = tid
	if !h.allow(tid) {
		h.limited(a)
		return
	}
	t, err := h.opts.Tenants.Get(ctx, tid)
	if err != nil {
		h.tenantError(a, r, err)
		return
	}
	if t.State != tenant.StateActive {
		a.refuse(http.StatusOK, codeUnauthorized, msgDisabled)
		return
	}
	real, expires, err := h.opts.Tokens.TokenExpiry(ctx, tid)
	if err == nil && req.ForceRefresh {
		// Compare-and-refresh: the keeper fetches only if the token is
		// still the one just read, shares the fetch with concurrent
		// callers, and keeps WeChat's force-refresh budget. A refusal for
		// that budget leaves the current token, which is still good as
		// far as anyone knows: forwarded calls refresh it themselves when
		// WeChat says otherwise.
		var rerr error
		_, expires, rerr = h.opts.Tokens.RefreshExpiry(ctx, tid, real)
		if errors.Is(rerr, token.ErrForceLimited) {
			_, expires, err = h.opts.Tokens.TokenExpiry(ctx, tid)
		} else {
			err = rerr
		}
	}
	if err != nil {
		h.keeperError(a, r, tid, err)
		return
	}
	now := h.now()
	if !expires.After(now.Add(time.Second)) {
		expires = now.Add(minUnknownLife)
	}
	relayToken, err := h.opts.Auth.IssueWeChatToken(t, expires)
	if err != nil {
		h.systemError(a, r, "issue a relay token", err)
		return
	}
	a.errcode = "0"
	a.json(http.StatusOK, struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}{relayToken, int64(expires.Sub(now) / time.Second)})
}

// msgDisabled answers a call of a disabled tenant, with WeChat's 48001.
const msgDisabled = "api unauthorized: the tenant is disabled in wxrelay"

// minUnknownLife is the life of a relay token whose real token has an
// expiry already past (a clock step): short, so the SDK soon asks again.
const minUnknownLife = 5 * time.Minute

// keeperError answers a failure to get the tenant's real token: WeChat's
// own refusal passed on with its code (40125 for the AppSecret the relay
// holds, 40164 for the relay's IP not whitelisted, ...), with a note that
// it concerns the relay's credentials, not the caller's.
func (h *Handler) keeperError(a *answer, r *http.Request, tid tenant.ID, err error) {
	var apiErr *wechat.APIError
	switch {
	case errors.As(err, &apiErr):
		a.refuse(http.StatusOK, apiErr.Code, fmt.Sprintf("%s (WeChat refused wxrelay's own access token fetch for this tenant: check its app_secret in wxrelay and the IP whitelist in WeChat's console)", apiErr.Msg))
	case errors.Is(err, token.ErrBackoff):
		a.refuse(http.StatusOK, codeSystemError, "system error: wxrelay could not get an access token from WeChat recently and is retrying; try again shortly")
	case errors.Is(err, tenant.ErrNotFound):
		a.refuse(http.StatusOK, codeInvalidCredential, "invalid credential, access_token is invalid or not latest: the tenant no longer exists")
	case errors.Is(err, tenant.ErrDisabled): // disabled since the call was let in
		a.refuse(http.StatusOK, codeUnauthorized, msgDisabled)
	case errors.Is(err, tenant.ErrNotAuthorized):
		// WeChat's own answer to a component calling for a mini program
		// that has not authorized it.
		a.refuse(http.StatusOK, codeNotAuthorized, "component is not authorized by this account: the mini program has not authorized the tenant's component in wxrelay, or revoked it")
	default:
		h.log.ErrorContext(r.Context(), "wxapi: no access token for a tenant", "tenant", tid, "err", err)
		a.refuse(http.StatusOK, codeSystemError, "system error: wxrelay could not get an access token from WeChat; try again shortly")
	}
}

// tenantError answers a failure to read the tenant of a call.
func (h *Handler) tenantError(a *answer, r *http.Request, err error) {
	if errors.Is(err, tenant.ErrNotFound) {
		a.refuse(http.StatusOK, codeInvalidCredential, "invalid credential, access_token is invalid or not latest: the tenant no longer exists")
		return
	}
	h.systemError(a, r, "read a tenant", err)
}

// systemError answers WeChat's "system error" (-1), on which SDKs retry,
// and logs what failed; the caller learns nothing of it.
func (h *Handler) systemError(a *answer, r *http.Request, what string, err error) {
	h.log.ErrorContext(r.Context(), "wxapi: "+what, "path", r.URL.Path, "err", err)
	a.refuse(http.StatusOK, codeSystemError, "system error")
}

func (h *Handler) limited(a *answer) {
	a.refuse(http.StatusOK, codeMinuteQuota, fmt.Sprintf("api minute-quota reach limit: wxrelay takes at most %g calls a second per tenant on the compatible API", h.opts.Rate))
}
