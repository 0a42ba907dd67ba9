// Package alert tells the operator's webhook (--alert-webhook) when a
// tenant's health changes: one event when a reason comes into force
// (tenant.health.raised) and one when it ends (tenant.health.cleared),
// signed with Standard Webhooks like deliveries to tenants.
//
// Transitions are measured against the reasons last alerted, which the
// store keeps, not against what one process saw before: a restart, a
// second replica or a replica taking the job over sends nothing twice. A
// transition and its queued alert are written in one transaction (an
// outbox), so a crash between them loses neither; delivery is retried
// with backoff and keeps the alert's id (webhook-id), so a receiver can
// drop the duplicate that a crash after sending and before recording can
// cause. All of it runs in a scheduled job, never on the push path.
package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/relay/delivery"
	"github.com/wxrelay/wxrelay/relay/health"
	"github.com/wxrelay/wxrelay/tenant"
)

// Event types.
const (
	TypeRaised  = "tenant.health.raised"
	TypeCleared = "tenant.health.cleared"
	// A component's reasons (health.ComponentKinds).
	TypeComponentRaised  = "component.health.raised"
	TypeComponentCleared = "component.health.cleared"
)

// Retry policy of an alert's delivery.
const (
	firstRetry = 30 * time.Second
	maxRetry   = time.Hour
	// GiveUpAfter is how long an alert is retried before it is abandoned
	// (and logged as such): past a day it is news no longer.
	GiveUpAfter = 24 * time.Hour
	// attemptTimeout bounds one POST.
	attemptTimeout = 10 * time.Second
	// batch is how many due alerts one run sends at most.
	batch = 100
)

// Transition is one reason of one tenant coming into force or ending.
type Transition struct {
	ID     string // the alert's id: its webhook-id
	Tenant tenant.ID
	Kind   health.Kind
	Raised bool
	Since  time.Time // when the reason came into force
	At     time.Time // when the transition was found
}

// Alert is one queued event for the operator's webhook.
type Alert struct {
	Seq      int64
	ID       string
	Tenant   tenant.ID
	Created  time.Time
	Body     []byte
	Attempts int
}

// Store keeps the reasons last alerted and the outbox of alerts;
// *store.AlertStore is one.
type Store interface {
	// Reconcile makes tid's alerted reasons those of current (kind →
	// since) and, in the same transaction, queues the alert that body
	// returns for each transition it makes, whose ID (NewID) it sets
	// first. A transition another writer
	// made first is not made (nor alerted) again. It returns how many
	// transitions it made.
	Reconcile(ctx context.Context, tid tenant.ID, current map[health.Kind]time.Time, now time.Time, body func(Transition) ([]byte, error)) (int, error)
	// AlertedTenants are the tenants that have reasons alerted.
	AlertedTenants(ctx context.Context) ([]tenant.ID, error)
	// DueAlerts are the undelivered alerts, oldest first, up to the
	// first not due at now: while the oldest waits for its retry, the
	// later ones wait too, so that the operator receives them in order.
	DueAlerts(ctx context.Context, now time.Time, limit int) ([]Alert, error)
	// AlertDelivered records a's delivery.
	AlertDelivered(ctx context.Context, seq int64, now time.Time) error
	// AlertFailed records a failed attempt: the alert is due again at
	// next, or abandoned when next is zero.
	AlertFailed(ctx context.Context, seq int64, next time.Time, lastErr string, now time.Time) error
}

// HealthSource gives a tenant's latest computed health; *health.Checker
// is one.
type HealthSource interface {
	Latest(tid tenant.ID) (health.Health, bool)
}

// ComponentHealthSource gives a component's latest computed health;
// *health.ComponentChecker is one.
type ComponentHealthSource interface {
	Latest(id tenant.ComponentID) (health.Health, bool)
}

