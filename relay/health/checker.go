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

// FactStore reads the store's part of a tenant's facts; *store.HealthStore
// is one. HealthFactsOf reads a page of tenants' facts at once, the
// keeper's failures included, for CheckAll: five queries per tenant made
// a tick of 100,000 tenants take 12.7 s on SQLite, and on PostgreSQL each
// was a round trip.
type FactStore interface {
	HealthFacts(ctx context.Context, tid tenant.ID, now time.Time) (Facts, error)
	HealthFactsOf(ctx context.Context, tids []tenant.ID, now time.Time) (map[tenant.ID]Facts, error)
}

// TokenStatus reports a tenant's access token status; *token.Keeper is one.
type TokenStatus interface {
	Status(ctx context.Context, tid tenant.ID) (token.Status, error)
}

// Lister pages through tenants; *tenant.Service is one.
type Lister interface {
	List(ctx context.Context, pageSize int, pageToken string) ([]*tenant.Tenant, string, error)
}

// Checker computes tenants' health and keeps the latest of each, for the
// API's listings and for Prometheus (it is a prometheus.Collector).
type Checker struct {
	facts  FactStore
	tokens TokenStatus
	now    func() time.Time

	book[tenant.ID]
}

// NewChecker returns a Checker; now may be nil for time.Now.
func NewChecker(facts FactStore, tokens TokenStatus, now func() time.Time) *Checker {
	if now == nil {
		now = time.Now
	}
	return &Checker{facts: facts, tokens: tokens, now: now}
}

// Check computes t's health now and keeps it as the latest.
func (c *Checker) Check(ctx context.Context, t *tenant.Tenant) (Health, error) {
	now := c.now().UTC()
	f, err := c.facts.HealthFacts(ctx, t.ID, now)
	if err != nil {
		return Health{}, err
	}
	st, err := c.tokens.Status(ctx, t.ID)
	if err != nil && !errors.Is(err, tenant.ErrNotFound) {
		return Health{}, fmt.Errorf("health of tenant %s: token status: %w", t.ID, err)
	}
	if st.Failures > 0 {
		f.TokenFailures, f.TokenErrcode, f.TokenError, f.TokenErrorAt = st.Failures, st.LastErrcode, st.LastError, st.LastErrorAt
	}
	return c.keep(t, f, now), nil
}

// keep evaluates t's facts f at now and keeps the result as the latest.
func (c *Checker) keep(t *tenant.Tenant, f Facts, now time.Time) Health {
	h := Evaluate(t, f, now)
	c.book.keep(t.ID, h)
	return h
}

// CheckAll computes every tenant's health; it is the scheduled job's body.
// Tenants gone since the last run are forgotten. A tenant whose facts
// cannot be read keeps its previous health; the first such error is
// returned after the others are done.
func (c *Checker) CheckAll(ctx context.Context, tenants Lister) error {
	seen := map[tenant.ID]bool{}
	var first error
	for page := ""; ; {
		ts, next, err := tenants.List(ctx, 500, page)
		if err != nil {
			return fmt.Errorf("health: list tenants: %w", err)
		}
		for _, t := range ts {
			seen[t.ID] = true
		}
		if err := c.checkPage(ctx, ts); err != nil && first == nil {
			first = err
		}
		if next == "" {
			break
		}
		page = next
	}
	c.retain(seen)
	return first
}

