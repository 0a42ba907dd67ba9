package delivery

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxrelay/wxrelay/relay"
)

// Metrics count delivery attempts and watch the backlog.
type Metrics struct {
	attempts      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	queueDepth    prometheus.Gauge
	oldestPending prometheus.Gauge
}

// NewMetrics registers the delivery metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxrelay_delivery_attempts_total",
			Help: "Webhook delivery attempts by outcome (delivered, retry, failed) and error class.",
		}, []string{"outcome", "error_class"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wxrelay_delivery_attempt_seconds",
			Help:    "Duration of webhook delivery attempts, by outcome.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 15},
		}, []string{"outcome"}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wxrelay_delivery_queue_depth",
			Help: "Events waiting for delivery (pending), as of the last check.",
		}),
		oldestPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wxrelay_delivery_oldest_pending_seconds",
			Help: "Age of the oldest event waiting for delivery; 0 when none waits.",
		}),
	}
	reg.MustRegister(m.attempts, m.latency, m.queueDepth, m.oldestPending)
	return m
}

func (m *Metrics) attempted(o Outcome) {
	if m == nil {
		return
	}
	outcome := map[relay.State]string{relay.StateDelivered: "delivered", relay.StatePending: "retry", relay.StateFailed: "failed"}[o.State]
	m.attempts.WithLabelValues(outcome, o.Attempt.ErrorClass).Inc()
	m.latency.WithLabelValues(outcome).Observe(o.Attempt.Latency.Seconds())
}

// CollectStats reads the backlog from the store into the gauges; run it
// every few seconds (a scheduled job does).
func (m *Metrics) CollectStats(ctx context.Context, s Store, now time.Time) error {
	st, err := s.Stats(ctx)
	if err != nil {
		return err
	}
	m.queueDepth.Set(float64(st.Pending))
	if st.OldestPending.IsZero() {
		m.oldestPending.Set(0)
	} else {
		m.oldestPending.Set(now.Sub(st.OldestPending).Seconds())
	}
	return nil
}
