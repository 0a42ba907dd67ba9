package component

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/relay/ttlcache"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// AuthorizerStore is what authorizer tokens need of the store;
// *store.ComponentStore is one.
type AuthorizerStore interface {
	Components
	FindAuthorization(ctx context.Context, cid tenant.ComponentID, appid string) (*tenant.Authorization, error)
	SwapRefreshToken(ctx context.Context, cid tenant.ComponentID, appid, old, new string) (bool, error)
}

// AuthorizerFetcher fetches authorizer tokens, and lists a component's
// authorizers' refresh tokens; *wechat.Client is one.
type AuthorizerFetcher interface {
	AuthorizerToken(ctx context.Context, componentToken, componentAppID, authorizerAppID, refreshToken string) (wechat.Authorization, error)
	AuthorizerList(ctx context.Context, componentToken, componentAppID string, offset, count int) (int, []wechat.AuthorizerListEntry, error)
}

// AuthorizerTokens hands the tenant keeper the tokens of components'
// tenants (token.Authorizers): fetched through the component with the
// authorization's refresh token, which is kept whatever WeChat answers
// with, durably, before the token is used.
type AuthorizerTokens struct {
	store  AuthorizerStore
	tokens ComponentTokens
	wx     AuthorizerFetcher
	log    *slog.Logger

	// granted keeps whether each authorizer has authorized (nil) or why
	// not, for authorizedTTL: every send of a component's tenant asks
	// (token.Authorizers.Authorized), and reading and opening the
	// authorization each time cost a database read and a decryption a
	// send. Changes made here are forgotten at once (Forget, wired to
	// the Authorizer's OnChange); another replica's apply within the TTL.
	granted ttlcache.Cache[authorizerKey, error]
}

type authorizerKey struct {
	component tenant.ComponentID
	appid     string
}

// authorizedTTL bounds how long a revocation on another replica may let
// this one's sends through (to WeChat, which refuses them itself).
const authorizedTTL = 2 * time.Second

var _ token.Authorizers = (*AuthorizerTokens)(nil)

// NewAuthorizerTokens returns AuthorizerTokens; log may be nil.
func NewAuthorizerTokens(s AuthorizerStore, tokens ComponentTokens, wx AuthorizerFetcher, log *slog.Logger) *AuthorizerTokens {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &AuthorizerTokens{store: s, tokens: tokens, wx: wx, log: log, granted: ttlcache.Cache[authorizerKey, error]{TTL: authorizedTTL}}
}

// Authorized implements token.Authorizers.
func (a *AuthorizerTokens) Authorized(ctx context.Context, t *tenant.Tenant) error {
	why, err := a.granted.Get(ctx, authorizerKey{t.ComponentID, t.AppID}, func(ctx context.Context, _ authorizerKey) (error, error) {
		_, err := a.authorization(ctx, t)
		if errors.Is(err, tenant.ErrNotAuthorized) {
			return err, nil // an answer, kept
		}
		return nil, err
	})
	if err != nil {
		return err
	}
	return why
}

// Forget drops what is kept of appid's authorization of component cid:
// wire it to the Authorizer's OnChange.
func (a *AuthorizerTokens) Forget(cid tenant.ComponentID, appid string) {
	a.granted.Forget(func(k authorizerKey, _ error) bool { return k.component == cid && k.appid == appid })
}

func (a *AuthorizerTokens) authorization(ctx context.Context, t *tenant.Tenant) (*tenant.Authorization, error) {
	auth, err := a.store.FindAuthorization(ctx, t.ComponentID, t.AppID)
	switch {
	case errors.Is(err, tenant.ErrAuthorizationNotFound):
		return nil, fmt.Errorf("%w: %s has not authorized component %s", tenant.ErrNotAuthorized, t.AppID, t.ComponentID)
	case err != nil:
		return nil, err
	case auth.State != tenant.AuthorizationAuthorized || auth.RefreshToken == "":
		return nil, fmt.Errorf("%w: %s revoked its authorization of component %s", tenant.ErrNotAuthorized, t.AppID, t.ComponentID)
	}
	return auth, nil
}

// Fetch implements token.Authorizers.
func (a *AuthorizerTokens) Fetch(ctx context.Context, t *tenant.Tenant) (wechat.AccessToken, error) {
	auth, err := a.authorization(ctx, t)
	if err != nil {
		return wechat.AccessToken{}, err
	}
	c, err := a.store.FindComponent(ctx, t.ComponentID)
	if err != nil {
		return wechat.AccessToken{}, err
	}
	got, ctok, err := withToken(ctx, a.tokens, c.ID, func(ctok string) (wechat.Authorization, error) {
		return a.wx.AuthorizerToken(ctx, ctok, c.AppID, t.AppID, auth.RefreshToken)
	})
	if wechat.Errcode(err) == codeRefreshTokenInvalid {
		got, err = a.recover(ctx, c, ctok, t, auth.RefreshToken)
	}
	if err != nil {
		return wechat.AccessToken{}, err
	}
	if got.RefreshToken != auth.RefreshToken {
		// Kept before the token is used: a refresh token lost is a
		// merchant asked to authorize again.
		if _, err := a.store.SwapRefreshToken(ctx, c.ID, t.AppID, auth.RefreshToken, got.RefreshToken); err != nil {
			return wechat.AccessToken{}, fmt.Errorf("keep the new refresh token of %s: %w", t.AppID, err)
		}
		a.log.InfoContext(ctx, "authorizer refresh token replaced", "component", c.ID, "authorizer", t.AppID)
	}
	return got.AccessToken, nil
}

// codeRefreshTokenInvalid: WeChat no longer takes the refresh token.
const codeRefreshTokenInvalid = 61023

// recover looks t's refresh token up in the component's authorizer list
// (api_get_authorizer_list) when WeChat refused the one kept (61023), and
// fetches with it: losing a refresh token is a merchant asked to
// authorize again, the pain every SDK's users report. Whatever it finds
// is kept (the caller swaps it in) before the token is used.
func (a *AuthorizerTokens) recover(ctx context.Context, c *tenant.Component, ctok string, t *tenant.Tenant, refused string) (wechat.Authorization, error) {
	const page = 500
	for offset := 0; ; offset += page {
		total, list, err := a.wx.AuthorizerList(ctx, ctok, c.AppID, offset, page)
		if err != nil {
			return wechat.Authorization{}, fmt.Errorf("recover the refresh token of %s: %w", t.AppID, err)
		}
		for _, e := range list {
			if !strings.EqualFold(e.AppID, t.AppID) || e.RefreshToken == "" || e.RefreshToken == refused {
				continue
			}
			a.log.WarnContext(ctx, "authorizer refresh token refused (61023); recovered from the component's authorizer list", "component", c.ID, "authorizer", t.AppID)
			got, err := a.wx.AuthorizerToken(ctx, ctok, c.AppID, t.AppID, e.RefreshToken)
			if err != nil {
				return wechat.Authorization{}, err
			}
			if got.RefreshToken == "" {
				got.RefreshToken = e.RefreshToken
			}
			return got, nil
		}
		if len(list) == 0 || offset+page >= total {
			break
		}
	}
	a.log.ErrorContext(ctx, "authorizer refresh token refused (61023) and not in the component's authorizer list: the merchant must authorize again", "component", c.ID, "authorizer", t.AppID)
	return wechat.Authorization{}, fmt.Errorf("%w: %s's refresh token is refused and WeChat lists none other: the merchant must authorize again", tenant.ErrNotAuthorized, t.AppID)
}
