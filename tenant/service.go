package tenant

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// webhookSecretGrace is how long a rotated-out webhook secret keeps signing
// beside the new one, so tenants can roll their verifiers without a gap.
const webhookSecretGrace = 24 * time.Hour

// DefaultPushSecretGrace is how long pushes signed or encrypted with the
// previous push Token or EncodingAESKey are still accepted after a change:
// the change in wxrelay and the one in WeChat's console are made by hand,
// one after the other, and pushes in between must not be lost.
const DefaultPushSecretGrace = 10 * time.Minute

// Page sizes for List.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// Credentials are shown to the caller once, when created or rotated.
type Credentials struct {
	APIKey        string
	WebhookSecret string // whsec_ + base64 of 32 random bytes
}

// Service manages tenants. Its zero value is not usable: use NewService.
type Service struct {
	store Store
	auth  *Authenticator
	now   func() time.Time
	// allowPrivateWebhooks lets webhook URLs name loopback and private hosts.
	allowPrivateWebhooks bool
	pushSecretGrace      time.Duration
	onChange             []func(ID)
}

// NewService returns a Service. now may be nil for time.Now.
func NewService(store Store, auth *Authenticator, allowPrivateWebhooks bool, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, auth: auth, now: now, allowPrivateWebhooks: allowPrivateWebhooks,
		pushSecretGrace: DefaultPushSecretGrace}
}

// SetPushSecretGrace sets how long the previous push Token and
// EncodingAESKey keep working after a change (DefaultPushSecretGrace);
// zero ends them at once. Call it before serving.
func (s *Service) SetPushSecretGrace(d time.Duration) { s.pushSecretGrace = max(d, 0) }

// OnChange registers f to be called with the id of every tenant changed or
// deleted through s, after the change is stored and before the call that
// made it returns: Cache.Forget, so that the next push, delivery or send
// on this process sees the change. Call it before serving.
func (s *Service) OnChange(f func(ID)) { s.onChange = append(s.onChange, f) }

func (s *Service) changed(id ID) { s.Changed(id) }

// Changed calls the OnChange functions for tenant id, changed elsewhere:
// by another replica, as store.DB.WatchTenants hears. Every holder of a
// tenant's state is then told the same way, whichever replica changed it.
func (s *Service) Changed(id ID) {
	for _, f := range s.onChange {
		f(id)
	}
}

// Create onboards a mini-program. Unset modes take the console's defaults
// (plaintext, XML, reply success), but for an encoding_aes_key given
// without encrypt_mode, which is refused: the caller meant some
// encryption. ErrInvalid (a *FieldError), ErrConflict.
func (s *Service) Create(ctx context.Context, in *Tenant) (*Tenant, Credentials, error) {
	return s.CreateChecked(ctx, in, nil)
}

// CreateChecked is Create with a last check: check, unless nil, is given
// the tenant once it is complete and valid, and an error from it creates
// nothing and is returned as it is. It asks WeChat whether the
// credentials hold, for an operator who wants to know at once.
func (s *Service) CreateChecked(ctx context.Context, in *Tenant, check func(context.Context, *Tenant) error) (*Tenant, Credentials, error) {
	t := *in
	t.ID = newID()
	if t.ComponentID != "" {
		// The open platform's: safe mode and XML, whatever was asked for;
		// asking for anything is an error, named by validate.
		if t.EncryptMode != EncryptUnspecified {
			return nil, Credentials{}, fieldErr("encrypt_mode", "is not given for a tenant of a component: the open platform pushes in safe mode")
		}
		if t.DataFormat != FormatUnspecified {
			return nil, Credentials{}, fieldErr("data_format", "is not given for a tenant of a component: the open platform pushes XML")
		}
		t.EncryptMode, t.DataFormat = EncryptSafe, FormatXML
	}
	if t.EncryptMode == EncryptUnspecified && t.Secrets.EncodingAESKey != "" {
		// Plaintext, the default, would leave the key unused, and the
		// mini program's encrypted pushes would fail only when they come.
		return nil, Credentials{}, fieldErr("encrypt_mode", "is required with encoding_aes_key: give ENCRYPT_MODE_SAFE or ENCRYPT_MODE_COMPATIBLE, "+
			"as chosen in the mini-program console (ENCRYPT_MODE_PLAINTEXT, the default, uses no key)")
	}
	if t.EncryptMode == EncryptUnspecified {
		t.EncryptMode = EncryptPlaintext
	}
	if t.DataFormat == FormatUnspecified {
		t.DataFormat = FormatXML
	}
	if t.ReplyMode == ReplyUnspecified {
		t.ReplyMode = ReplySuccess
	}
	if t.State == StateUnspecified {
		t.State = StateActive
	}
	if t.TokenEndpoint == TokenEndpointUnspecified {
		t.TokenEndpoint = TokenStable
	}
	if err := t.validate(s.allowPrivateWebhooks); err != nil {
		return nil, Credentials{}, err
	}
	if check != nil {
		if err := check(ctx, &t); err != nil {
			return nil, Credentials{}, err
		}
	}
	var creds Credentials
	var err error
	if creds.APIKey, t.APIKeyHash, err = s.auth.newAPIKey(t.ID); err != nil {
		return nil, Credentials{}, err
	}
	creds.WebhookSecret = newWebhookSecret()
	t.WebhookSecrets = WebhookSecrets{Current: creds.WebhookSecret}
	t.CreateTime = s.now().UTC().Truncate(time.Microsecond)
	t.UpdateTime = t.CreateTime
	t.Version = 1
	if err := s.store.Create(ctx, &t); err != nil {
		return nil, Credentials{}, err
	}
	return &t, creds, nil
}

