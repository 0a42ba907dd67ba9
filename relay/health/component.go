package health

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxrelay/wxrelay/relay/token"
	"github.com/wxrelay/wxrelay/tenant"
)

// A component's reasons (protocol §9): its tenants' tokens all come
// through its own token, which needs a valid component_verify_ticket.
const (
	ComponentTicketStale   Kind = "COMPONENT_TICKET_STALE"
	ComponentTicketMissing Kind = "COMPONENT_TICKET_MISSING"
	ComponentTokenError    Kind = "COMPONENT_TOKEN_ERROR"
)

// ComponentKinds are a component's reasons, in the order they are listed.
var ComponentKinds = []Kind{ComponentTicketStale, ComponentTicketMissing, ComponentTokenError}

const (
	// TicketStaleAfter: WeChat pushes a ticket every 10 minutes, and
	// pauses of 30 to 60 minutes happen; past this the component is
	// DEGRADED, as the pause may be the push URL's fault.
	TicketStaleAfter = 30 * time.Minute
	// TicketValidFor is a ticket's life: past it with no newer one, no
	// component token can be fetched, and the component is FAILING.
	TicketValidFor = 12 * time.Hour
)

// ComponentFacts are what a component's health is computed from.
type ComponentFacts struct {
	LastTicket time.Time // the last good ticket's arrival; zero if none came

	// The component token keeper's view, as for a tenant's token.
	TokenFailures int
	TokenErrcode  int
	TokenError    string
	TokenErrorAt  time.Time
}

// EvaluateComponent applies the rule book to component c's facts at now.
func EvaluateComponent(c *tenant.Component, f ComponentFacts, now time.Time) Health {
	h := Health{Component: c.ID, State: StateOK, ComputeTime: now, ComponentFacts: f}
	add := func(r Reason) {
		h.Reasons = append(h.Reasons, r)
		h.State = max(h.State, r.Severity)
	}
	const where = "check the authorization-event URL (auth_event_url) on the open platform, and that it is this relay's"
	last, missing := f.LastTicket, false
	switch {
	case last.IsZero() && now.Sub(c.CreateTime) <= TicketStaleAfter:
		add(Reason{Kind: ComponentTicketStale, Severity: StateDegraded, Since: c.CreateTime,
			Message: "no component_verify_ticket yet: WeChat pushes one every 10 minutes once the authorization-event URL is saved; " + where})
	case last.IsZero():
		missing = true
		add(Reason{Kind: ComponentTicketMissing, Severity: StateFailing, Since: c.CreateTime.Add(TicketStaleAfter),
			Message: "no component_verify_ticket has ever come, so no component token can be fetched and no tenant of the component can send: " + where})
	case now.Sub(last) > TicketValidFor:
		missing = true
		add(Reason{Kind: ComponentTicketMissing, Severity: StateFailing, Since: last.Add(TicketValidFor), LastPush: last,
			Message: fmt.Sprintf("the last component_verify_ticket came %s ago and has expired, so no component token can be fetched: %s",
				now.Sub(last).Round(time.Minute), where)})
	case now.Sub(last) > TicketStaleAfter:
		add(Reason{Kind: ComponentTicketStale, Severity: StateDegraded, Since: last.Add(TicketStaleAfter), LastPush: last,
			Message: fmt.Sprintf("no component_verify_ticket for %s (WeChat pushes one every 10 minutes; pauses of an hour happen); the last one is valid until %s: %s",
				now.Sub(last).Round(time.Minute), last.Add(TicketValidFor).UTC().Format(time.RFC3339), where)})
	}
	if f.TokenFailures > 0 && !missing { // with no ticket, the fetch's failure says nothing more
		msg := fmt.Sprintf("WeChat refused the component token fetch %d times in a row: %s", f.TokenFailures, f.TokenError)
		switch f.TokenErrcode {
		case 61004:
			msg += " (add the relay's egress IP to the component's IP whitelist on the open platform)"
		case 61005, 61006:
			msg += " (the ticket was refused; the next one WeChat pushes replaces it)"
		case 45009:
			msg += " (the component's daily quota of token fetches is spent)"
		}
		add(Reason{Kind: ComponentTokenError, Severity: StateFailing, Since: f.TokenErrorAt, LastErrcode: f.TokenErrcode, Message: msg})
	}
	return h
}

// ComponentLister pages through components; *tenant.ComponentService is one.
type ComponentLister interface {
	List(ctx context.Context, pageSize int, pageToken string) ([]*tenant.Component, string, error)
}

