package wechat

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ComponentEvent is a push to a third-party platform's authorization-event
// URL, decrypted (protocol §9): a component_verify_ticket every 10
// minutes, or an authorization of the component by a mini program
// (authorized, updateauthorized, unauthorized).
type ComponentEvent struct {
	// AppID is the component's appid, as the decrypted body says.
	AppID      string `xml:"AppId"`
	CreateTime int64  `xml:"CreateTime"`
	InfoType   string `xml:"InfoType"`
	// ComponentVerifyTicket, for InfoType component_verify_ticket.
	ComponentVerifyTicket string `xml:"ComponentVerifyTicket"`
	// The authorizer and, but for unauthorized, the code to exchange
	// (api_query_auth) before it expires, and the pre-auth code of the
	// consent link the merchant used.
	AuthorizerAppid              string `xml:"AuthorizerAppid"`
	AuthorizationCode            string `xml:"AuthorizationCode"`
	AuthorizationCodeExpiredTime int64  `xml:"AuthorizationCodeExpiredTime"`
	PreAuthCode                  string `xml:"PreAuthCode"`
}

// The InfoTypes of ComponentEvent the relay acts on.
const (
	InfoTicket           = "component_verify_ticket"
	InfoAuthorized       = "authorized"
	InfoUpdateAuthorized = "updateauthorized"
	InfoUnauthorized     = "unauthorized"
)

// The full-network release check (全网发布, protocol §9): before a
// component goes live, WeChat authorizes its test mini program to the
// component and, from a test user, sends it the text
// QUERY_AUTH_CODE:<code>. The component must answer that push empty,
// exchange <code> (api_query_auth) and send <code>_from_api back to the
// user through custom/send with the authorizer token it got.
const (
	ReleaseTestAppID     = "wxd101a85aa106f53e"
	releaseCheckPrefix   = "QUERY_AUTH_CODE:"
	ReleaseCheckReplyEnd = "_from_api"
	// InfoQueryAuthCode is the relay's own InfoType (WeChat has none) for
	// a release check kept with the authorization events, to be acted
	// on the same way.
	InfoQueryAuthCode = "query_auth_code"
)

// ReleaseCheckCode returns the code of a release check's text message,
// and whether content is one.
func ReleaseCheckCode(content string) (string, bool) {
	code, ok := strings.CutPrefix(content, releaseCheckPrefix)
	return code, ok && code != ""
}

// ReleaseCheckText is the text of the release check's message with code.
func ReleaseCheckText(code string) string { return releaseCheckPrefix + code }

// FuncCustomerService is the permission set (funcscope_category id) of a
// mini program's customer-service messages: without it, WeChat refuses
// the component's sends for the mini program (48001, 61007).
const FuncCustomerService = 19

// OpenComponentEvent verifies and decrypts a push to a component's
// authorization-event URL: safe mode and XML only, msg_signature over the
// component's Token, the ciphertext sealed for the component's appid
// (c's), and the decrypted AppId the component's too. It returns
// ErrBadSignature, ErrMalformed, ErrBadCiphertext or ErrAppIDMismatch.
func OpenComponentEvent(token string, c *Cipher, query url.Values, body []byte) (*ComponentEvent, []byte, error) {
	if err := checkEndpoint(token, ModeSafe, c); err != nil {
		return nil, nil, err
	}
	env, err := ParseEnvelope(body)
	if err != nil {
		return nil, nil, err
	}
	if env.Format != FormatXML {
		return nil, nil, fmt.Errorf("%w: the open platform pushes XML only", ErrMalformed)
	}
	if !VerifySignature(query.Get("msg_signature"), token, query.Get("timestamp"), query.Get("nonce"), env.Encrypt) {
		return nil, nil, ErrBadSignature
	}
	inner, err := c.Decrypt(env.Encrypt)
	if err != nil {
		return nil, nil, err
	}
	var e ComponentEvent
	if err := xml.Unmarshal(inner, &e); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch {
	case e.InfoType == "":
		return nil, nil, fmt.Errorf("%w: no InfoType", ErrMalformed)
	case e.AppID != c.AppID():
		return nil, nil, fmt.Errorf("%w: AppId %q", ErrAppIDMismatch, truncate([]byte(e.AppID), 64))
	case e.InfoType == InfoTicket && e.ComponentVerifyTicket == "":
		return nil, nil, fmt.Errorf("%w: a ticket push without ComponentVerifyTicket", ErrMalformed)
	case (e.InfoType == InfoAuthorized || e.InfoType == InfoUpdateAuthorized || e.InfoType == InfoUnauthorized) && e.AuthorizerAppid == "":
		return nil, nil, fmt.Errorf("%w: %s without AuthorizerAppid", ErrMalformed, e.InfoType)
	}
	return &e, inner, nil
}

