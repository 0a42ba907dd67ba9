// Package relay moves customer-service messages between WeChat and
// tenants: it takes WeChat's pushes in, stores them as events, and hands
// them to delivery. It imports neither the database nor the wire API.
package relay

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strings"
	"time"

	"github.com/wxrelay/wxrelay/tenant"
)

// EventID identifies an event: "evt_" and 26 characters that sort by the
// time the event was received. It is also the webhook-id of every delivery
// attempt, so receivers can de-duplicate on it.
type EventID string

// State is where an event is in delivery.
type State int

const (
	StateUnspecified State = iota
	StatePending           // waiting for a (further) delivery attempt
	StateDelivered         // the webhook answered 2xx
	StateFailed            // the retry schedule ran out
)

// Event is one push from WeChat, stored before WeChat is answered.
type Event struct {
	ID       EventID
	TenantID tenant.ID
	// DedupKey identifies WeChat's retries of the same push: the MsgId of a
	// message, FromUserName + CreateTime + Event of an event.
	DedupKey string
	// Type is message.<MsgType> or event.<Event>.
	Type        string
	OpenID      string
	CreateTime  time.Time // WeChat's CreateTime
	ReceiveTime time.Time
	// Raw is the body as WeChat posted it, kept for audits and replays.
	Raw []byte
	// Payload is the webhook body of contract section 5, computed once at
	// ingest so that every attempt sends the very same bytes.
	Payload []byte

	// DueAt is when the first delivery attempt is due; zero means at once.
	// Of a stored pending event, when its next attempt is due.
	DueAt time.Time

	// NoReplyWindow: the tenant sends without the relay's reply-window
	// check (tenant.IgnoreReplyWindow), so the push's trigger need not be
	// recorded. The store records none, and forgets what it knew of the
	// tenant's windows when the check is turned on again.
	NoReplyWindow bool

	State        State
	AttemptCount int
}

// Sentinels carry client-safe text.
var (
	ErrNotFound = errors.New("event not found")
	ErrInvalid  = errors.New("invalid request")
)

// EventFilter pages through a tenant's events, newest first.
type EventFilter struct {
	PageSize int
	// Before is the cursor of the last event of the previous page; zero for
	// the first page.
	Before int64
	// Optional filters: the type, the state, and a window of receive
	// times [ReceivedAfter, ReceivedBefore); zero values filter nothing.
	Type           string
	State          State
	ReceivedAfter  time.Time
	ReceivedBefore time.Time
	// OpenID keeps one user's events.
	OpenID string
}

// StoredEvent is an event with the store's ordering cursor.
type StoredEvent struct {
	*Event
	Cursor int64
}

// Store persists events.
type Store interface {
	// AppendEvents stores a batch of events in one transaction: one durable
	// commit for all. For each event it reports the stored ID: the event's
	// own when it is new, the original's when its DedupKey was already
	// stored for the tenant (a WeChat retry), which is then not stored again.
	AppendEvents(ctx context.Context, events []*Event) ([]AppendResult, error)
	// FindEvent returns one of tenant tid's events. ErrNotFound, also for
	// another tenant's event.
	FindEvent(ctx context.Context, tid tenant.ID, id EventID) (*Event, error)
	// FindEvents returns up to f.PageSize of tid's events, newest first,
	// without Raw and Payload.
	FindEvents(ctx context.Context, tid tenant.ID, f EventFilter) ([]StoredEvent, error)
	// FindAttempts returns the delivery attempts of one of tid's events,
	// oldest first. ErrNotFound.
	FindAttempts(ctx context.Context, tid tenant.ID, id EventID) ([]Attempt, error)
}

// AppendResult is the outcome of storing one event.
type AppendResult struct {
	ID        EventID // the stored event's id: the original's for a duplicate
	Duplicate bool
}

// crockford is Crockford's base32 alphabet: ids stay readable and sort in
// the order of their bytes.
const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

// NewEventID returns an id that sorts by t (milliseconds), with 80 random
// bits so that ids made in the same millisecond by several replicas differ.
func NewEventID(t time.Time) EventID {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixMilli())<<16)
	rand.Read(b[6:])
	// 128 bits as 26 base32 digits, most significant first.
	var sb strings.Builder
	sb.WriteString("evt_")
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	for i := 25; i >= 0; i-- {
		shift := uint(i * 5)
		var v uint64
		switch {
		case shift >= 64:
			v = hi >> (shift - 64)
		case shift == 0:
			v = lo
		default:
			v = lo>>shift | hi<<(64-shift)
		}
		sb.WriteByte(crockford[v&31])
	}
	return EventID(sb.String())
}
