// Package token keeps every tenant's WeChat access token (protocol §6): it
// fetches a token when one is first needed, refreshes it ahead of expiry on
// a schedule (Keeper.RefreshDue, a gocron job body), replaces it when a call
// finds it dead (Keeper.Refresh), and records how it went for the tenant's
// status (Keeper.Status).
//
// Tokens live in three places: in memory, in the Store (sealed) so that a
// restarted or second process need not fetch again, and at WeChat. A lease in
// the Store lets one process at a time fetch an app's token, so replicas
// sharing a PostgreSQL database fetch once, not once each; within a process,
// concurrent callers of one tenant share one fetch.
//
// By default tokens come from the stable_token endpoint, whose normal mode
// hands every caller the same token; tenant.TokenClassic selects the classic
// endpoint, where every fetch supersedes the previous token. A stable token is
// force-refreshed only when WeChat still hands out the token a call refused,
// and no more than WeChat allows: 20 a day, 30 s apart.
//
// The package imports no database or wire code: store.TokenStore implements
// Store, and *wechat.Client is a WeChat.
package token

import (
	"context"
	"errors"
	"time"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// Sentinels carry client-safe text; the Keeper wraps them with detail.
var (
	// ErrNotFound: the Store holds no token state for the tenant.
	ErrNotFound = errors.New("token: no access token stored")
	// ErrLeaseLost: the caller's refresh lease expired and another process
	// took it, so the caller's result was not saved.
	ErrLeaseLost = errors.New("token: refresh lease lost to another process")
	// ErrBackoff: fetching failed recently and is not retried yet, so as
	// not to hammer WeChat. The error also wraps the last failure's
	// *wechat.APIError when there was one.
	ErrBackoff = errors.New("token: access token fetch failed recently; retrying later")
	// ErrForceLimited: the token a call refused is still WeChat's current
	// stable token, and replacing it needs a force_refresh that WeChat's
	// limits (20 a day, 30 s apart) do not allow now.
	ErrForceLimited = errors.New("token: forced token refresh limit reached (20 a day, 30 s apart)")
)

// WeChat fetches access tokens; *wechat.Client is one.
type WeChat interface {
	Token(ctx context.Context, appid, secret string) (wechat.AccessToken, error)
	StableToken(ctx context.Context, appid, secret string, forceRefresh bool) (wechat.AccessToken, error)
}

// State is what the Store keeps about one tenant's access token. Times are
// UTC; a zero time means never.
type State struct {
	// AppID and Endpoint are those the token was fetched for; a token of
	// another appid or endpoint than the tenant's current ones is unusable.
	AppID    string
	Endpoint tenant.TokenEndpoint // TokenStable or TokenClassic once fetched
	// Token is "" until a fetch succeeded. Stores seal it at rest.
	Token       string
	ExpiresAt   time.Time
	RefreshedAt time.Time // the last successful fetch
	// DueAt is when the token should next be fetched: a while before
	// expiry, or when the backoff after a failure ends.
	DueAt time.Time

	// TenantVersion is the tenant's Version at the last fetch attempt: a
	// tenant changed since (a new secret, say) is not held to the backoff.
	TenantVersion int64
	Failures      int    // consecutive failed fetches
	LastError     string // why the last fetch failed, without request id; "" after a success
	LastErrcode   int    // WeChat's errcode for LastError; 0 if WeChat decided nothing
	LastErrorAt   time.Time

	// Forced refreshes of the stable token: how many on ForcedDay (a
	// Beijing date, YYYY-MM-DD), and when the last one was.
	ForcedDay   string
	ForcedCount int
	ForcedAt    time.Time
}

// StoreOf keeps token state, one row per owner of one kind (tenants,
// components, authorizers), deleted with the owner. A lease on the row
// names the one process that may fetch the owner's token.
type StoreOf[ID ~string] interface {
	// FindToken returns id's token state, the token opened. ErrNotFound
	// if there is none.
	FindToken(ctx context.Context, id ID) (*State, error)
	// AcquireTokenLease makes owner the holder of id's lease until until,
	// creating the row if needed, and reports whether it did: it does when
	// the lease is free, expired by now, or owner's already. The kind's
	// not-found error if id does not exist.
	AcquireTokenLease(ctx context.Context, id ID, owner string, now, until time.Time) (bool, error)
	// SaveToken stores st, sealing the token, and releases owner's lease.
	// ErrLeaseLost if owner no longer holds it; nothing is saved then.
	SaveToken(ctx context.Context, id ID, owner string, st *State) error
	// ReleaseTokenLease frees id's lease if owner holds it.
	ReleaseTokenLease(ctx context.Context, id ID, owner string) error
	// DueTokens returns up to limit owners whose token is due at now:
	// never fetched, or DueAt passed, and not leased.
	DueTokens(ctx context.Context, now time.Time, limit int) ([]ID, error)
}

// Store keeps tenants' token state (a tenant's appid is unique, so a
// lease is one fetcher per app).
type Store = StoreOf[tenant.ID]

// Status is a tenant's token status, for the tenant resource. Times are
// zero when the event has not happened.
type Status struct {
	ExpiresAt   time.Time // of the current token
	LastRefresh time.Time // the last successful fetch
	NextRefresh time.Time // the next scheduled fetch, or the end of a backoff
	Failures    int       // consecutive failed fetches; 0 when the last one worked
	LastError   string    // why the last fetch failed; "" when it worked
	LastErrcode int       // WeChat's errcode, e.g. 40125 wrong secret, 40164 IP not whitelisted
	LastErrorAt time.Time
}