// checkPage computes the health of a page of tenants from their facts,
// read together. If they cannot be, the tenants keep their previous health.
func (c *Checker) checkPage(ctx context.Context, ts []*tenant.Tenant) error {
	ids := make([]tenant.ID, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	now := c.now().UTC()
	facts, err := c.facts.HealthFactsOf(ctx, ids, now)
	if err != nil {
		return err
	}
	for _, t := range ts {
		c.keep(t, facts[t.ID], now)
	}
	return nil
}

func sameKinds(a, b Health) bool {
	if len(a.Reasons) != len(b.Reasons) {
		return false
	}
	for _, r := range a.Reasons {
		if !b.Has(r.Kind) {
			return false
		}
	}
	return true
}

// The per-tenant gauges. Each has the label tenant (the tenant id), and
// only tenants with something to show have them: a tenant that is OK with
// no backlog, no failing webhook, no token error and no refusals has no
// series at all. At 100,000 tenants, series for all of them would be 1.3
// million samples a scrape, most of them zeros, which is more than a
// Prometheus should be asked to ingest to learn that nothing is wrong; the
// alert rules only ever look for non-zero values, and
// wxrelay_tenants_by_health counts the quiet ones. A deleted tenant's
// series go with it.
var (
	descState = prometheus.NewDesc("wxrelay_tenant_health_state",
		"A tenant's health: 0 OK, 1 DEGRADED, 2 FAILING.", []string{"tenant"}, nil)
	descReason = prometheus.NewDesc("wxrelay_tenant_health_reason",
		"1 while the health reason is in force for the tenant, else 0.", []string{"tenant", "reason"}, nil)
	descFailures = prometheus.NewDesc("wxrelay_tenant_webhook_consecutive_failures",
		"The tenant's webhook's latest delivery attempts that failed in a row (up to 50).", []string{"tenant"}, nil)
	descPending = prometheus.NewDesc("wxrelay_tenant_delivery_pending",
		"The tenant's events waiting for delivery.", []string{"tenant"}, nil)
	descOldest = prometheus.NewDesc("wxrelay_tenant_delivery_oldest_pending_seconds",
		"Age of the tenant's oldest event waiting for delivery; 0 when none waits.", []string{"tenant"}, nil)
	descTokenErr = prometheus.NewDesc("wxrelay_tenant_token_errcode",
		"WeChat's errcode of the tenant's last failed access token fetch while fetches fail (40125 wrong AppSecret, 40164 IP not whitelisted); 0 when they work.", []string{"tenant"}, nil)
	descRefusals = prometheus.NewDesc("wxrelay_tenant_reply_window_refusals",
		"The tenant's sends refused for the users' reply windows over the last 15 minutes.", []string{"tenant"}, nil)
	descRejected = prometheus.NewDesc("wxrelay_tenant_push_rejections",
		"Pushes to the tenant refused, by cause, in the runs in force (a run ends 15 minutes after its latest refusal).", []string{"tenant", "cause"}, nil)
	descByHealth = prometheus.NewDesc("wxrelay_tenants_by_health",
		"Tenants by their latest health (OK, DEGRADED, FAILING).", []string{"state"}, nil)
)

// Describe implements prometheus.Collector.
func (c *Checker) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descReason, descFailures, descPending, descOldest, descTokenErr, descRefusals, descRejected, descByHealth} {
		ch <- d
	}
}

// Collect implements prometheus.Collector, from the latest health of each
// tenant. It copies what it reports under the lock and sends it after, so
// a slow scrape never holds up a health check.
func (c *Checker) Collect(ch chan<- prometheus.Metric) {
	byState := map[State]int{StateOK: 0, StateDegraded: 0, StateFailing: 0}
	var notable []Health
	c.each(func(h Health) {
		byState[h.State]++
		if h.notable() {
			notable = append(notable, h)
		}
	})

	for st, n := range byState {
		ch <- prometheus.MustNewConstMetric(descByHealth, prometheus.GaugeValue, float64(n), st.String())
	}
	for _, h := range notable {
		tid := string(h.Tenant)
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{tid}, labels...)...)
		}
		gauge(descState, float64(h.State-StateOK))
		for _, k := range Kinds {
			in := 0.0
			if h.Has(k) {
				in = 1
			}
			gauge(descReason, in, string(k))
		}
		f := h.Facts
		oldest := 0.0
		if !f.OldestPending.IsZero() {
			oldest = h.ComputeTime.Sub(f.OldestPending).Seconds()
		}
		gauge(descFailures, float64(f.ConsecutiveFailures))
		gauge(descPending, float64(f.Pending))
		gauge(descOldest, oldest)
		gauge(descTokenErr, float64(h.tokenErrcode()))
		gauge(descRefusals, float64(f.Refusals))
		for _, r := range f.Rejections {
			if r.InForce(h.ComputeTime) {
				gauge(descRejected, float64(r.N), string(r.Cause))
			}
		}
	}
}

// notable reports whether any of h's per-tenant gauges would be non-zero.
func (h Health) notable() bool {
	f := h.Facts
	return h.State != StateOK || f.ConsecutiveFailures > 0 || f.Pending > 0 || h.tokenErrcode() != 0 || f.Refusals > 0
}

// tokenErrcode is WeChat's errcode while token fetches fail, else 0.
func (h Health) tokenErrcode() int {
	if h.Facts.TokenFailures > 0 {
		return h.Facts.TokenErrcode
	}
	return 0
}
