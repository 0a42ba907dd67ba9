package token

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// Subject is what a token is fetched for, as its Source reads it now. A
// token is served only to the subject it was fetched for: one fetched
// under another appid or endpoint is never handed out.
type Subject struct {
	AppID string
	// Endpoint is the token's family: stable (normal mode hands everyone
	// the same token until its last minutes) or classic (each fetch
	// supersedes the last, as component and authorizer tokens do too).
	Endpoint tenant.TokenEndpoint
	// Version is the owner's version: a change lifts a failure's backoff
	// (a wrong secret corrected, say).
	Version int64
	// Refused, when set, is why the token may not be used now (a disabled
	// tenant): callers get it, and the schedule passes the owner by.
	Refused error
	// Of is the owner as the Source read it, for its Fetch.
	Of any
}

// Source says what an owner's token is for, and fetches it from WeChat.
// Each kind of token has one: a tenant's from its AppSecret (tenantSource),
// a component's from its ticket, an authorizer's from its refresh token.
type Source[ID ~string] interface {
	// Subject reads owner id: tenant.ErrNotFound (or its kind's) if there
	// is none.
	Subject(ctx context.Context, id ID) (Subject, error)
	// Fetch asks WeChat for a token for s, one other than failed when
	// failed is set (a call found it dead). It may record in st what its
	// policy needs (forced refreshes), and is saved with it.
	Fetch(ctx context.Context, id ID, s Subject, st *State, failed string, now time.Time) (wechat.AccessToken, error)
}

// tenantSource is the Source of tenants' tokens: fetched with their
// AppSecret from stable_token or the classic endpoint, or, for a tenant of
// a component, through the component (Authorizers).
type tenantSource struct {
	wx          WeChat
	tenants     tenant.Getter
	authorizers Authorizers // nil: a component's tenant has no token
	log         *slog.Logger
}

// Authorizers hands out the tokens of components' tenants, which their
// mini programs' authorizations of the components give (protocol §9);
// relay/component's is one.
type Authorizers interface {
	// Authorized returns nil if t's mini program has authorized t's
	// component, else why not (wrapping tenant.ErrNotAuthorized).
	Authorized(ctx context.Context, t *tenant.Tenant) error
	// Fetch fetches a new authorizer token for t, keeping the refresh
	// token WeChat answers with.
	Fetch(ctx context.Context, t *tenant.Tenant) (wechat.AccessToken, error)
}

func (s *tenantSource) Subject(ctx context.Context, tid tenant.ID) (Subject, error) {
	t, err := s.tenants.Get(ctx, tid)
	if err != nil {
		return Subject{}, err
	}
	sub := Subject{AppID: t.AppID, Endpoint: endpointOf(t), Version: t.Version, Of: t}
	switch {
	case t.State == tenant.StateDisabled:
		sub.Refused = fmt.Errorf("%w: tenant %s", tenant.ErrDisabled, tid)
	case t.ComponentID != "" && s.authorizers == nil:
		sub.Refused = fmt.Errorf("%w: tenant %s", tenant.ErrNotAuthorized, tid)
	case t.ComponentID != "":
		// An authorizer token: every refresh issues a new one, as the
		// classic endpoint does.
		sub.Endpoint = tenant.TokenClassic
		if err := s.authorizers.Authorized(ctx, t); errors.Is(err, tenant.ErrNotAuthorized) {
			sub.Refused = err
		} else if err != nil {
			return Subject{}, err
		}
	}
	return sub, nil
}

// Fetch asks WeChat for the tenant's token. A stable token is fetched in
// normal mode first, which returns a new token once WeChat has retired the
// old one; only when WeChat hands back failed itself is it
// force-refreshed, within the budget (forceAllowed), and logged.
func (s *tenantSource) Fetch(ctx context.Context, tid tenant.ID, sub Subject, st *State, failed string, now time.Time) (wechat.AccessToken, error) {
	t := sub.Of.(*tenant.Tenant)
	if t.ComponentID != "" {
		return s.authorizers.Fetch(ctx, t)
	}
	if sub.Endpoint == tenant.TokenClassic {
		return s.wx.Token(ctx, t.AppID, t.Secrets.AppSecret)
	}
	at, err := s.wx.StableToken(ctx, t.AppID, t.Secrets.AppSecret, false)
	if err != nil || failed == "" || at.Token != failed {
		return at, err
	}
	if err := forceAllowed(st, now); err != nil {
		s.log.WarnContext(ctx, "forced access token refresh refused", "tenant", tid, "appid", t.AppID, "err", err)
		return at, err
	}
	forced, err := s.wx.StableToken(ctx, t.AppID, t.Secrets.AppSecret, true)
	if wechat.Errcode(err) == wechat.CodeDailyQuota {
		// WeChat counts otherwise than we do: believe it until tomorrow.
		st.ForcedCount = forceDailyMax
		s.log.WarnContext(ctx, "forced access token refresh refused by WeChat: daily limit", "tenant", tid, "appid", t.AppID)
		return at, fmt.Errorf("%w: %w", ErrForceLimited, err)
	}
	if err != nil {
		return forced, err
	}
	st.ForcedCount++
	st.ForcedAt = now
	s.log.WarnContext(ctx, "forced access token refresh", "tenant", tid, "appid", t.AppID,
		"forced_today", st.ForcedCount, "limit", forceDailyMax)
	return forced, nil
}
