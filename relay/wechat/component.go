package wechat

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
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
