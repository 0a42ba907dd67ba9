package message

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// The reply window (protocol §7): WeChat accepts customer-service sends to
// a user only after the user did something. A message from the user allows
// MessageQuota sends within MessageWindow; entering the session
// (user_enter_tempsession) allows EnterQuota within EnterWindow. Quotas do
// not accumulate: a new trigger resets its quota to the maximum.
//
// The relay stores every push it receives, so it knows each user's triggers
// and counts its own sends since them; a send WeChat would certainly refuse
// is refused at once (*WindowClosedError) without calling WeChat. "Would
// certainly refuse" is the point: every doubt resolves to sending, as a
// refusal WeChat would not have made loses a message, while a send WeChat
// refuses costs one round trip. So:
//
//   - A send is allowed while EITHER window is open: the last message within
//     MessageWindow with fewer than MessageQuota sends since it, or the last
//     entry within EnterWindow with fewer than EnterQuota sends since it. A
//     send counts against both triggers that precede it.
//   - A trigger's time is the later of WeChat's CreateTime and the relay's
//     receive time (TriggerTime), and windows get WindowGrace on top.
//   - What the relay has not seen it cannot rule out: a window is only
//     known closed by time if the relay has stored the tenant's pushes for
//     the whole window (Window.Since), e.g. not in a new tenant's first 48 h.
//   - Sends are counted by reserving a slot in the store, atomically and
//     across replicas, before calling WeChat; a send WeChat did not accept
//     gives its slot back. Idempotent replays do not send, so they reserve
//     nothing.
//
// Known gaps, where the relay may refuse what WeChat would accept: pushes
// lost before the relay stored them (an outage longer than WeChat's
// retries, or the console pointing elsewhere for a while), and a user's
// trigger that WeChat has registered but whose push has not been stored yet
// (the push's own latency). Tenants for whom those matter turn the check
// off (Tenant.IgnoreReplyWindow).
const (
	MessageWindow = 48 * time.Hour
	MessageQuota  = 5
	EnterWindow   = time.Minute
	EnterQuota    = 2
	// WindowGrace lengthens both windows, for the clocks involved (WeChat's,
	// and those of the replicas that stored the trigger and check the send)
	// and for WeChat's unknown rounding at the boundary.
	WindowGrace = 5 * time.Second
)

// Trigger is what a stored event does to its user's reply window.
type Trigger int

const (
	TriggerNone    Trigger = iota
	TriggerMessage         // a message from the user: MessageQuota within MessageWindow
	TriggerEnter           // the user entered the session: EnterQuota within EnterWindow
)

// EventEnterSession is the event type (relay.Event.Type) of a user entering
// the customer-service session.
const EventEnterSession = "event.user_enter_tempsession"

// TriggerOf classifies an event by its type, message.<MsgType> or
// event.<Event>: every user message opens the message window, the session
// entry opens the entry window, other events open nothing.
func TriggerOf(eventType string) Trigger {
	switch {
	case eventType == EventEnterSession:
		return TriggerEnter
	case strings.HasPrefix(eventType, "message."):
		return TriggerMessage
	}
	return TriggerNone
}

// TriggerTime is the time a trigger's window is counted from: the later of
// WeChat's CreateTime and the relay's receive time. WeChat counts from its
// own clock; the receive time is never before the trigger happened (it
// follows it by the push's latency) unless the relay's clock is behind
// WeChat's, and then CreateTime is the later one. The later of the two is
// thus never earlier than the true start, so the window it gives never
// ends before WeChat's does.
func TriggerTime(create, receive time.Time) time.Time {
	if create.After(receive) {
		return create
	}
	return receive
}

// Window is what the store knows of one user's reply windows.
type Window struct {
	// MessageAt is the TriggerTime of the user's last message, zero if none
	// is known; MessageSends counts the slots reserved since.
	MessageAt    time.Time
	MessageSends int
	// EnterAt is the TriggerTime of the user's last session entry, zero if
	// none is known; EnterSends counts the slots reserved since.
	EnterAt    time.Time
	EnterSends int
	// Since is when the relay started storing the tenant's pushes; zero if
	// it never has. Triggers before it are unknown.
	Since time.Time
}