// Get returns a tenant. ErrNotFound.
func (s *Service) Get(ctx context.Context, id ID) (*Tenant, error) {
	return s.store.FindByID(ctx, id)
}

// List returns a page of tenants and the token of the next page ("" at the
// end). ErrInvalid for a page token that was not handed out by List.
func (s *Service) List(ctx context.Context, pageSize int, pageToken string) ([]*Tenant, string, error) {
	pageSize, after, err := pageOf(pageSize, pageToken)
	if err != nil {
		return nil, "", err
	}
	ts, err := s.store.Find(ctx, Filter{PageSize: pageSize + 1, After: after})
	if err != nil {
		return nil, "", err
	}
	if len(ts) <= pageSize {
		return ts, "", nil
	}
	ts = ts[:pageSize]
	return ts, encodePageToken(ts[pageSize-1].ID), nil
}

// Patch holds the fields to change; nil fields stay as they are.
type Patch struct {
	DisplayName       *string
	AppID             *string
	AppSecret         *string
	Token             *string
	EncodingAESKey    *string
	OriginalID        *string
	EncryptMode       *EncryptMode
	DataFormat        *DataFormat
	WebhookURL        *string
	ReplyMode         *ReplyMode
	State             *State
	OrderedDelivery   *bool
	TokenEndpoint     *TokenEndpoint
	IgnoreReplyWindow *bool
	PushSilenceAlert  *time.Duration
}

func (p Patch) apply(t *Tenant) {
	set(&t.DisplayName, p.DisplayName)
	set(&t.AppID, p.AppID)
	set(&t.Secrets.AppSecret, p.AppSecret)
	set(&t.Secrets.Token, p.Token)
	set(&t.Secrets.EncodingAESKey, p.EncodingAESKey)
	set(&t.OriginalID, p.OriginalID)
	set(&t.EncryptMode, p.EncryptMode)
	set(&t.DataFormat, p.DataFormat)
	set(&t.WebhookURL, p.WebhookURL)
	set(&t.ReplyMode, p.ReplyMode)
	set(&t.State, p.State)
	set(&t.OrderedDelivery, p.OrderedDelivery)
	set(&t.TokenEndpoint, p.TokenEndpoint)
	set(&t.IgnoreReplyWindow, p.IgnoreReplyWindow)
	set(&t.PushSilenceAlert, p.PushSilenceAlert)
}

