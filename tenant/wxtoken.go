package tenant

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Relay tokens are what the WeChat-compatible API (api/wxapi) hands to a
// tenant's SDK in place of WeChat's access_token: the SDK puts one in the
// access_token query parameter of every call, and the relay swaps in the
// real token, which never leaves it.
//
// A relay token is not stored anywhere: it carries the tenant, its expiry
// and a fingerprint of the API key that obtained it, under an HMAC of the
// relay's signing key. Every call checks it against the tenant as it is
// now, so rotating the API key or deleting the tenant revokes its relay
// tokens at once. It is made of URL-safe characters only, as WeChat's are,
// so SDKs can put it in a query string unescaped, and is some 70 bytes
// long, where a JWT would be 200 and cost a JSON parse on every call.
//
// Layout, before base64url: version (1 byte) | expiry (8, Unix seconds) |
// key fingerprint (8: the start of Tenant.APIKeyHash) | tenant id | MAC
// (the first 16 bytes of HMAC-SHA256 under a key derived for this use).
const (
	wxTokenVersion  = 1
	wxTokenFPLen    = 8
	wxTokenMACLen   = 16
	wxTokenFixedLen = 1 + 8 + wxTokenFPLen
)

// Errors of ParseWeChatToken; both wrap ErrUnauthenticated. The
// compatible API answers them with WeChat's own codes (42001 and 40001),
// on which SDKs fetch a new token as they already do.
var (
	ErrWeChatTokenExpired = fmt.Errorf("%w: access_token expired", ErrUnauthenticated)
	ErrWeChatTokenInvalid = fmt.Errorf("%w: access_token is invalid or not latest", ErrUnauthenticated)
)

// WeChatToken is what a relay token says.
type WeChatToken struct {
	Tenant    ID
	ExpiresAt time.Time
	// keyFP is the fingerprint of the API key the token was issued to.
	keyFP []byte
}

// IssuedTo reports whether the token was issued to t's current API key: a
// token issued before a key rotation is not.
func (w WeChatToken) IssuedTo(t *Tenant) bool {
	return t != nil && t.ID == w.Tenant && len(t.APIKeyHash) >= wxTokenFPLen &&
		hmac.Equal(t.APIKeyHash[:wxTokenFPLen], w.keyFP)
}

// IssueWeChatToken returns a relay token for t's current API key that
// expires at expiresAt (second precision).
func (a *Authenticator) IssueWeChatToken(t *Tenant, expiresAt time.Time) (string, error) {
	if len(t.APIKeyHash) < wxTokenFPLen {
		return "", errors.New("tenant: no api key to issue a relay token to")
	}
	b := make([]byte, wxTokenFixedLen, wxTokenFixedLen+len(t.ID)+wxTokenMACLen)
	b[0] = wxTokenVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(expiresAt.Unix()))
	copy(b[9:], t.APIKeyHash[:wxTokenFPLen])
	b = append(b, t.ID...)
	b = append(b, a.wxTokenMAC(b)...)
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// ParseWeChatToken checks a relay token's MAC and expiry (with the same
// leeway as bearer tokens) and returns what it says. ErrWeChatTokenInvalid
// for anything but a token this relay issued; ErrWeChatTokenExpired. The
// caller must still check IssuedTo against the tenant as stored.
func (a *Authenticator) ParseWeChatToken(token string) (WeChatToken, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < wxTokenFixedLen+1+wxTokenMACLen || b[0] != wxTokenVersion {
		return WeChatToken{}, ErrWeChatTokenInvalid
	}
	body, mac := b[:len(b)-wxTokenMACLen], b[len(b)-wxTokenMACLen:]
	if !hmac.Equal(mac, a.wxTokenMAC(body)) {
		return WeChatToken{}, ErrWeChatTokenInvalid
	}
	w := WeChatToken{
		Tenant:    ID(body[wxTokenFixedLen:]),
		ExpiresAt: time.Unix(int64(binary.BigEndian.Uint64(body[1:9])), 0).UTC(),
		keyFP:     body[9:wxTokenFixedLen],
	}
	if !a.now().Before(w.ExpiresAt.Add(clockLeeway)) {
		return WeChatToken{}, ErrWeChatTokenExpired
	}
	return w, nil
}

// wxTokenMAC is the MAC of a relay token's body. Its key is derived from
// the signing key for this use alone, so that no MAC made for a relay
// token can ever pass for a JWT signature, nor the reverse.
func (a *Authenticator) wxTokenMAC(body []byte) []byte {
	a.wxKeyOnce.Do(func() {
		m := hmac.New(sha256.New, a.key)
		m.Write([]byte("wxrelay relay-token key v1"))
		a.wxKey = m.Sum(nil)
	})
	m := hmac.New(sha256.New, a.wxKey)
	m.Write(body)
	return m.Sum(nil)[:wxTokenMACLen]
}

// CheckAPIKey reports whether key is tenant id's current API key: the
// secret an SDK presents to the compatible API's token endpoints.
// ErrUnauthenticated otherwise, also for an admin token or another
// tenant's key.
func (a *Authenticator) CheckAPIKey(ctx context.Context, id ID, key string) error {
	p, err := a.Verify(ctx, key)
	if err != nil {
		return err
	}
	if p.Admin || p.Tenant != id {
		return fmt.Errorf("%w: not this tenant's api key", ErrUnauthenticated)
	}
	return nil
}
