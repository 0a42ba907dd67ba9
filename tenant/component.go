package tenant

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"
)

// A component is a WeChat third-party platform (protocol §9): an agency's
// app through which merchants' mini programs become tenants by authorizing
// it on WeChat's consent page, so that no AppSecret, Token or
// EncodingAESKey of theirs is ever handed over. Its own secrets sign and
// encrypt its two push URLs and fetch its component token.

// ComponentID identifies a component: "cp_" and 16 lowercase base32
// characters.
type ComponentID string

// ComponentSecrets are a component's credentials, sealed at rest and never
// returned by the API.
type ComponentSecrets struct {
	Secret         string // component_appsecret
	Token          string // the message Token of both push URLs
	EncodingAESKey string // 43 characters
}

// Ticket is the last good component_verify_ticket WeChat pushed. It is
// valid 12 hours; WeChat pushes a new one every 10 minutes, but pushes can
// stop for an hour, so the last one is kept durably.
type Ticket struct {
	Value       string
	ReceiveTime time.Time
}

// TicketLifetime is how long WeChat accepts a ticket (protocol §9).
const TicketLifetime = 12 * time.Hour

// Component is a registered third-party platform.
type Component struct {
	ID          ComponentID
	DisplayName string
	AppID       string // component_appid
	Secrets     ComponentSecrets
	Ticket      Ticket // zero before the first
	CreateTime  time.Time
	UpdateTime  time.Time
	Version     int64
}

// ComponentPush is a push to a component's authorization-event URL other
// than a ticket, kept durably before WeChat is answered, to be acted on.
type ComponentPush struct {
	InfoType        string
	AuthorizerAppID string
	CreateTime      int64  // WeChat's, Unix seconds
	Body            []byte // the decrypted push
	ReceiveTime     time.Time
}

// PendingComponentPush is a stored ComponentPush not acted on yet.
type PendingComponentPush struct {
	Seq         int64
	ComponentID ComponentID
	ComponentPush
}

// ErrComponentNotFound: no such component.
var ErrComponentNotFound = errors.New("component not found")

// ComponentStore keeps components.
type ComponentStore interface {
	// CreateComponent stores c; a *ConflictError if its appid is taken.
	CreateComponent(ctx context.Context, c *Component) error
	// FindComponent returns a component, secrets opened.
	// ErrComponentNotFound.
	FindComponent(ctx context.Context, id ComponentID) (*Component, error)
	// FindComponents pages through components in id order after after.
	FindComponents(ctx context.Context, after ComponentID, limit int) ([]*Component, error)
	// UpdateComponent saves c if its stored version is still c.Version,
	// then bumps c.Version (ErrConflict otherwise).
	UpdateComponent(ctx context.Context, c *Component) error
	// DeleteComponent removes it; a *ConflictError naming them while
	// tenants are bound to it.
	DeleteComponent(ctx context.Context, id ComponentID) error
	// SaveTicket keeps t as id's last good ticket, durably, unless the
	// stored one was received later.
	SaveTicket(ctx context.Context, id ComponentID, t Ticket) error
}

// ComponentService registers and manages components. Admin only.
type ComponentService struct {
	store    ComponentStore
	now      func() time.Time
	onChange []func(ComponentID)
}

// OnChange registers f to be called with a component's id after it was
// changed or deleted here, so that what holds its keys forgets them.
func (s *ComponentService) OnChange(f func(ComponentID)) { s.onChange = append(s.onChange, f) }

func (s *ComponentService) changed(id ComponentID) {
	for _, f := range s.onChange {
		f(id)
	}
}

// NewComponentService returns a ComponentService; now may be nil.
func NewComponentService(store ComponentStore, now func() time.Time) *ComponentService {
	if now == nil {
		now = time.Now
	}
	return &ComponentService{store: store, now: now}
}

