// Package health tells whether the relay serves a tenant well and, if
// not, why: the operator's question for a relay of dozens of
// mini-programs. A tenant's health is a state (OK, DEGRADED, FAILING) and
// the reasons in force, each with when it began.
//
// Health is computed from what the store holds (the webhook's latest
// attempts, the backlog, the latest push, the recent sends) and from the
// token keeper's status, so every replica computes the same health.
// Evaluate is the rule book, a pure function of those facts; a Checker
// gathers the facts, keeps every tenant's latest health for listings and
// for Prometheus, and reports transitions.
package health

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wxrelay/wxrelay/relay/rejection"
	"github.com/wxrelay/wxrelay/relay/wechat"
	"github.com/wxrelay/wxrelay/tenant"
)

// State is a tenant's health at a glance.
type State int

const (
	StateUnknown State = iota // not computed yet
	StateOK
	StateDegraded // served, but something needs a look soon
	StateFailing  // pushes do not reach the tenant, or sends cannot be made
)

func (s State) String() string {
	return [...]string{"UNKNOWN", "OK", "DEGRADED", "FAILING"}[s]
}

// Kind names a reason. The names are stable: alert rules match them (the
// gauges' reason label).
type Kind string

const (
	WebhookFailing      Kind = "WEBHOOK_FAILING"
	DeliveryBacklog     Kind = "DELIVERY_BACKLOG"
	TokenError          Kind = "TOKEN_ERROR"
	NoPushes            Kind = "NO_PUSHES"
	ReplyWindowRefusals Kind = "REPLY_WINDOW_REFUSALS"
	PushRejected        Kind = "PUSH_REJECTED"

	// A component's tenant (onboarded by authorization, protocol §9).
	AuthorizationPending Kind = "AUTHORIZATION_PENDING"
	AuthorizationRevoked Kind = "AUTHORIZATION_REVOKED"
	RefreshTokenLost     Kind = "REFRESH_TOKEN_LOST"
	PermissionMissing    Kind = "PERMISSION_SET_MISSING"
)

// Kinds are every reason, in the order they are listed.
var Kinds = []Kind{WebhookFailing, DeliveryBacklog, TokenError, NoPushes, ReplyWindowRefusals, PushRejected,
	AuthorizationPending, AuthorizationRevoked, RefreshTokenLost, PermissionMissing}

// The rule book's thresholds.
const (
	// FailingAfter consecutive failed attempts make WebhookFailing, and
	// the tenant FAILING: the delivery breaker opens at about as many.
	FailingAfter = 3
	// BacklogAfter is how long the oldest pending event may wait before
	// DeliveryBacklog (DEGRADED); after BacklogFailingAfter it is FAILING.
	BacklogAfter        = 5 * time.Minute
	BacklogFailingAfter = time.Hour
	// RefusalWindow is the span over which reply-window refusals are
	// counted; at least MinRefusals of them, and RefusalShare of the
	// tenant's sends in it, make ReplyWindowRefusals.
	RefusalWindow = 15 * time.Minute
	MinRefusals   = 5
	RefusalShare  = 0.1
)

// Reason is one condition in force.
type Reason struct {
	Kind     Kind
	Severity State // StateDegraded or StateFailing
	Since    time.Time
	Message  string

	// Details, by kind.
	ConsecutiveFailures int
	LastHTTPStatus      int
	LastErrorClass      string
	Pending             int
	OldestPendingAge    time.Duration
	LastErrcode         int
	LastPush            time.Time
	Refusals, Sends     int
	// PushRejected: the pushes refused in the runs in force, and the
	// latest refusal's cause and time.
	Rejected          int64
	LastRejection     rejection.Cause
	LastRejectionTime time.Time
}

// Health is a tenant's health, or a component's, at ComputeTime.
type Health struct {
	Tenant      tenant.ID          // a tenant's health
	Component   tenant.ComponentID // a component's
	State       State
	Reasons     []Reason
	ComputeTime time.Time
	// Facts (a tenant's) or ComponentFacts are what it was computed
	// from, for the gauges.
	Facts          Facts
	ComponentFacts ComponentFacts
}

// Has reports whether a reason of kind k is in force.
func (h Health) Has(k Kind) bool {
	return slices.ContainsFunc(h.Reasons, func(r Reason) bool { return r.Kind == k })
}

