package tenant

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// OperatorID names an operator: op_ and 16 random characters.
type OperatorID string

// Operator is a named person who runs the relay: each has a key of their
// own, which works as an admin token on the API and signs them in to the
// console, and which stops working at once when the operator is removed,
// with every session it opened. What operators change is in the audit
// log under their name; the admin tokens of `wxrelay admin-token` remain
// for the first operator and for break-glass, and show there as such.
type Operator struct {
	ID         OperatorID
	Name       string
	Role       OperatorRole
	KeyHash    []byte // the hash of the key's id; the key itself is shown once
	CreateTime time.Time
	CreatedBy  string // who added them: an operator's name, or "admin token"
}

// OperatorRole is what an operator may do.
type OperatorRole string

const (
	// RoleAdmin has an admin token's rights: everything.
	RoleAdmin OperatorRole = "admin"
	// RoleViewer may read everything an admin may, and change nothing:
	// for support staff who look into a tenant's deliveries, and for
	// dashboards.
	RoleViewer OperatorRole = "viewer"
)

// OperatorStore keeps operators; *store.OperatorStore is one.
type OperatorStore interface {
	// CreateOperator stores o. ErrConflict if the name is taken.
	CreateOperator(ctx context.Context, o *Operator) error
	// Operators lists the operators by name.
	Operators(ctx context.Context) ([]*Operator, error)
	// DeleteOperator removes the operator id and its console sessions.
	// ErrNotFound.
	DeleteOperator(ctx context.Context, id OperatorID) error
	// Operator returns operator id, its key hash included. ErrNotFound.
	Operator(ctx context.Context, id OperatorID) (*Operator, error)
	// SetOperatorKey replaces operator id's key hash and returns the
	// operator. ErrNotFound.
	SetOperatorKey(ctx context.Context, id OperatorID, keyHash []byte) (*Operator, error)
}

// ErrOperatorNotFound is an operator id that names none.
var ErrOperatorNotFound = fmt.Errorf("operator %w", ErrNotFound)

// roleOperator is the role of operators' keys.
const roleOperator = "operator"

// AdminTokenActor is how the audit log names a change made with an admin
// token, which names nobody.
const AdminTokenActor = "admin token"

var operatorNamePattern = regexp.MustCompile(`^[\p{L}\p{N}][\p{L}\p{N} ._@-]{0,63}$`)

// SetOperators has Verify take operators' keys, checked against s on
// every call so that removing an operator revokes its key at once.
func (a *Authenticator) SetOperators(s OperatorStore) { a.operators = s }

// NewOperator adds an operator named name, with role (RoleAdmin when
// ""), added by createdBy, and returns it with its key, which is not kept
// (only its id's hash is).
func (a *Authenticator) NewOperator(ctx context.Context, name string, role OperatorRole, createdBy string) (*Operator, string, error) {
	if a.operators == nil {
		return nil, "", errors.New("tenant: no operator store")
	}
	name = strings.TrimSpace(name)
	if !operatorNamePattern.MatchString(name) {
		return nil, "", fieldErr("name", "must be 1 to 64 letters, digits, spaces or . _ @ -, beginning with a letter or digit")
	}
	switch role {
	case "":
		role = RoleAdmin
	case RoleAdmin, RoleViewer:
	default:
		return nil, "", fieldErr("role", "must be admin or viewer")
	}
	b := make([]byte, 10)
	rand.Read(b)
	o := &Operator{ID: OperatorID("op_" + idEncoding.EncodeToString(b)), Name: name, Role: role,
		CreateTime: a.now().UTC().Truncate(time.Microsecond), CreatedBy: createdBy}
	key, hash, err := a.operatorKey(o.ID)
	if err != nil {
		return nil, "", err
	}
	o.KeyHash = hash
	if err := a.operators.CreateOperator(ctx, o); err != nil {
		return nil, "", err
	}
	return o, key, nil
}

// RotateOperatorKey issues operator id a new key and returns it; the old
// one stops working at once. ErrNotFound.
func (a *Authenticator) RotateOperatorKey(ctx context.Context, id OperatorID) (*Operator, string, error) {
	if a.operators == nil {
		return nil, "", errors.New("tenant: no operator store")
	}
	key, hash, err := a.operatorKey(id)
	if err != nil {
		return nil, "", err
	}
	o, err := a.operators.SetOperatorKey(ctx, id, hash)
	if err != nil {
		return nil, "", err
	}
	return o, key, nil
}

// operatorKey signs a new key for operator id and returns it with the
// hash of its id, which the store keeps.
func (a *Authenticator) operatorKey(id OperatorID) (key string, hash []byte, err error) {
	keyID := randomString(24)
	key, err = a.sign(claims{Role: roleOperator, RegisteredClaims: jwt.RegisteredClaims{
		Issuer: issuer, Subject: string(id), IssuedAt: jwt.NewNumericDate(a.now()), ID: keyID,
	}})
	return key, hashKeyID(keyID), err
}

// verifyOperator checks an operator key's claims against the store.
func (a *Authenticator) verifyOperator(ctx context.Context, c claims) (Principal, error) {
	if a.operators == nil {
		return Principal{}, fmt.Errorf("%w: operator keys are not taken here", ErrUnauthenticated)
	}
	o, err := a.operators.Operator(ctx, OperatorID(c.Subject))
	if errors.Is(err, ErrNotFound) {
		return Principal{}, fmt.Errorf("%w: the operator was removed", ErrUnauthenticated)
	} else if err != nil {
		return Principal{}, fmt.Errorf("verify operator key: %w", err)
	}
	if subtle.ConstantTimeCompare(o.KeyHash, hashKeyID(c.ID)) != 1 {
		return Principal{}, fmt.Errorf("%w: not the operator's current key", ErrUnauthenticated)
	}
	// The role is read with the key, on every call: a role changed in
	// the database holds at once, as a removal does.
	return Principal{Admin: true, Operator: o.Name, ReadOnly: o.Role != RoleAdmin}, nil
}

// Actor names p in the audit log: the operator, the admin token, or the
// tenant.
func (p Principal) Actor() string {
	switch {
	case p.Operator != "":
		return p.Operator
	case p.Admin:
		return AdminTokenActor
	case p.Tenant != "":
		return "tenant " + string(p.Tenant)
	}
	return ""
}

// OperatorSessionTTL is how long a console session opened with an
// operator's key lasts; removing the operator ends it at once.
const OperatorSessionTTL = 12 * time.Hour

// VerifySignIn checks a token the console is given to sign in with, an
// admin token or an operator's key, and returns who it is and when the
// session it opens must end: the admin token's expiry, or
// OperatorSessionTTL from now. ErrUnauthenticated for anything else, an
// API key included.
func (a *Authenticator) VerifySignIn(ctx context.Context, token string) (Principal, time.Time, error) {
	c, err := a.parse(token)
	if err != nil {
		return Principal{}, time.Time{}, err
	}
	if c.Role == roleOperator {
		p, err := a.verifyOperator(ctx, c)
		return p, a.now().Add(OperatorSessionTTL), err
	}
	if err := checkAdmin(c); err != nil {
		return Principal{}, time.Time{}, err
	}
	return Principal{Admin: true}, c.ExpiresAt.Time, nil
}
