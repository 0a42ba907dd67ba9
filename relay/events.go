package relay

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/wxrelay/wxrelay/tenant"
)

// Page sizes for listing events.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// Events answers tenants' questions about their events.
type Events struct {
	store Store
}

// NewEvents returns an Events on store.
func NewEvents(store Store) *Events { return &Events{store: store} }

// Get returns one of tid's events. ErrNotFound.
func (s *Events) Get(ctx context.Context, tid tenant.ID, id EventID) (*Event, error) {
	return s.store.FindEvent(ctx, tid, id)
}

// GetWithAttempts returns one of tid's events with its delivery attempts,
// oldest first. ErrNotFound.
func (s *Events) GetWithAttempts(ctx context.Context, tid tenant.ID, id EventID) (*Event, []Attempt, error) {
	e, err := s.store.FindEvent(ctx, tid, id)
	if err != nil {
		return nil, nil, err
	}
	attempts, err := s.store.FindAttempts(ctx, tid, id)
	if err != nil {
		return nil, nil, err
	}
	return e, attempts, nil
}

// List returns a page of tid's events, newest first, that pass f's
// filters (its PageSize and Before are ignored), and the token of the
// next page ("" at the end). ErrInvalid for a bad page size, token or
// filter.
func (s *Events) List(ctx context.Context, tid tenant.ID, pageSize int, pageToken string, f EventFilter) ([]*Event, string, error) {
	pageSize, err := PageSize(pageSize)
	if err != nil {
		return nil, "", err
	}
	before, err := DecodeCursor(pageToken)
	if err != nil {
		return nil, "", err
	}
	if f.Type != "" && !validEventType(f.Type) {
		return nil, "", &tenant.FieldError{Field: "type", Reason: "is not an event type such as message.text or event.user_enter_tempsession"}
	}
	if !f.ReceivedAfter.IsZero() && !f.ReceivedBefore.IsZero() && !f.ReceivedAfter.Before(f.ReceivedBefore) {
		return nil, "", &tenant.FieldError{Field: "received_before", Reason: "must be later than received_after"}
	}
	f.PageSize, f.Before = pageSize+1, before
	stored, err := s.store.FindEvents(ctx, tid, f)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(stored) > pageSize {
		stored = stored[:pageSize]
		next = EncodeCursor(stored[pageSize-1].Cursor)
	}
	events := make([]*Event, len(stored))
	for i, s := range stored {
		events[i] = s.Event
	}
	return events, next, nil
}

// EncodeCursor makes the page token of a listing newest first that goes on
// below c, the last listed row's sequence number.
func EncodeCursor(c int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("before:" + strconv.FormatInt(c, 10)))
}

// DecodeCursor reads a token of EncodeCursor; "" is 0, the newest. A
// *tenant.FieldError naming page_token for anything else.
func DecodeCursor(tok string) (int64, error) {
	if tok == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		if s, ok := strings.CutPrefix(string(b), "before:"); ok {
			if c, err := strconv.ParseInt(s, 10, 64); err == nil && c > 0 {
				return c, nil
			}
		}
	}
	return 0, &tenant.FieldError{Field: "page_token", Reason: "is not a token returned by a previous page"}
}

// PageSize is a listing's page size as asked for: 0 means DefaultPageSize,
// and more than MaxPageSize is MaxPageSize. A *tenant.FieldError if
// negative.
func PageSize(n int) (int, error) {
	switch {
	case n < 0:
		return 0, &tenant.FieldError{Field: "page_size", Reason: "must not be negative"}
	case n == 0:
		return DefaultPageSize, nil
	}
	return min(n, MaxPageSize), nil
}

// validEventType reports whether t looks like message.<MsgType> or
// event.<Event>: a filter of another shape is a mistake that would
// silently match nothing.
func validEventType(t string) bool {
	kind, name, ok := strings.Cut(t, ".")
	if !ok || (kind != "message" && kind != "event") || name == "" || len(t) > 128 {
		return false
	}
	for _, r := range name {
		if !(r == '_' || r == '-' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')) {
			return false
		}
	}
	return true
}