// Facts are what health is computed from.
type Facts struct {
	// The webhook's latest attempts: how many failed in a row, the first
	// of that run's time, and the newest one's answer.
	ConsecutiveFailures int
	FailingSince        time.Time
	LastHTTPStatus      int
	LastErrorClass      string
	LastError           string

	// The backlog.
	Pending       int
	OldestPending time.Time // zero when nothing is pending

	// The newest push stored; zero if none is (never, or pruned).
	LastPush time.Time

	// Sends over the last RefusalWindow, and how many of them were
	// refused for the reply window (45015, 45047).
	Sends, Refusals int

	// The runs of refused pushes in force (relay/rejection), in the
	// order of rejection.Causes.
	Rejections []rejection.Count

	// The token keeper's view: consecutive failed fetches, and the last
	// one's errcode, error and time.
	TokenFailures int
	TokenErrcode  int
	TokenError    string
	TokenErrorAt  time.Time

	// A component's tenant: its authorization as the store holds it
	// (State zero while the mini program has not authorized).
	Authorization AuthorizationFacts
}

// AuthorizationFacts are a component tenant's authorization.
type AuthorizationFacts struct {
	State         tenant.AuthorizationState
	FuncInfo      []int
	AuthorizeTime time.Time
	RevokeTime    time.Time
}

// codeRefreshTokenInvalid is WeChat's answer to a refresh token it no
// longer takes (61023): the keeper's status says so once recovering it
// from the component's authorizer list failed too.
const codeRefreshTokenInvalid = 61023

// Evaluate applies the rule book to t's facts at now.
func Evaluate(t *tenant.Tenant, f Facts, now time.Time) Health {
	h := Health{Tenant: t.ID, State: StateOK, ComputeTime: now, Facts: f}
	add := func(r Reason) {
		h.Reasons = append(h.Reasons, r)
		h.State = max(h.State, r.Severity)
	}
	if f.ConsecutiveFailures >= FailingAfter {
		add(Reason{
			Kind: WebhookFailing, Severity: StateFailing, Since: f.FailingSince,
			ConsecutiveFailures: f.ConsecutiveFailures, LastHTTPStatus: f.LastHTTPStatus, LastErrorClass: f.LastErrorClass,
			Message: fmt.Sprintf("the webhook failed its last %d deliveries; the latest: %s", f.ConsecutiveFailures, attemptText(f)),
		})
	}
	if !f.OldestPending.IsZero() && now.Sub(f.OldestPending) > BacklogAfter {
		age := now.Sub(f.OldestPending)
		sev := StateDegraded
		if age > BacklogFailingAfter {
			sev = StateFailing
		}
		add(Reason{
			Kind: DeliveryBacklog, Severity: sev, Since: f.OldestPending.Add(BacklogAfter),
			Pending: f.Pending, OldestPendingAge: age,
			Message: fmt.Sprintf("%d events wait for delivery, the oldest for %s", f.Pending, age.Round(time.Second)),
		})
	}
	authorized := true
	if t.ComponentID != "" {
		authorized = evaluateAuthorization(t, f, add)
	}
	switch {
	case f.TokenFailures > 0 && f.TokenErrcode == codeRefreshTokenInvalid:
		add(Reason{Kind: RefreshTokenLost, Severity: StateFailing, Since: f.TokenErrorAt, LastErrcode: f.TokenErrcode,
			Message: "WeChat no longer takes the authorizer refresh token (61023), and the component's authorizer list has no other: " +
				"the merchant must authorize again; send them a new consent link (POST /v1/tenants/" + string(t.ID) + ":authorizationUrl)"})
	case f.TokenFailures > 0 && authorized:
		// An authorization not granted, or revoked, has its own reason
		// above, which says what to do; the fetch it refuses adds nothing.
		msg := fmt.Sprintf("WeChat refused the access token fetch %s: %s", timesInARow(f.TokenFailures), f.TokenError)
		if f.TokenErrcode == 0 {
			// No errcode: WeChat did not refuse; it was not reached, or
			// did not answer as WeChat does.
			msg = fmt.Sprintf("the access token could not be fetched %s, and WeChat gave no answer: %s (check that the relay reaches WeChat: WXRELAY_WECHAT_API, DNS, the egress)",
				timesInARow(f.TokenFailures), f.TokenError)
		}
		switch f.TokenErrcode {
		case 40125, 40001:
			msg += " (check the tenant's app_secret)"
		case 40164:
			msg += " (add the relay's egress IP to the mini program's IP whitelist)"
		}
		add(Reason{Kind: TokenError, Severity: StateFailing, Since: f.TokenErrorAt, LastErrcode: f.TokenErrcode, Message: msg})
	}
	if t.PushSilenceAlert > 0 {
		last := f.LastPush
		if last.IsZero() || last.Before(t.CreateTime) {
			last = t.CreateTime // silence is counted from onboarding at the earliest
		}
		if now.Sub(last) > t.PushSilenceAlert {
			what := "since the tenant was onboarded"
			if !f.LastPush.IsZero() {
				what = "since " + f.LastPush.UTC().Format(time.RFC3339)
			}
			add(Reason{
				Kind: NoPushes, Severity: StateDegraded, Since: last.Add(t.PushSilenceAlert), LastPush: f.LastPush,
				Message: fmt.Sprintf("no push %s, longer than the tenant's push_silence_alert of %s: check the push URL in the mini-program console", what, t.PushSilenceAlert),
			})
		}
	}
	if f.Refusals >= MinRefusals && float64(f.Refusals) >= RefusalShare*float64(f.Sends) {
		add(Reason{
			Kind: ReplyWindowRefusals, Severity: StateDegraded, Since: now.Add(-RefusalWindow),
			Refusals: f.Refusals, Sends: f.Sends,
			Message: fmt.Sprintf("%d of %d sends in the last %s were refused for the users' reply windows (45015/45047)", f.Refusals, f.Sends, RefusalWindow),
		})
	}
	if r, ok := rejected(f.Rejections, now); ok {
		add(r)
	}
	return h
}

