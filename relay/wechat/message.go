package wechat

import (
	"encoding/json"
	"fmt"
)

// Message is one decoded push: a customer-service message such as text,
// image or miniprogrampage, or an event such as user_enter_tempsession. Any
// MsgType or Event decodes, known or not, so nothing WeChat sends is dropped.
type Message struct {
	// Format is the format the message arrived in.
	Format Format

	ToUserName   string // the mini program's original ID, gh_…
	FromUserName string // the sender's openid
	CreateTime   int64  // Unix seconds; sent as a number or a string
	MsgType      string // "text", "image", "miniprogrampage", "event", …
	Event        string // the event name when MsgType is "event"

	// MsgID is MsgId as its exact decimal digits, or "" for events. MsgIds
	// exceed 2^53, so they never go through a float64.
	MsgID string

	// Data holds every field as WeChat sent it, names unchanged, as one
	// compact JSON object with sorted keys: the payload forwarded to
	// tenants. XML and JSON pushes of the same message give the same Data:
	// CDATA text becomes a JSON string, a bare integer a JSON number with
	// the same digits, nested elements objects and repeated elements arrays.
	// JSON numbers are kept verbatim.
	Data json.RawMessage
}

// DecodeMessage decodes a plaintext push body, or the inner message of an
// encrypted one, in JSON or XML recognised from its first byte. It returns
// ErrMalformed if the body does not parse, has no MsgType, or has a common
// field of the wrong type (CreateTime and MsgId must be integers, given as
// numbers or strings).
func DecodeMessage(body []byte) (*Message, error) {
	if m, ok := decodeMessageFast(body); ok {
		return m, nil
	}
	obj, f, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	r := fields{obj: obj}
	m := &Message{
		Format:       f,
		ToUserName:   r.string("ToUserName"),
		FromUserName: r.string("FromUserName"),
		CreateTime:   r.int64("CreateTime"),
		MsgType:      r.string("MsgType"),
		Event:        r.string("Event"),
		MsgID:        r.decimal("MsgId"),
	}
	if r.err != nil {
		return nil, r.err
	}
	if m.MsgType == "" {
		// Also what a safe-mode envelope looks like to a receiver that
		// expected plaintext.
		return nil, fmt.Errorf("%w: no MsgType", ErrMalformed)
	}
	if m.Data, err = canonicalJSON(obj); err != nil {
		return nil, err
	}
	return m, nil
}

// IsEvent reports whether the message is an event (MsgType "event") rather
// than something a user sent.
func (m *Message) IsEvent() bool { return m.MsgType == "event" }

// DedupKey returns the key under which WeChat's retries of this push
// collide, following WeChat's rule: messages are identified by MsgId,
// events by FromUserName and CreateTime (plus the event name, so two kinds
// of event in the same second stay apart).
//
//	msg:<MsgId>
//	evt:<FromUserName>:<CreateTime>:<Event>
//
// A non-event without a MsgId is keyed like an event, with its MsgType in
// place of the event name. Keys are unique per mini program only.
func (m *Message) DedupKey() string {
	if !m.IsEvent() && m.MsgID != "" {
		return "msg:" + m.MsgID
	}
	kind := m.Event
	if !m.IsEvent() {
		kind = m.MsgType
	}
	return "evt:" + m.FromUserName + ":" + formatInt(m.CreateTime) + ":" + kind
}
