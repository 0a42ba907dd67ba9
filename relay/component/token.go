package component

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// ErrNoTicket: the component has no good component_verify_ticket to fetch
// its token with: none received yet, or the last one is over 12 hours old
// (WeChat's pushes stopped, or the authorization-event URL is not set).
var ErrNoTicket = errors.New("component: no good component_verify_ticket: check the authorization-event URL on the open platform")

// Components reads components; *store.ComponentStore is one.
type Components interface {
	FindComponent(ctx context.Context, id tenant.ComponentID) (*tenant.Component, error)
}

// WeChat fetches component tokens; *wechat.Client is one.
type WeChat interface {
	ComponentToken(ctx context.Context, appid, secret, ticket string) (wechat.AccessToken, error)
}

// TokenSource is the token.Source of components' access tokens, fetched
// with their last good ticket. Every fetch issues a new token (the old one
// works 5 more minutes), as the classic endpoint does, so the keeper
// schedules them alike: 10 to 15 minutes before expiry, and a token a call
// found dead is replaced by the next fetch (compare-and-refresh).
type TokenSource struct {
	components Components
	wx         WeChat
	now        func() time.Time
}

var _ token.Source[tenant.ComponentID] = (*TokenSource)(nil)

// NewTokenSource returns a TokenSource; now may be nil for time.Now.
func NewTokenSource(components Components, wx WeChat, now func() time.Time) *TokenSource {
	if now == nil {
		now = time.Now
	}
	return &TokenSource{components: components, wx: wx, now: now}
}

// NewTokenKeeper returns the keeper of components' tokens in s.
func NewTokenKeeper(s token.StoreOf[tenant.ComponentID], src *TokenSource, opts token.Options) *token.KeeperOf[tenant.ComponentID] {
	if opts.Now == nil {
		opts.Now = src.now
	}
	return token.NewKeeperOf[tenant.ComponentID](s, src, opts)
}

// Subject implements token.Source: a component without a good ticket has
// no token to be had (ErrNoTicket).
func (s *TokenSource) Subject(ctx context.Context, id tenant.ComponentID) (token.Subject, error) {
	c, err := s.components.FindComponent(ctx, id)
	if err != nil {
		return token.Subject{}, err
	}
	sub := token.Subject{AppID: c.AppID, Endpoint: tenant.TokenClassic, Version: c.Version, Of: c}
	if c.Ticket.Value == "" || s.now().Sub(c.Ticket.ReceiveTime) >= tenant.TicketLifetime {
		sub.Refused = fmt.Errorf("component %s: %w", id, ErrNoTicket)
	}
	return sub, nil
}

// Fetch implements token.Source.
func (s *TokenSource) Fetch(ctx context.Context, id tenant.ComponentID, sub token.Subject, _ *token.State, _ string, _ time.Time) (wechat.AccessToken, error) {
	c := sub.Of.(*tenant.Component)
	return s.wx.ComponentToken(ctx, c.AppID, c.Secrets.Secret, c.Ticket.Value)
}

// withToken calls call with component id's token and, if WeChat finds
// that token dead (40001, 42001), once more with a new one: how every
// call made with a component token goes. It returns the token the last
// call used, for a call that follows (a refresh token's recovery).
func withToken[T any](ctx context.Context, tokens ComponentTokens, id tenant.ComponentID, call func(tok string) (T, error)) (T, string, error) {
	var zero T
	tok, err := tokens.Token(ctx, id)
	if err != nil {
		return zero, "", err
	}
	got, err := call(tok)
	if wechat.IsTokenInvalid(err) {
		if tok, err = tokens.Refresh(ctx, id, tok); err != nil {
			return zero, "", err
		}
		got, err = call(tok)
	}
	return got, tok, err
}