// rejected is the PushRejected reason of runs, if any is in force at now.
// It is DEGRADED, not FAILING: anyone who knows a push URL can have a
// push refused, so a refusal alone does not say that WeChat's are.
func rejected(runs []rejection.Count, now time.Time) (Reason, bool) {
	r := Reason{Kind: PushRejected, Severity: StateDegraded}
	var causes []string
	for _, c := range runs {
		if !c.InForce(now) {
			continue
		}
		if r.Since.IsZero() || c.First.Before(r.Since) {
			r.Since = c.First
		}
		if c.Last.After(r.LastRejectionTime) {
			r.LastRejection, r.LastRejectionTime = c.Cause, c.Last
		}
		r.Rejected += c.N
		causes = append(causes, fmt.Sprintf("%d %s", c.N, c.Cause))
	}
	if r.Rejected == 0 {
		return r, false
	}
	r.Message = fmt.Sprintf("%s refused since %s (%s); the latest at %s: %s",
		pushes(r.Rejected), r.Since.UTC().Format(time.RFC3339), strings.Join(causes, ", "),
		r.LastRejectionTime.UTC().Format(time.RFC3339), r.LastRejection.Hint())
	return r, true
}

func pushes(n int64) string {
	if n == 1 {
		return "1 push was"
	}
	return fmt.Sprintf("%d pushes were", n)
}

// evaluateAuthorization adds the reasons of a component tenant's
// authorization, and reports whether it is granted.
func evaluateAuthorization(t *tenant.Tenant, f Facts, add func(Reason)) bool {
	a := f.Authorization
	link := "POST /v1/tenants/" + string(t.ID) + ":authorizationUrl"
	switch a.State {
	case tenant.AuthorizationAuthorized:
		if !slices.Contains(a.FuncInfo, wechat.FuncCustomerService) {
			add(Reason{Kind: PermissionMissing, Severity: StateFailing, Since: a.AuthorizeTime,
				Message: fmt.Sprintf("the mini program authorized the component without the customer-service permission set (%d; granted: %v): "+
					"WeChat refuses its sends (48001, 61007) and pushes its users' messages elsewhere; ask the merchant to authorize again with it (%s)",
					wechat.FuncCustomerService, a.FuncInfo, link)})
		}
		return true
	case tenant.AuthorizationRevoked:
		add(Reason{Kind: AuthorizationRevoked, Severity: StateFailing, Since: a.RevokeTime,
			Message: "the mini program revoked its authorization of the component: its sends are refused and no push comes; " +
				"the merchant can authorize again from a new consent link (" + link + ")"})
	default:
		add(Reason{Kind: AuthorizationPending, Severity: StateDegraded, Since: t.CreateTime,
			Message: "waiting for the merchant to authorize the component on WeChat's consent page: send them the link from " + link})
	}
	return false
}

// timesInARow says n, a count of consecutive failures: once, 3 times in a
// row.
func timesInARow(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times in a row", n)
}

func attemptText(f Facts) string {
	switch {
	case f.LastHTTPStatus != 0:
		return fmt.Sprintf("HTTP %d", f.LastHTTPStatus)
	case f.LastError != "":
		return fmt.Sprintf("%s (%s)", f.LastErrorClass, f.LastError)
	default:
		return f.LastErrorClass
	}
}