// pathComponentToken is the open platform's token endpoint (protocol §9).
const pathComponentToken = "/cgi-bin/component/api_component_token"

// ComponentToken fetches a component access token with the last good
// component_verify_ticket: POST /cgi-bin/component/api_component_token.
// Every call issues a new token; the previous one works about 5 more
// minutes. Errcodes include 61004 (the caller's IP is not whitelisted),
// 61005 (ticket expired), 61006 (ticket invalid) and 45009 (daily quota).
func (c *Client) ComponentToken(ctx context.Context, appid, secret, ticket string) (AccessToken, error) {
	body, err := EncodeJSON(struct {
		AppID  string `json:"component_appid"`
		Secret string `json:"component_appsecret"`
		Ticket string `json:"component_verify_ticket"`
	}{appid, secret, ticket})
	if err != nil {
		return AccessToken{}, err
	}
	var a struct {
		Token     string      `json:"component_access_token"`
		ExpiresIn json.Number `json:"expires_in"`
	}
	if err := c.do(ctx, http.MethodPost, pathComponentToken, "", "application/json", body, &a); err != nil {
		return AccessToken{}, err
	}
	ta := tokenAnswer{AccessToken: a.Token, ExpiresIn: a.ExpiresIn}
	return ta.token(http.MethodPost + " " + pathComponentToken)
}

// Authorization is what api_query_auth and api_authorizer_token answer of
// an authorizer: its token, and the refresh token that fetches the next
// one (store whatever comes back: losing it means asking the merchant to
// authorize again).
type Authorization struct {
	AuthorizerAppID string
	AccessToken     AccessToken
	RefreshToken    string
	FuncInfo        []int // the permission sets granted
}

type authorizationAnswer struct {
	AppID     string      `json:"authorizer_appid"`
	Token     string      `json:"authorizer_access_token"`
	ExpiresIn json.Number `json:"expires_in"`
	Refresh   string      `json:"authorizer_refresh_token"`
	FuncInfo  []struct {
		Category struct {
			ID int `json:"id"`
		} `json:"funcscope_category"`
	} `json:"func_info"`
}

func (a *authorizationAnswer) authorization(op string) (Authorization, error) {
	ta := tokenAnswer{AccessToken: a.Token, ExpiresIn: a.ExpiresIn}
	at, err := ta.token(op)
	if err != nil {
		return Authorization{}, err
	}
	if a.Refresh == "" || a.AppID == "" {
		return Authorization{}, badAnswer(op, "no authorizer_appid or authorizer_refresh_token")
	}
	out := Authorization{AuthorizerAppID: a.AppID, AccessToken: at, RefreshToken: a.Refresh}
	for _, f := range a.FuncInfo {
		out.FuncInfo = append(out.FuncInfo, f.Category.ID)
	}
	return out, nil
}

const (
	pathQueryAuth       = "/cgi-bin/component/api_query_auth"
	pathAuthorizerToken = "/cgi-bin/component/api_authorizer_token"
)

func componentTokenQuery(tok string) string { return "component_access_token=" + url.QueryEscape(tok) }

// QueryAuth exchanges an authorization code (from the consent page's
// redirect or the authorized event) for the authorization:
// POST /cgi-bin/component/api_query_auth.
func (c *Client) QueryAuth(ctx context.Context, componentToken, componentAppID, code string) (Authorization, error) {
	body, err := EncodeJSON(struct {
		AppID string `json:"component_appid"`
		Code  string `json:"authorization_code"`
	}{componentAppID, code})
	if err != nil {
		return Authorization{}, err
	}
	var a struct {
		Info authorizationAnswer `json:"authorization_info"`
	}
	if err := c.do(ctx, http.MethodPost, pathQueryAuth, componentTokenQuery(componentToken), "application/json", body, &a); err != nil {
		return Authorization{}, err
	}
	return a.Info.authorization(http.MethodPost + " " + pathQueryAuth)
}

