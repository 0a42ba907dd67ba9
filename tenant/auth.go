package tenant

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Principal is who made a request: an admin, or one tenant's API key.
type Principal struct {
	Admin  bool
	Tenant ID // set for tenant principals
	// Operator is the name of the operator whose key it is; "" for an
	// admin token, which names nobody.
	Operator string
	// ReadOnly is set for an operator who may read what admins may, and
	// change nothing (RoleViewer).
	ReadOnly bool
}

// CanAccess reports whether p may act on tenant id's resources.
func (p Principal) CanAccess(id ID) bool { return p.Admin || p.Tenant == id }

const (
	issuer       = "wxrelay"
	roleAdmin    = "admin"
	roleTenant   = "tenant"
	adminSubject = "admin"
)

// claims are the JWT claims of both kinds of token. Role tells them apart so
// that a tenant key can never pass for an admin token.
type claims struct {
	Role string `json:"role"`
	jwt.RegisteredClaims
}

// Authenticator issues and verifies bearer tokens: short-lived admin tokens,
// and tenant API keys whose key id is checked against the store on every
// call, so that rotation and deletion revoke a key at once.
type Authenticator struct {
	key    []byte
	store  Store
	now    func() time.Time
	parser *jwt.Parser

	// keys remembers the claims of API keys whose signature has been
	// checked, by key. Parsing and checking a JWT took a quarter of
	// Verify's CPU on every send (docs/benchmarks.md, "Sending"), and an
	// API key's claims never change: it has no expiry, and rotation or
	// deletion revokes it through the store, which is still asked on every
	// call. Bounded by maxRememberedKeys.
	keysMu sync.Mutex
	keys   map[string]claims

	// keyCache answers Precheck's question of an API key's currency; nil
	// asks the store.
	keyCache KeyHashStore

	// operators checks operators' keys; nil refuses them.
	operators OperatorStore

	// wxKey is the MAC key of relay tokens (wxtoken.go), derived from key
	// on first use.
	wxKeyOnce sync.Once
	wxKey     []byte
}

// maxRememberedKeys bounds Authenticator.keys: one key per tenant in use,
// about 250 bytes each. When full it is emptied and refilled as keys come.
const maxRememberedKeys = 16384

// NewAuthenticator signs with key (HMAC-SHA256; at least 32 bytes).
// now may be nil for time.Now.
func NewAuthenticator(key []byte, store Store, now func() time.Time) (*Authenticator, error) {
	if len(key) < 32 {
		return nil, errors.New("tenant: signing key must be at least 32 bytes")
	}
	if now == nil {
		now = time.Now
	}
	return &Authenticator{
		key:   key,
		store: store,
		now:   now,
		// The algorithm is pinned: "none", RS256 with the HMAC key as a
		// public key, and every other confusion is refused by the parser.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithIssuer(issuer),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(now),
			jwt.WithLeeway(clockLeeway),
		),
	}, nil
}

// clockLeeway is how far past its expiry a token is still accepted. The
// issuer is the relay itself and replicas keep their clocks by NTP, so a
// second covers their skew; more would stretch a short token's life many
// times over (a 1 s token lived 31 s with the 30 s once allowed here).
const clockLeeway = time.Second

// MaxAdminTokenTTL is the longest life of an admin token. Admin tokens
// cannot be revoked one by one (only by changing the secret key), so a
// leaked one must not stay good for long.
const MaxAdminTokenTTL = 7 * 24 * time.Hour

// IssueAdminToken returns an admin token valid for ttl, at most
// MaxAdminTokenTTL.
func (a *Authenticator) IssueAdminToken(ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", errors.New("tenant: admin token ttl must be positive")
	}
	if ttl > MaxAdminTokenTTL {
		return "", fmt.Errorf("tenant: admin token ttl %s is over the maximum of %s", ttl, MaxAdminTokenTTL)
	}
	now := a.now()
	return a.sign(claims{Role: roleAdmin, RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    issuer,
		Subject:   adminSubject,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		ID:        randomString(12),
	}})
}

// newAPIKey returns a fresh API key for tenant id and the hash of its key id
// that the store keeps. API keys do not expire: they are revoked by rotation.
func (a *Authenticator) newAPIKey(id ID) (key string, keyHash []byte, err error) {
	keyID := randomString(24)
	key, err = a.sign(claims{Role: roleTenant, RegisteredClaims: jwt.RegisteredClaims{
		Issuer:   issuer,
		Subject:  string(id),
		IssuedAt: jwt.NewNumericDate(a.now()),
		ID:       keyID,
	}})
	return key, hashKeyID(keyID), err
}

func (a *Authenticator) sign(c claims) (string, error) {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(a.key)
	if err != nil {
		return "", fmt.Errorf("tenant: sign token: %w", err)
	}
	return s, nil
}