// Slot is one reserved send: the triggers it was counted against, which
// tell a give-back whether they are still current.
type Slot struct {
	OpenID    string
	MessageAt time.Time
	EnterAt   time.Time
}

// WindowStore keeps reply windows; *store.WindowStore is one. Triggers are
// recorded by the event store as it stores pushes.
type WindowStore interface {
	// ReserveReplySlot atomically counts one send to openid if the last
	// message is after messageAfter with fewer than MessageQuota sends since
	// it, or the last entry after enterAfter with fewer than EnterQuota
	// sends. ok is false, and nothing counted, otherwise.
	ReserveReplySlot(ctx context.Context, tid tenant.ID, openid string, messageAfter, enterAfter time.Time) (s Slot, ok bool, err error)
	// ReleaseReplySlot gives a slot back: it uncounts the send from the
	// triggers it was counted against, unless a newer trigger replaced
	// them (and reset the count) meanwhile.
	ReleaseReplySlot(ctx context.Context, tid tenant.ID, s Slot) error
	// ReplyWindow reads openid's windows; a user never seen has a zero
	// Window but for Since.
	ReplyWindow(ctx context.Context, tid tenant.ID, openid string) (Window, error)
	// PruneReplyWindows deletes up to limit windows, of any tenant, whose
	// triggers are all before cutoff, and reports how many. The hourly job
	// runs it (WindowRetention).
	PruneReplyWindows(ctx context.Context, cutoff time.Time, limit int) (int, error)
}

// ErrReplyWindowClosed is wrapped by *WindowClosedError.
var ErrReplyWindowClosed = errors.New("message: no reply window")

// WindowClosedError refuses a send that WeChat would certainly refuse for
// the user's reply window.
type WindowClosedError struct {
	OpenID string
	// Errcode is WeChat's errcode for the refusal it would make:
	// wechat.CodeOutOfWindow (45015) or wechat.CodeOutOfResponses (45047).
	Errcode int
	// Reason says why, with the times, for clients to show.
	Reason string
}

func (e *WindowClosedError) Error() string { return e.Reason }
func (e *WindowClosedError) Unwrap() error { return ErrReplyWindowClosed }

// Errmsg is the errmsg WeChat answers with Errcode (protocol §7).
func (e *WindowClosedError) Errmsg() string {
	if e.Errcode == wechat.CodeOutOfResponses {
		return "out of response count limit"
	}
	return "response out of time limit or subscription is canceled"
}

// Refusal returns the error of a send to openid at now that WeChat would
// certainly refuse, and nil if WeChat might accept it. A window is surely
// closed when its trigger is within the window and its quota is used up,
// or when no trigger is within the window and the relay has stored the
// tenant's pushes for all of it; the send is refused when both are.
func (w Window) Refusal(openid string, now time.Time) *WindowClosedError {
	msgFresh := within(w.MessageAt, MessageWindow, now)
	enterFresh := within(w.EnterAt, EnterWindow, now)
	msgClosed := (msgFresh && w.MessageSends >= MessageQuota) || (!msgFresh && w.knownFor(MessageWindow, now))
	enterClosed := (enterFresh && w.EnterSends >= EnterQuota) || (!enterFresh && w.knownFor(EnterWindow, now))
	if !msgClosed || !enterClosed {
		return nil
	}
	if msgFresh || enterFresh {
		var used []string
		if msgFresh {
			used = append(used, fmt.Sprintf("%d messages already sent since the user's last message at %s", w.MessageSends, stamp(w.MessageAt)))
		}
		if enterFresh {
			used = append(used, fmt.Sprintf("%d messages already sent since the user entered the session at %s", w.EnterSends, stamp(w.EnterAt)))
		}
		return &WindowClosedError{OpenID: openid, Errcode: wechat.CodeOutOfResponses, Reason: fmt.Sprintf(
			"no reply left for openid %s: %s; WeChat would refuse with %d", openid, strings.Join(used, ", and "), wechat.CodeOutOfResponses)}
	}
	var why string
	if w.MessageAt.IsZero() {
		why = fmt.Sprintf("it has sent this mini program no message since %s, when the relay started storing its pushes, more than 48 h ago", stamp(w.Since))
	} else {
		why = fmt.Sprintf("its last message to this mini program was at %s, more than 48 h ago", stamp(w.MessageAt))
	}
	return &WindowClosedError{OpenID: openid, Errcode: wechat.CodeOutOfWindow, Reason: fmt.Sprintf(
		"no reply window for openid %s: %s, and it has not entered the session in the last minute; WeChat would refuse with %d", openid, why, wechat.CodeOutOfWindow)}
}

