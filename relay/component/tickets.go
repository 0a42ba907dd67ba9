package component

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/wxrelay/wxrelay/tenant"
)

// Ticket pushes pause (30 to 60 minutes happen, protocol §9); a pause the
// relay can end itself, asking WeChat to push again
// (api_start_push_ticket), before the last ticket's 12 hours run out.
const (
	// ticketQuietAfter: WeChat pushes every 10 minutes, so two missed
	// pushes make a pause worth asking about.
	ticketQuietAfter = 20 * time.Minute
	// ticketAskEvery bounds how often one component is asked about:
	// the call has a daily quota, and a pause WeChat will not end is
	// the operator's to look at (the component's health says so).
	ticketAskEvery = time.Hour
)

// ComponentLister pages through components; *tenant.ComponentService is one.
type ComponentLister interface {
	List(ctx context.Context, pageSize int, pageToken string) ([]*tenant.Component, string, error)
}

// TicketStarter asks WeChat to push tickets again; *wechat.Client is one.
type TicketStarter interface {
	StartPushTicket(ctx context.Context, componentAppID, componentSecret string) error
}

// TicketRestarter asks WeChat to resume a component's ticket pushes when
// they have paused: the body of a scheduled job, on one replica at a
// time.
type TicketRestarter struct {
	components ComponentLister
	wx         TicketStarter
	log        *slog.Logger
	now        func() time.Time

	mu    sync.Mutex
	asked map[tenant.ComponentID]time.Time
}

// NewTicketRestarter returns a TicketRestarter; log and now may be nil.
func NewTicketRestarter(components ComponentLister, wx TicketStarter, log *slog.Logger, now func() time.Time) *TicketRestarter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &TicketRestarter{components: components, wx: wx, log: log, now: now, asked: map[tenant.ComponentID]time.Time{}}
}

// Run asks WeChat about every component whose last ticket (or, before
// the first, whose registration) is over 20 minutes old, at most once an
// hour each. A refusal is logged and left to the component's health
// (COMPONENT_TICKET_STALE, then COMPONENT_TICKET_MISSING).
func (r *TicketRestarter) Run(ctx context.Context) error {
	now := r.now()
	for page := ""; ; {
		cs, next, err := r.components.List(ctx, 500, page)
		if err != nil {
			return err
		}
		for _, c := range cs {
			r.maybeAsk(ctx, c, now)
		}
		if next == "" {
			return nil
		}
		page = next
	}
}

func (r *TicketRestarter) maybeAsk(ctx context.Context, c *tenant.Component, now time.Time) {
	last := c.Ticket.ReceiveTime
	if last.IsZero() {
		last = c.CreateTime
	}
	r.mu.Lock()
	asked := r.asked[c.ID]
	quiet := now.Sub(last) > ticketQuietAfter && now.Sub(asked) > ticketAskEvery
	if quiet {
		r.asked[c.ID] = now
	}
	r.mu.Unlock()
	if !quiet {
		return
	}
	log := r.log.With("component", c.ID, "component_appid", c.AppID, "last_ticket", c.Ticket.ReceiveTime)
	if err := r.wx.StartPushTicket(ctx, c.AppID, c.Secrets.Secret); err != nil {
		log.WarnContext(ctx, "no component_verify_ticket for a while, and WeChat refused to push again (api_start_push_ticket)", "err", err)
		return
	}
	log.WarnContext(ctx, "no component_verify_ticket for a while: asked WeChat to push again (api_start_push_ticket)")
}