// Options configure a Notifier.
type Options struct {
	// URL is the operator's webhook: http or https.
	URL string
	// Secret signs the alerts: whsec_ and standard base64, as a tenant's
	// webhook secret.
	Secret  string
	Store   Store
	Health  HealthSource
	Tenants health.Lister
	// Components and ComponentHealth add components' reasons; both nil:
	// tenants' only.
	Components      health.ComponentLister
	ComponentHealth ComponentHealthSource
	// HTTP posts the alerts; a client with attemptTimeout when nil.
	HTTP     *http.Client
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Notifier finds health transitions and delivers their alerts.
type Notifier struct {
	o      Options
	sent   *prometheus.CounterVec
	queued prometheus.Counter
}

// New checks o and returns a Notifier. Its errors name the setting at
// fault and never quote the secret.
func New(o Options) (*Notifier, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("the alert webhook must be an absolute http or https URL")
	}
	if o.Secret == "" {
		return nil, errors.New("the alert webhook needs a signing secret (whsec_ followed by standard base64 of 24 to 64 random bytes)")
	}
	if _, err := delivery.Sign([]string{o.Secret}, "probe", time.Unix(0, 0), nil); err != nil {
		return nil, fmt.Errorf("the alert webhook's signing secret: %w", err)
	}
	if o.Store == nil || o.Health == nil || o.Tenants == nil {
		return nil, errors.New("alert: Store, Health and Tenants are required")
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: attemptTimeout}
	}
	// Redirects are never followed, as for tenants' webhooks: a 307 would
	// have the signed alert POSTed again to wherever the answer points,
	// and counted delivered there. The operator sets the final address.
	client := *o.HTTP
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	o.HTTP = &client
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	n := &Notifier{
		o: o,
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxrelay_alerts_sent_total",
			Help: "Attempts to deliver health alerts to the operator's webhook, by result (delivered, retried, abandoned).",
		}, []string{"result"}),
		queued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wxrelay_alerts_queued_total",
			Help: "Health transitions found and queued as alerts for the operator's webhook.",
		}),
	}
	if o.Registry != nil {
		if err := o.Registry.Register(n.sent); err != nil {
			return nil, err
		}
		if err := o.Registry.Register(n.queued); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Run queues the transitions since the last run and delivers what is due;
// it is the scheduled job's body, on one replica at a time.
func (n *Notifier) Run(ctx context.Context) error {
	return errors.Join(n.Sync(ctx), n.Deliver(ctx))
}

// Sync compares every tenant's latest health with its reasons last
// alerted and queues an alert for each difference. A tenant whose health
// has not been computed yet is left for the next run; a deleted tenant's
// reasons are cleared (with tenant_deleted).
func (n *Notifier) Sync(ctx context.Context) error {
	now := n.o.Now().UTC()
	live := map[tenant.ID]bool{}
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	for page := ""; ; {
		ts, next, err := n.o.Tenants.List(ctx, 500, page)
		if err != nil {
			return fmt.Errorf("alerts: list tenants: %w", err)
		}
		for _, t := range ts {
			live[t.ID] = true
			h, ok := n.o.Health.Latest(t.ID)
			if !ok {
				continue
			}
			current := map[health.Kind]time.Time{}
			for _, r := range h.Reasons {
				current[r.Kind] = r.Since
			}
			keep(n.reconcile(ctx, t.ID, current, now, func(tr Transition) ([]byte, error) { return encode(tr, t, &h) }))
		}
		if next == "" {
			break
		}
		page = next
	}
	if n.o.Components != nil && n.o.ComponentHealth != nil {
		if err := n.syncComponents(ctx, now, live, keep); err != nil {
			return errors.Join(first, err)
		}
	}
	alerted, err := n.o.Store.AlertedTenants(ctx)
	if err != nil {
		return errors.Join(first, fmt.Errorf("alerts: alerted tenants: %w", err))
	}
	for _, tid := range alerted {
		if live[tid] {
			continue
		}
		if cid := tenant.ComponentID(tid); tenant.ValidComponentID(cid) {
			gone := &tenant.Component{ID: cid}
			keep(n.reconcile(ctx, tid, nil, now, func(tr Transition) ([]byte, error) { return encodeComponent(tr, gone, nil) }))
			continue
		}
		gone := &tenant.Tenant{ID: tid}
		keep(n.reconcile(ctx, tid, nil, now, func(tr Transition) ([]byte, error) { return encode(tr, gone, nil) }))
	}
	return first
}

// syncComponents is Sync for components' reasons. They are kept in the
// store beside tenants' under the component's id, which never equals a
// tenant's (cp_ and tn_), and marked live in live.
func (n *Notifier) syncComponents(ctx context.Context, now time.Time, live map[tenant.ID]bool, keep func(error)) error {
	for page := ""; ; {
		cs, next, err := n.o.Components.List(ctx, 500, page)
		if err != nil {
			return fmt.Errorf("alerts: list components: %w", err)
		}
		for _, c := range cs {
			live[tenant.ID(c.ID)] = true
			h, ok := n.o.ComponentHealth.Latest(c.ID)
			if !ok {
				continue
			}
			current := map[health.Kind]time.Time{}
			for _, r := range h.Reasons {
				current[r.Kind] = r.Since
			}
			keep(n.reconcile(ctx, tenant.ID(c.ID), current, now, func(tr Transition) ([]byte, error) { return encodeComponent(tr, c, &h) }))
		}
		if next == "" {
			return nil
		}
		page = next
	}
}

func (n *Notifier) reconcile(ctx context.Context, tid tenant.ID, current map[health.Kind]time.Time, now time.Time, body func(Transition) ([]byte, error)) error {
	made, err := n.o.Store.Reconcile(ctx, tid, current, now, body)
	if err != nil {
		return fmt.Errorf("alerts of tenant %s: %w", tid, err)
	}
	n.queued.Add(float64(made))
	return nil
}

// Deliver posts the due alerts, oldest first. The first failure ends the
// run: the webhook is likely down, and the next run tries again.
func (n *Notifier) Deliver(ctx context.Context) error {
	due, err := n.o.Store.DueAlerts(ctx, n.o.Now(), batch)
	if err != nil {
		return fmt.Errorf("alerts: due: %w", err)
	}
	for _, a := range due {
		sendErr := n.post(ctx, a)
		now := n.o.Now()
		if sendErr == nil {
			n.sent.WithLabelValues("delivered").Inc()
			if err := n.o.Store.AlertDelivered(ctx, a.Seq, now); err != nil {
				return fmt.Errorf("alerts: record delivery of %s: %w", a.ID, err)
			}
			continue
		}
		if ctx.Err() != nil {
			return nil // shutting down; the alert is due again
		}
		next := now.Add(Backoff(a.Attempts + 1))
		if next.Sub(a.Created) > GiveUpAfter {
			next = time.Time{}
			n.sent.WithLabelValues("abandoned").Inc()
			n.o.Logger.Error("health alert abandoned: the alert webhook failed for a day", "alert", a.ID, "tenant", a.Tenant, "attempts", a.Attempts+1, "err", sendErr)
		} else {
			n.sent.WithLabelValues("retried").Inc()
			n.o.Logger.Warn("health alert not delivered; retrying", "alert", a.ID, "tenant", a.Tenant, "attempts", a.Attempts+1, "next", next, "err", sendErr)
		}
		if err := n.o.Store.AlertFailed(ctx, a.Seq, next, sendErr.Error(), now); err != nil {
			return fmt.Errorf("alerts: record failure of %s: %w", a.ID, err)
		}
		return nil
	}
	return nil
}

// Backoff is the wait before an alert's attempt number attempt+1: 30 s,
// doubling, at most an hour.
func Backoff(attempts int) time.Duration {
	d := firstRetry
	for i := 1; i < attempts && d < maxRetry; i++ {
		d *= 2
	}
	return min(d, maxRetry)
}

func (n *Notifier) post(ctx context.Context, a Alert) error {
	ts := n.o.Now()
	sig, err := delivery.Sign([]string{n.o.Secret}, a.ID, ts, a.Body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.o.URL, bytes.NewReader(a.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", delivery.UserAgent)
	req.Header.Set("webhook-id", a.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := n.o.HTTP.Do(req)
	if err != nil {
		// The URL may hold a credential in its query: say only what failed.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("post: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 == 3 {
		return fmt.Errorf("the alert webhook answered %s: redirects are not followed; set --alert-webhook to the final address", resp.Status)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the alert webhook answered %s", resp.Status)
	}
	return nil
}

// payload is an alert's body.
type payload struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      data   `json:"data"`
}

type data struct {
	TenantID   string `json:"tenant_id"`
	TenantName string `json:"tenant_name,omitempty"`
	AppID      string `json:"appid,omitempty"`
	Reason     string `json:"reason"`
	Severity   string `json:"severity,omitempty"`
	Message    string `json:"message,omitempty"`
	Since      string `json:"since"`
	ClearedAt  string `json:"cleared_at,omitempty"`
	State      string `json:"state,omitempty"` // the tenant's state when the transition was found
	Deleted    bool   `json:"tenant_deleted,omitempty"`
}

// encode builds tr's body from the tenant and its health (nil for a
// deleted tenant).
func encode(tr Transition, t *tenant.Tenant, h *health.Health) ([]byte, error) {
	p := payload{ID: tr.ID, Type: TypeCleared, Timestamp: tr.At.UTC().Format(time.RFC3339), Data: data{
		TenantID: string(tr.Tenant), TenantName: t.DisplayName, AppID: t.AppID,
		Reason: string(tr.Kind), Since: tr.Since.UTC().Format(time.RFC3339),
	}}
	if tr.Raised {
		p.Type = TypeRaised
	} else {
		p.Data.ClearedAt = p.Timestamp
	}
	if h == nil {
		p.Data.Deleted = true
		p.Data.Message = string(tr.Kind) + " cleared: the tenant was deleted"
	} else {
		p.Data.State = h.State.String()
		for _, r := range h.Reasons {
			if r.Kind == tr.Kind {
				p.Data.Severity, p.Data.Message = r.Severity.String(), r.Message
			}
		}
		if !tr.Raised {
			p.Data.Message = fmt.Sprintf("%s cleared after %s", tr.Kind, tr.At.Sub(tr.Since).Round(time.Second))
		}
	}
	return json.Marshal(p)
}

// componentData is a component alert's data.
type componentData struct {
	ComponentID    string `json:"component_id"`
	ComponentName  string `json:"component_name,omitempty"`
	ComponentAppID string `json:"component_appid,omitempty"`
	Reason         string `json:"reason"`
	Severity       string `json:"severity,omitempty"`
	Message        string `json:"message,omitempty"`
	Since          string `json:"since"`
	ClearedAt      string `json:"cleared_at,omitempty"`
	State          string `json:"state,omitempty"`
	Deleted        bool   `json:"component_deleted,omitempty"`
}

// encodeComponent builds tr's body for component c and its health (nil
// for a deleted component).
func encodeComponent(tr Transition, c *tenant.Component, h *health.Health) ([]byte, error) {
	d := componentData{ComponentID: string(c.ID), ComponentName: c.DisplayName, ComponentAppID: c.AppID,
		Reason: string(tr.Kind), Since: tr.Since.UTC().Format(time.RFC3339)}
	typ, at := TypeComponentCleared, tr.At.UTC().Format(time.RFC3339)
	if tr.Raised {
		typ = TypeComponentRaised
	} else {
		d.ClearedAt = at
	}
	switch {
	case h == nil:
		d.Deleted = true
		d.Message = string(tr.Kind) + " cleared: the component was deleted"
	case tr.Raised:
		d.State = h.State.String()
		for _, r := range h.Reasons {
			if r.Kind == tr.Kind {
				d.Severity, d.Message = r.Severity.String(), r.Message
			}
		}
	default:
		d.State = h.State.String()
		d.Message = fmt.Sprintf("%s cleared after %s", tr.Kind, tr.At.Sub(tr.Since).Round(time.Second))
	}
	return json.Marshal(struct {
		ID        string        `json:"id"`
		Type      string        `json:"type"`
		Timestamp string        `json:"timestamp"`
		Data      componentData `json:"data"`
	}{tr.ID, typ, at, d})
}

// NewID returns an alert id: alrt_ and the 26 characters of an event id,
// which sort by time and differ between replicas.
func NewID(t time.Time) string {
	return "alrt_" + strings.TrimPrefix(string(relay.NewEventID(t)), "evt_")
}