// Verify returns the principal behind a bearer token. ErrUnauthenticated for
// anything but a well-formed, correctly signed, unexpired admin token or a
// tenant's current API key, as the store knows it.
func (a *Authenticator) Verify(ctx context.Context, token string) (Principal, error) {
	return a.verify(ctx, token, a)
}

// verify is Verify and Precheck, which ask keys whether an API key is its
// tenant's current one.
func (a *Authenticator) verify(ctx context.Context, token string, keys KeyHashStore) (Principal, error) {
	c, err := a.parse(token)
	if err != nil {
		return Principal{}, err
	}
	switch c.Role {
	case roleAdmin:
		// Admin tokens must expire: a leaked one is only good for its ttl.
		if err := checkAdmin(c); err != nil {
			return Principal{}, err
		}
		return Principal{Admin: true}, nil
	case roleTenant:
		id := ID(c.Subject)
		current, err := keys.APIKeyHash(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return Principal{}, fmt.Errorf("%w: tenant %q no longer exists", ErrUnauthenticated, c.Subject)
		} else if err != nil {
			return Principal{}, fmt.Errorf("verify api key: %w", err)
		}
		if subtle.ConstantTimeCompare(current, hashKeyID(c.ID)) != 1 {
			return Principal{}, fmt.Errorf("%w: api key was rotated", ErrUnauthenticated)
		}
		return Principal{Tenant: id}, nil
	case roleOperator:
		return a.verifyOperator(ctx, c)
	default:
		return Principal{}, fmt.Errorf("%w: unknown role %q", ErrUnauthenticated, c.Role)
	}
}

// Precheck is the check a request passes before the relay reads its body:
// token must be signed here and unexpired, and an API key must still be
// its tenant's current one as the key cache knows it (SetKeyCache), so
// that neither a stranger nor the holder of a rotated or deleted tenant's
// key can make the relay read and hold megabytes. It reads memory, or on
// a cache miss one indexed row. Verify, against the store, must still
// follow. ErrUnauthenticated.
func (a *Authenticator) Precheck(ctx context.Context, token string) (Principal, error) {
	if a.keyCache == nil {
		return a.verify(ctx, token, a)
	}
	return a.verify(ctx, token, a.keyCache)
}

// checkAdmin refuses claims that are not an admin token's, or have no
// expiry.
func checkAdmin(c claims) error {
	if c.Role != roleAdmin || c.ExpiresAt == nil || c.Subject != adminSubject {
		return fmt.Errorf("%w: not an admin token with an expiry", ErrUnauthenticated)
	}
	return nil
}

// SetKeyCache has Precheck read API key hashes from ks, a *Cache, rather
// than from the store: the cache is told of rotations and deletions as
// they happen (Service.OnChange, and store notices from other replicas).
// Verify keeps reading the store.
func (a *Authenticator) SetKeyCache(ks KeyHashStore) { a.keyCache = ks }

// APIKeyHash reads tenant id's API key hash from the store.
func (a *Authenticator) APIKeyHash(ctx context.Context, id ID) ([]byte, error) {
	return a.keyHash(ctx, id)
}

// KeyHashStore is a Store that reads a tenant's API key hash alone, which
// Verify then does on every call instead of reading the whole tenant.
type KeyHashStore interface {
	// APIKeyHash returns the APIKeyHash of tenant id. ErrNotFound.
	APIKeyHash(ctx context.Context, id ID) ([]byte, error)
}

// keyHash returns tenant id's current API key hash from the store.
func (a *Authenticator) keyHash(ctx context.Context, id ID) ([]byte, error) {
	if ks, ok := a.store.(KeyHashStore); ok {
		return ks.APIKeyHash(ctx, id)
	}
	t, err := a.store.FindByID(ctx, id)
	if err != nil {
		return nil, err
	}
	return t.APIKeyHash, nil
}

// parse checks token's signature and claims, or finds an API key checked
// before in a.keys.
func (a *Authenticator) parse(token string) (claims, error) {
	a.keysMu.Lock()
	c, ok := a.keys[token]
	a.keysMu.Unlock()
	if ok {
		return c, nil
	}
	if _, err := a.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return a.key, nil }); err != nil {
		return claims{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	// Only tokens that cannot expire are remembered: admin tokens do, and
	// are rare on the hot path anyway. (Whether a key is current is asked
	// of the store every time.)
	if (c.Role == roleTenant || c.Role == roleOperator) && c.ExpiresAt == nil && c.NotBefore == nil {
		a.keysMu.Lock()
		if a.keys == nil || len(a.keys) >= maxRememberedKeys {
			a.keys = make(map[string]claims)
		}
		a.keys[token] = c
		a.keysMu.Unlock()
	}
	return c, nil
}

func hashKeyID(keyID string) []byte {
	h := sha256.Sum256([]byte(keyID))
	return h[:]
}

// randomString returns n random bytes as unpadded URL-safe base64.
func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails: crypto/rand aborts the program rather than return an error
	return base64.RawURLEncoding.EncodeToString(b)
}