// AuthorizerToken fetches an authorizer's token with its refresh token:
// POST /cgi-bin/component/api_authorizer_token. The answer's RefreshToken
// may be a new one. Errcode 61023: the refresh token is not (or no longer)
// the authorization's.
func (c *Client) AuthorizerToken(ctx context.Context, componentToken, componentAppID, authorizerAppID, refreshToken string) (Authorization, error) {
	body, err := EncodeJSON(struct {
		AppID      string `json:"component_appid"`
		Authorizer string `json:"authorizer_appid"`
		Refresh    string `json:"authorizer_refresh_token"`
	}{componentAppID, authorizerAppID, refreshToken})
	if err != nil {
		return Authorization{}, err
	}
	var a authorizationAnswer
	if err := c.do(ctx, http.MethodPost, pathAuthorizerToken, componentTokenQuery(componentToken), "application/json", body, &a); err != nil {
		return Authorization{}, err
	}
	a.AppID = authorizerAppID
	return a.authorization(http.MethodPost + " " + pathAuthorizerToken)
}

const pathPreAuthCode = "/cgi-bin/component/api_create_preauthcode"

// PreAuthCode asks for a pre-auth code, which a consent link carries:
// POST /cgi-bin/component/api_create_preauthcode. It expires in minutes
// (expires_in: 600 to 1800 s, the docs disagree), so each link gets a new
// one.
func (c *Client) PreAuthCode(ctx context.Context, componentToken, componentAppID string) (string, time.Duration, error) {
	body, err := EncodeJSON(struct {
		AppID string `json:"component_appid"`
	}{componentAppID})
	if err != nil {
		return "", 0, err
	}
	var a struct {
		Code      string      `json:"pre_auth_code"`
		ExpiresIn json.Number `json:"expires_in"`
	}
	if err := c.do(ctx, http.MethodPost, pathPreAuthCode, componentTokenQuery(componentToken), "application/json", body, &a); err != nil {
		return "", 0, err
	}
	secs, err := a.ExpiresIn.Int64()
	if a.Code == "" || err != nil || secs <= 0 {
		return "", 0, badAnswer(http.MethodPost+" "+pathPreAuthCode, "no pre_auth_code, or no positive expires_in")
	}
	return a.Code, time.Duration(secs) * time.Second, nil
}

const pathAuthorizerList = "/cgi-bin/component/api_get_authorizer_list"

// AuthorizerListEntry is one authorizer of api_get_authorizer_list.
type AuthorizerListEntry struct {
	AppID        string `json:"authorizer_appid"`
	RefreshToken string `json:"refresh_token"`
	AuthTime     int64  `json:"auth_time"`
}

// AuthorizerList pages through a component's authorizers with their
// refresh tokens: POST /cgi-bin/component/api_get_authorizer_list, count
// at most 500. It is how a refresh token WeChat no longer takes (61023)
// is recovered without asking the merchant again.
func (c *Client) AuthorizerList(ctx context.Context, componentToken, componentAppID string, offset, count int) (int, []AuthorizerListEntry, error) {
	body, err := EncodeJSON(struct {
		AppID  string `json:"component_appid"`
		Offset int    `json:"offset"`
		Count  int    `json:"count"`
	}{componentAppID, offset, count})
	if err != nil {
		return 0, nil, err
	}
	var a struct {
		Total int                   `json:"total_count"`
		List  []AuthorizerListEntry `json:"list"`
	}
	if err := c.do(ctx, http.MethodPost, pathAuthorizerList, componentTokenQuery(componentToken), "application/json", body, &a); err != nil {
		return 0, nil, err
	}
	return a.Total, a.List, nil
}

const pathStartPushTicket = "/cgi-bin/component/api_start_push_ticket"

// StartPushTicket asks WeChat to push a component_verify_ticket again,
// with the component's appid and secret (no token: a component without a
// valid ticket has none): POST /cgi-bin/component/api_start_push_ticket.
func (c *Client) StartPushTicket(ctx context.Context, componentAppID, componentSecret string) error {
	body, err := EncodeJSON(struct {
		AppID  string `json:"component_appid"`
		Secret string `json:"component_secret"`
	}{componentAppID, componentSecret})
	if err != nil {
		return err
	}
	var ok struct{}
	return c.do(ctx, http.MethodPost, pathStartPushTicket, "", "application/json", body, &ok)
}
