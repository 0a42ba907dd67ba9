package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// webhookBody is the JSON body delivered to tenants (contract section 5).
type webhookBody struct {
	ID          EventID         `json:"id"`
	Type        string          `json:"type"`
	TenantID    tenant.ID       `json:"tenant_id"`
	AppID       string          `json:"appid"`
	OpenID      string          `json:"openid"`
	CreateTime  string          `json:"create_time"`
	ReceiveTime string          `json:"receive_time"`
	Data        json.RawMessage `json:"data"`
}

// maxTextField bounds the push fields stored as text columns.
const maxTextField = 256

// EventType names a message message.<MsgType> and an event event.<Event>.
func EventType(m *wechat.Message) string {
	if m.IsEvent() {
		if m.Event == "" {
			return "event.unknown"
		}
		return "event." + m.Event
	}
	return "message." + m.MsgType
}

// NewEvent makes the event for a verified, decoded push of tenant t, with
// its webhook body computed once, here, so every delivery attempt sends
// the same bytes.
//
// The fields stored as text (sender, type, de-duplication key) must be valid
// UTF-8 without NUL and of sane length, else ErrInvalid: databases refuse
// such text, and one refused row would fail every push committed with it.
func NewEvent(t *tenant.Tenant, m *wechat.Message, raw []byte, receivedAt time.Time) (*Event, error) {
	for _, f := range []struct{ name, value string }{
		{"FromUserName", m.FromUserName}, {"MsgType", m.MsgType}, {"Event", m.Event}, {"MsgId", m.MsgID},
	} {
		if len(f.value) > maxTextField || !utf8.ValidString(f.value) || strings.ContainsRune(f.value, 0) {
			return nil, fmt.Errorf("%w: %s is not valid text of at most %d bytes", ErrInvalid, f.name, maxTextField)
		}
	}
	receivedAt = receivedAt.UTC().Truncate(time.Microsecond)
	e := &Event{
		ID:          NewEventID(receivedAt),
		TenantID:    t.ID,
		DedupKey:    m.DedupKey(),
		Type:        EventType(m),
		OpenID:      m.FromUserName,
		CreateTime:  time.Unix(m.CreateTime, 0).UTC(),
		ReceiveTime: receivedAt,
		Raw:         raw,
		State:       StatePending,

		NoReplyWindow: t.IgnoreReplyWindow,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Text such as <a href="..."> reaches tenants as WeChat sent it, not
	// as \u003ca: JSON allows both, and people read these bodies.
	enc.SetEscapeHTML(false)
	err := enc.Encode(webhookBody{
		ID:          e.ID,
		Type:        e.Type,
		TenantID:    t.ID,
		AppID:       t.AppID,
		OpenID:      m.FromUserName,
		CreateTime:  e.CreateTime.Format(time.RFC3339),
		ReceiveTime: receivedAt.Format(time.RFC3339Nano),
		Data:        m.Data,
	})
	if err != nil {
		return nil, fmt.Errorf("relay: encode webhook body: %w", err)
	}
	e.Payload = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return e, nil
}
