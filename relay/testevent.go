package relay

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/wxrelay/wxrelay/tenant"
)

// TypeTest is the type of a test event: one an operator or the tenant
// sends to the tenant's webhook to see it answer, delivered, signed and
// retried as any event is.
const TypeTest = "wxrelay.test"

// MaxTestNote bounds a test event's note, in characters.
const MaxTestNote = 200

// testData is a test event's data.
type testData struct {
	Note   string `json:"note"`
	SentBy string `json:"sent_by"`
}

// NewTestEvent makes a test event for tenant t, carrying note and who
// sent it (an operator's name, "admin" or "tenant"). It opens no reply
// window: no user spoke.
func NewTestEvent(t *tenant.Tenant, note, sentBy string, now time.Time) (*Event, error) {
	if utf8.RuneCountInString(note) > MaxTestNote || !utf8.ValidString(note) {
		return nil, &tenant.FieldError{Field: "note", Reason: fmt.Sprintf("must be text of at most %d characters", MaxTestNote)}
	}
	if note == "" {
		note = "a test event: answer 2xx to mark it delivered"
	}
	now = now.UTC().Truncate(time.Microsecond)
	e := &Event{
		ID:            NewEventID(now),
		TenantID:      t.ID,
		DedupKey:      TypeTest + "@" + strconv.FormatInt(now.UnixNano(), 10),
		Type:          TypeTest,
		CreateTime:    now.Truncate(time.Second),
		ReceiveTime:   now,
		State:         StatePending,
		NoReplyWindow: true,
	}
	if err := e.setBody(t.AppID, "", testData{Note: note, SentBy: sentBy}); err != nil {
		return nil, fmt.Errorf("relay: test event: %w", err)
	}
	return e, nil
}
