package tenant

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinels carry client-safe text; adapters wrap them with detail for logs.
var (
	ErrNotFound        = errors.New("tenant not found")
	ErrConflict        = errors.New("tenant conflicts with an existing one")
	ErrInvalid         = errors.New("invalid tenant")
	ErrUnauthenticated = errors.New("missing, invalid or expired credentials")
	ErrForbidden       = errors.New("not allowed for this principal")
	// ErrDisabled: the tenant is disabled (state STATE_DISABLED), so
	// nothing may be sent as it until an admin enables it again.
	ErrDisabled = errors.New("the tenant is disabled: enable it (state STATE_ACTIVE) to send")
	// ErrNotAuthorized: the tenant is a component's, and its mini program
	// has not authorized the component (yet), or has revoked it: there is
	// no token to send with until it authorizes again.
	ErrNotAuthorized = errors.New("the mini program has not authorized the tenant's component, or revoked it: get a consent link and have the merchant authorize")
)

// FieldError says which input field is wrong and why. It matches ErrInvalid.
type FieldError struct {
	Field  string // the proto field name, as clients send it
	Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Reason) }

// Is makes errors.Is(err, ErrInvalid) hold for every FieldError.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// FieldErrors are several fields wrong at once: the required fields a
// request left out, all named in one answer rather than one a request.
// It matches ErrInvalid.
type FieldErrors []*FieldError

func (e FieldErrors) Error() string {
	parts := make([]string, len(e))
	for i, fe := range e {
		parts[i] = fe.Error()
	}
	return strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) hold for FieldErrors.
func (e FieldErrors) Is(target error) bool { return target == ErrInvalid }

// ConflictError is a conflict explained for the client, in a sentence
// said once. It matches ErrConflict.
type ConflictError struct {
	Msg string
	// AppID and Holder are set when the appid is registered already, to
	// the tenant Holder. (Only admins create tenants or change an appid,
	// so the holder may be named.)
	AppID  string
	Holder ID
}

func (e *ConflictError) Error() string { return e.Msg }

// Is makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// AppIDTaken is the conflict of an appid registered to the tenant holder.
func AppIDTaken(appid string, holder ID) *ConflictError {
	msg := fmt.Sprintf("appid %s is already registered to tenant %s", appid, holder)
	if holder == "" { // deleted in between
		msg = fmt.Sprintf("appid %s is already registered to another tenant", appid)
	}
	return &ConflictError{Msg: msg, AppID: appid, Holder: holder}
}

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