// ComponentTokenStatus reports a component token's status; the
// components' *token.KeeperOf is one.
type ComponentTokenStatus interface {
	Status(ctx context.Context, id tenant.ComponentID) (token.Status, error)
}

// ComponentChecker computes components' health and keeps the latest of
// each, for the API's listings and for Prometheus (it is a
// prometheus.Collector). Components are few (one an agency), so every
// one has its series.
type ComponentChecker struct {
	tokens ComponentTokenStatus
	now    func() time.Time

	book[tenant.ComponentID]
}

// NewComponentChecker returns a ComponentChecker; now may be nil.
func NewComponentChecker(tokens ComponentTokenStatus, now func() time.Time) *ComponentChecker {
	if now == nil {
		now = time.Now
	}
	return &ComponentChecker{tokens: tokens, now: now}
}

// Check computes comp's health now and keeps it as the latest.
func (c *ComponentChecker) Check(ctx context.Context, comp *tenant.Component) (Health, error) {
	now := c.now().UTC()
	f := ComponentFacts{LastTicket: comp.Ticket.ReceiveTime}
	st, err := c.tokens.Status(ctx, comp.ID)
	if err != nil && !errors.Is(err, tenant.ErrComponentNotFound) {
		return Health{}, fmt.Errorf("health of component %s: token status: %w", comp.ID, err)
	}
	if st.Failures > 0 {
		f.TokenFailures, f.TokenErrcode, f.TokenError, f.TokenErrorAt = st.Failures, st.LastErrcode, st.LastError, st.LastErrorAt
	}
	h := EvaluateComponent(comp, f, now)
	c.book.keep(comp.ID, h)
	return h, nil
}

// CheckAll computes every component's health: the scheduled job's body,
// beside the tenants'. Components gone since are forgotten.
func (c *ComponentChecker) CheckAll(ctx context.Context, comps ComponentLister) error {
	seen := map[tenant.ComponentID]bool{}
	var first error
	for page := ""; ; {
		cs, next, err := comps.List(ctx, 500, page)
		if err != nil {
			return fmt.Errorf("health: list components: %w", err)
		}
		for _, comp := range cs {
			seen[comp.ID] = true
			if _, err := c.Check(ctx, comp); err != nil && first == nil {
				first = err
			}
		}
		if next == "" {
			break
		}
		page = next
	}
	c.retain(seen)
	return first
}

var (
	descComponentState = prometheus.NewDesc("wxrelay_component_health_state",
		"A component's health: 0 OK, 1 DEGRADED, 2 FAILING.", []string{"component"}, nil)
	descComponentReason = prometheus.NewDesc("wxrelay_component_health_reason",
		"1 while the health reason is in force for the component, else 0.", []string{"component", "reason"}, nil)
	descTicketAge = prometheus.NewDesc("wxrelay_component_ticket_age_seconds",
		"Age of the component's last good component_verify_ticket (WeChat pushes one every 10 minutes; it is valid 12 hours); -1 when none came.", []string{"component"}, nil)
	descComponentTokenErr = prometheus.NewDesc("wxrelay_component_token_errcode",
		"WeChat's errcode of the component's last failed token fetch while fetches fail (61004 IP not whitelisted, 61005/61006 ticket, 45009 quota); 0 when they work.", []string{"component"}, nil)
)

// Describe implements prometheus.Collector.
func (c *ComponentChecker) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descComponentState, descComponentReason, descTicketAge, descComponentTokenErr} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *ComponentChecker) Collect(ch chan<- prometheus.Metric) {
	var all []Health
	c.each(func(h Health) { all = append(all, h) })
	for _, h := range all {
		id := string(h.Component)
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{id}, labels...)...)
		}
		gauge(descComponentState, float64(h.State-StateOK))
		for _, k := range ComponentKinds {
			in := 0.0
			if h.Has(k) {
				in = 1
			}
			gauge(descComponentReason, in, string(k))
		}
		age := -1.0
		if f := h.ComponentFacts; !f.LastTicket.IsZero() {
			age = h.ComputeTime.Sub(f.LastTicket).Seconds()
		}
		gauge(descTicketAge, age)
		errcode := 0
		if h.ComponentFacts.TokenFailures > 0 {
			errcode = h.ComponentFacts.TokenErrcode
		}
		gauge(descComponentTokenErr, float64(errcode))
	}
}