// within reports whether a trigger at t still holds a window of length d at now.
func within(t time.Time, d time.Duration, now time.Time) bool {
	return !t.IsZero() && t.After(now.Add(-(d + WindowGrace)))
}

// knownFor reports whether the relay has stored the tenant's pushes for the
// whole of a window of length d ending at now, so that a trigger in it
// would be known.
func (w Window) knownFor(d time.Duration, now time.Time) bool {
	return !w.Since.IsZero() && !w.Since.After(now.Add(-(d + WindowGrace)))
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// WindowOptions turn on the reply-window check of Service.Send.
type WindowOptions struct {
	Store WindowStore
	// Tenants tells whether a tenant turned the check off
	// (IgnoreReplyWindow); a tenant.Cache is fine.
	Tenants tenant.Getter
	// Clock is nil for the real one.
	Clock clockwork.Clock
	// Log receives store failures, after which sends go ahead unchecked.
	// Nil discards.
	Log *slog.Logger
}

// WindowRetention is how old a window's last trigger is when the hourly
// job prunes it. Any window older than MessageWindow decides nothing a
// missing one would not (see Refusal); a week keeps the time of a user's
// last message for refusals to name.
const WindowRetention = 7 * 24 * time.Hour

type windowCheck struct {
	WindowOptions
}

// WithReplyWindows turns on the reply-window check of Send (not of
// SetTyping or UploadImage) and returns s. Call it before s is used.
func (s *Service) WithReplyWindows(o WindowOptions) *Service {
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s.windows = &windowCheck{WindowOptions: o}
	return s
}

// reserve takes a slot for a send to openid, or returns the
// *WindowClosedError of a send WeChat would certainly refuse. The release
// function gives the slot back; it is a no-op when nothing was reserved
// (no check, or a window the relay cannot know).
func (c *windowCheck) reserve(ctx context.Context, tid tenant.ID, openid string) (release func(), err error) {
	noop := func() {}
	if c == nil {
		return noop, nil
	}
	t, err := c.Tenants.Get(ctx, tid)
	if err != nil {
		return nil, err
	}
	if t.IgnoreReplyWindow {
		return noop, nil
	}
	now := c.Clock.Now()
	// Twice: a trigger stored between a failed reservation and the read
	// shows an open window, which the second round reserves in.
	for range 2 {
		slot, ok, err := c.Store.ReserveReplySlot(ctx, tid, openid, now.Add(-(MessageWindow + WindowGrace)), now.Add(-(EnterWindow + WindowGrace)))
		if err != nil {
			return c.unchecked(ctx, tid, err)
		}
		if ok {
			return func() {
				// The caller may have gone; the slot must come back anyway.
				ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				defer cancel()
				if err := c.Store.ReleaseReplySlot(ctx, tid, slot); err != nil {
					c.Log.ErrorContext(ctx, "give back a reply slot", "tenant", tid, "err", err)
				}
			}, nil
		}
		w, err := c.Store.ReplyWindow(ctx, tid, openid)
		if err != nil {
			return c.unchecked(ctx, tid, err)
		}
		if refusal := w.Refusal(openid, now); refusal != nil {
			return nil, refusal
		}
		if !(within(w.MessageAt, MessageWindow, now) && w.MessageSends < MessageQuota) &&
			!(within(w.EnterAt, EnterWindow, now) && w.EnterSends < EnterQuota) {
			break // unknown to the relay: send, uncounted
		}
	}
	return noop, nil
}

// unchecked lets a send go ahead when the store failed: the check only
// spares WeChat calls, and is no reason to stop sends.
func (c *windowCheck) unchecked(ctx context.Context, tid tenant.ID, err error) (func(), error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	c.Log.ErrorContext(ctx, "reply window check failed; sending unchecked", "tenant", tid, "err", err)
	return func() {}, nil
}