// Create registers a component.
func (s *ComponentService) Create(ctx context.Context, in *Component) (*Component, error) {
	c := *in
	c.ID = newComponentID()
	c.Ticket = Ticket{}
	if err := c.validate(); err != nil {
		return nil, err
	}
	c.CreateTime = s.now().UTC().Truncate(time.Microsecond)
	c.UpdateTime = c.CreateTime
	c.Version = 1
	if err := s.store.CreateComponent(ctx, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Get returns one component.
func (s *ComponentService) Get(ctx context.Context, id ComponentID) (*Component, error) {
	if !ValidComponentID(id) {
		return nil, fmt.Errorf("component %q: %w", id, ErrComponentNotFound)
	}
	return s.store.FindComponent(ctx, id)
}

// List pages through components as Service.List does tenants.
func (s *ComponentService) List(ctx context.Context, pageSize int, pageToken string) ([]*Component, string, error) {
	pageSize, after, err := pageOf(pageSize, pageToken)
	if err != nil {
		return nil, "", err
	}
	cs, err := s.store.FindComponents(ctx, ComponentID(after), pageSize+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(cs) > pageSize {
		cs = cs[:pageSize]
		next = encodePageToken(ID(cs[len(cs)-1].ID))
	}
	return cs, next, nil
}

// Update applies change to the component and saves it, retrying once if
// another request changed it meanwhile.
func (s *ComponentService) Update(ctx context.Context, id ComponentID, change func(*Component) error) (*Component, error) {
	for attempt := 0; ; attempt++ {
		c, err := s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := change(c); err != nil {
			return nil, err
		}
		if err := c.validate(); err != nil {
			return nil, err
		}
		c.UpdateTime = s.now().UTC().Truncate(time.Microsecond)
		err = s.store.UpdateComponent(ctx, c)
		if errors.Is(err, ErrConflict) && attempt == 0 {
			var ce *ConflictError
			if !errors.As(err, &ce) || ce.AppID == "" {
				continue // a concurrent change: read again
			}
		}
		if err != nil {
			return nil, err
		}
		s.changed(id)
		return c, nil
	}
}

// Delete removes a component that no tenant is bound to.
func (s *ComponentService) Delete(ctx context.Context, id ComponentID) error {
	if !ValidComponentID(id) {
		return fmt.Errorf("component %q: %w", id, ErrComponentNotFound)
	}
	err := s.store.DeleteComponent(ctx, id)
	s.changed(id)
	return err
}

// validate checks a complete component, naming the first wrong field.
func (c *Component) validate() error {
	if err := validateDisplayName(c.DisplayName); err != nil {
		return err
	}
	switch {
	case c.AppID == "":
		return fieldErr("component_appid", "is required")
	case !appIDPattern.MatchString(c.AppID):
		return fieldErr("component_appid", "must be wx followed by 16 hex characters")
	}
	if err := validateKeys("component_secret", c.Secrets.Secret, c.Secrets.Token, "the open platform"); err != nil {
		return err
	}
	return validateAESKey(c.Secrets.EncodingAESKey, "is required: the open platform's pushes are always encrypted")
}

// newComponentID returns "cp_" and 16 random lowercase base32 characters.
func newComponentID() ComponentID {
	b := make([]byte, 10)
	rand.Read(b)
	return ComponentID("cp_" + idEncoding.EncodeToString(b))
}

// ValidComponentID reports whether id has the shape newComponentID gives,
// so that a lookup of anything else is refused before the database.
func ValidComponentID(id ComponentID) bool {
	s := string(id)
	if len(s) != 19 || !strings.HasPrefix(s, "cp_") {
		return false
	}
	for _, r := range s[3:] {
		if !('a' <= r && r <= 'z' || '2' <= r && r <= '7') {
			return false
		}
	}
	return true
}

// AuthorizationState is where a mini program's authorization of a
// component stands.
type AuthorizationState int

const (
	AuthorizationPending    AuthorizationState = iota // no authorization known yet
	AuthorizationAuthorized                           // granted; its refresh token is kept
	AuthorizationRevoked                              // withdrawn by the merchant
)

// Authorization is a mini program's grant to a component.
type Authorization struct {
	ComponentID     ComponentID
	AuthorizerAppID string
	State           AuthorizationState
	FuncInfo        []int // the permission sets granted
	// RefreshToken fetches the authorizer's tokens; sealed at rest, never
	// shown.
	RefreshToken  string
	AuthorizeTime time.Time
	RevokeTime    time.Time
	UpdateTime    time.Time
}

// AuthorizerEntry is a line of a component's list of authorizers: a
// grant, without its refresh token, and the tenant bound to its appid.
type AuthorizerEntry struct {
	AppID         string
	State         AuthorizationState
	FuncInfo      []int
	AuthorizeTime time.Time
	TenantID      ID // "" when no tenant is bound to the appid
}

// ErrAuthorizationNotFound: the mini program has not authorized the
// component (as far as the relay has heard).
var ErrAuthorizationNotFound = errors.New("authorization not found")
