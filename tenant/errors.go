package tenant

import (
	"errors"
	"fmt"
)

// Sentinels carry client-safe text; adapters wrap them with detail for logs.
var (
	ErrNotFound        = errors.New("tenant not found")
	ErrConflict        = errors.New("tenant conflicts with an existing one")
	ErrInvalid         = errors.New("invalid tenant")
	ErrUnauthenticated = errors.New("missing, invalid or expired credentials")
	ErrForbidden       = errors.New("not allowed for this principal")
)

// FieldError says which input field is wrong and why. It matches ErrInvalid.
type FieldError struct {
	Field  string // the proto field name, as clients send it
	Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Reason) }

// Is makes errors.Is(err, ErrInvalid) hold for every FieldError.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
