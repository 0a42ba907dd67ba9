// Package tenant holds the mini-programs wxrelay serves: their settings,
// their secrets, and who may act on them (admins and per-tenant API keys).
//
// It imports neither the database nor the wire API: store/ implements Store,
// api/ converts to and from protobuf.
package tenant

import (
	"context"
	"time"
)

// ID identifies a tenant. It is URL-safe and appears in push URLs.
type ID string

// EncryptMode is the message encryption mode chosen in the mini-program console.
type EncryptMode int

const (
	EncryptUnspecified EncryptMode = iota
	EncryptPlaintext
	EncryptCompatible
	EncryptSafe
)

// DataFormat is the push body format chosen in the mini-program console.
type DataFormat int

const (
	FormatUnspecified DataFormat = iota
	FormatJSON
	FormatXML
)

// ReplyMode says how the relay answers a user message pushed by WeChat.
type ReplyMode int

const (
	ReplyUnspecified ReplyMode = iota
	// ReplySuccess answers "success": the tenant replies later through the send API.
	ReplySuccess
	// ReplyTransferCustomerService hands user messages to WeChat's customer-service tool.
	ReplyTransferCustomerService
)

// TokenEndpoint says which WeChat endpoint fetches a tenant's access token
// (protocol §6).
type TokenEndpoint int

const (
	// TokenEndpointUnspecified means TokenStable, the default.
	TokenEndpointUnspecified TokenEndpoint = iota
	// TokenStable uses POST /cgi-bin/stable_token, whose tokens do not
	// supersede one another, so other systems holding the same AppSecret
	// keep working beside the relay.
	TokenStable
	// TokenClassic uses GET /cgi-bin/token, where every fetch supersedes
	// the previous token five minutes later: only for a tenant whose
	// tokens nothing else fetches.
	TokenClassic
)

// State says whether a tenant is served.
type State int

const (
	StateUnspecified State = iota
	StateActive
	StateDisabled
)

// Secrets are the credentials a tenant hands to wxrelay. They are sealed at
// rest and never returned by the API after creation.
type Secrets struct {
	AppSecret      string // AppSecret from the console: fetches access tokens
	Token          string // the push Token: signs pushes
	EncodingAESKey string // 43 characters: encrypts pushes in compatible and safe mode

	// After a change of Token or EncodingAESKey, the values before it are
	// still accepted on pushes until PreviousUntil (Service's push secret
	// grace), since WeChat's console is changed by hand at another moment.
	PreviousToken          string
	PreviousEncodingAESKey string
	PreviousUntil          time.Time
}

// PreviousInForce reports whether pushes made with PreviousToken and
// PreviousEncodingAESKey are still accepted at now.
func (s Secrets) PreviousInForce(now time.Time) bool {
	return !s.PreviousUntil.IsZero() && now.Before(s.PreviousUntil)
}

// keepPrevious records old's push Token and EncodingAESKey as the previous
// ones, accepted until until, if s changed either of them. A change that
// leaves both as they were keeps the grace period already running.
func (s *Secrets) keepPrevious(old Secrets, until time.Time) {
	if s.Token == old.Token && s.EncodingAESKey == old.EncodingAESKey {
		return
	}
	s.PreviousToken, s.PreviousEncodingAESKey, s.PreviousUntil = old.Token, old.EncodingAESKey, until
}

// WebhookSecrets sign webhook deliveries. During a rotation the previous
// secret keeps signing beside the current one until PreviousUntil.
type WebhookSecrets struct {
	Current       string
	Previous      string
	PreviousUntil time.Time
}

// Signing returns the secrets that sign a delivery at now: the current one,
// and the previous one while its grace period lasts.
func (w WebhookSecrets) Signing(now time.Time) []string {
	if w.Previous != "" && now.Before(w.PreviousUntil) {
		return []string{w.Current, w.Previous}
	}
	return []string{w.Current}
}

// Tenant is one mini-program served by wxrelay.
type Tenant struct {
	ID          ID
	DisplayName string
	AppID       string // wx + 16 hex characters
	OriginalID  string // optional gh_...: pushes for another ToUserName are rejected
	EncryptMode EncryptMode
	DataFormat  DataFormat
	WebhookURL  string
	ReplyMode   ReplyMode
	State       State
	// OrderedDelivery delivers the events of one openid in CreateTime
	// order: a later event waits while an earlier one is pending.
	OrderedDelivery bool
	// IgnoreReplyWindow turns off the reply-window check of sends
	// (relay/message): every send goes to WeChat.
	IgnoreReplyWindow bool
	// PushSilenceAlert, when positive, makes the tenant's health show
	// NO_PUSHES once no push has arrived for that long (relay/health): for
	// a busy shop whose silence means its console points elsewhere.
	PushSilenceAlert time.Duration
	// TokenEndpoint picks the endpoint relay/token fetches access tokens
	// from; the zero value means stable_token.
	TokenEndpoint TokenEndpoint
	// ComponentID, when set, makes this a tenant of a third-party platform
	// (component.go): the mini program AppID authorized that component, and
	// it holds none of the mini program's secrets. Its pushes come to the
	// component's message URL, encrypted with the component's keys (safe
	// mode, XML), and its token is the component's to fetch. Set at
	// creation; it cannot change.
	ComponentID ComponentID

	Secrets        Secrets
	WebhookSecrets WebhookSecrets
	// APIKeyHash is the SHA-256 of the current API key's key id: enough to
	// recognise the key, useless for making one.
	APIKeyHash []byte

	CreateTime time.Time
	UpdateTime time.Time
	// Version increases with every update; Store.Update refuses a stale one
	// so that two concurrent patches cannot silently overwrite each other.
	Version int64
}

// Filter pages through tenants in a stable order.
type Filter struct {
	PageSize int
	After    ID // the last ID of the previous page; empty for the first page
}

// Store persists tenants. Secrets are sealed by the implementation.
type Store interface {
	// Create stores a new tenant. ErrConflict if the appid is taken.
	Create(ctx context.Context, t *Tenant) error
	// FindByID returns the tenant with its secrets opened. ErrNotFound.
	FindByID(ctx context.Context, id ID) (*Tenant, error)
	// Find returns up to f.PageSize tenants ordered by ID, after f.After.
	Find(ctx context.Context, f Filter) ([]*Tenant, error)
	// Update saves t if its stored Version is still t.Version, then bumps
	// t.Version. ErrNotFound; ErrConflict if the appid is taken or the
	// tenant changed meanwhile.
	Update(ctx context.Context, t *Tenant) error
	// Delete removes the tenant and everything that belongs to it. ErrNotFound.
	Delete(ctx context.Context, id ID) error
}