func set[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

// Update changes the fields set in p and returns the updated tenant. The
// result is validated as a whole, so a patch cannot leave a tenant that
// could not have been created. ErrNotFound, ErrInvalid, ErrConflict.
func (s *Service) Update(ctx context.Context, id ID, p Patch) (*Tenant, error) {
	return s.modify(ctx, id, func(t *Tenant) error {
		if p.EncryptMode == nil && p.EncodingAESKey != nil && *p.EncodingAESKey != "" && t.EncryptMode == EncryptPlaintext {
			return fieldErr("encrypt_mode", "the tenant is ENCRYPT_MODE_PLAINTEXT, which uses no encoding_aes_key: "+
				"set encrypt_mode to ENCRYPT_MODE_SAFE or ENCRYPT_MODE_COMPATIBLE in the same PATCH")
		}
		old := t.Secrets
		p.apply(t)
		t.Secrets.keepPrevious(old, s.now().UTC().Add(s.pushSecretGrace))
		if t.TokenEndpoint == TokenEndpointUnspecified {
			t.TokenEndpoint = TokenStable
		}
		return t.validate(s.allowPrivateWebhooks)
	})
}

// Delete removes a tenant, its events and its keys. ErrNotFound.
func (s *Service) Delete(ctx context.Context, id ID) error {
	err := s.store.Delete(ctx, id)
	// Forgotten even on error: a failed delete may still have committed.
	s.changed(id)
	return err
}

// RotateAPIKey issues a new API key; the old one stops working at once.
func (s *Service) RotateAPIKey(ctx context.Context, id ID) (string, error) {
	var key string
	_, err := s.modify(ctx, id, func(t *Tenant) error {
		var err error
		key, t.APIKeyHash, err = s.auth.newAPIKey(t.ID)
		return err
	})
	return key, err
}

// RotateWebhookSecret issues a new webhook secret. The old one keeps signing
// beside it for 24 hours.
func (s *Service) RotateWebhookSecret(ctx context.Context, id ID) (string, error) {
	secret := newWebhookSecret()
	_, err := s.modify(ctx, id, func(t *Tenant) error {
		t.WebhookSecrets = WebhookSecrets{
			Current:       secret,
			Previous:      t.WebhookSecrets.Current,
			PreviousUntil: s.now().UTC().Add(webhookSecretGrace),
		}
		return nil
	})
	return secret, err
}

// modify is the read-modify-write every change goes through. The store
// refuses a stale version, so a concurrent change surfaces as ErrConflict
// instead of being silently lost.
func (s *Service) modify(ctx context.Context, id ID, change func(*Tenant) error) (*Tenant, error) {
	t, err := s.store.FindByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := change(t); err != nil {
		return nil, err
	}
	t.UpdateTime = s.now().UTC().Truncate(time.Microsecond)
	err = s.store.Update(ctx, t)
	// Forgotten even on error: an update whose answer was lost (a
	// timeout) may still have committed.
	s.changed(id)
	if err != nil {
		return nil, err
	}
	return t, nil
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns "tn_" and 16 random lowercase base32 characters (80 bits).
func newID() ID {
	b := make([]byte, 10)
	rand.Read(b)
	return ID("tn_" + idEncoding.EncodeToString(b))
}

func newWebhookSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// pageOf reads a listing's page size (0: DefaultPageSize; at most
// MaxPageSize) and its page token, the id to list after.
func pageOf(pageSize int, pageToken string) (int, ID, error) {
	size, after, err := ParsePage(pageSize, pageToken)
	return size, ID(after), err
}

// ParsePage reads the page size (0: DefaultPageSize; at most MaxPageSize)
// and page token of a listing ordered by a key: the key to list after,
// "" for the first page.
func ParsePage(pageSize int, pageToken string) (size int, after string, err error) {
	switch {
	case pageSize < 0:
		return 0, "", fieldErr("page_size", "must not be negative")
	case pageSize == 0:
		pageSize = DefaultPageSize
	case pageSize > MaxPageSize:
		pageSize = MaxPageSize
	}
	after, err = decodePageToken(pageToken)
	return pageSize, after, err
}

// NextPageToken is the page token of the page after the key after.
func NextPageToken(after string) string { return encodePageToken(ID(after)) }

func encodePageToken(after ID) string {
	return base64.RawURLEncoding.EncodeToString([]byte("after:" + after))
}

func decodePageToken(tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !strings.HasPrefix(string(b), "after:") {
		return "", fieldErr("page_token", "is not a token returned by a previous page")
	}
	return strings.TrimPrefix(string(b), "after:"), nil
}

// String keeps secrets out of logs and error messages even when a Tenant is
// printed whole by mistake.
func (s Secrets) String() string { return "{sealed}" }

// GoString is the %#v form of String.
func (s Secrets) GoString() string { return s.String() }

// String hides webhook secrets like Secrets.String.
func (w WebhookSecrets) String() string {
	return fmt.Sprintf("{sealed, previous until %s}", w.PreviousUntil)
}

// GoString is the %#v form of String.
func (w WebhookSecrets) GoString() string { return w.String() }
