package ingress

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics count pushes by outcome and time their answers.
type Metrics struct {
	pushes  *prometheus.CounterVec
	latency prometheus.Histogram
}

// NewMetrics registers the push metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxrelay_pushes_total",
			Help: "Requests to push URLs, by outcome (stored, duplicate, verified, bad_signature, store_error, ...).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wxrelay_push_answer_seconds",
			Help:    "Time from receiving a push to answering WeChat, including the durable commit.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5},
		}),
	}
	reg.MustRegister(m.pushes, m.latency)
	return m
}

func (m *Metrics) observe(outcome string, took time.Duration) {
	if m == nil {
		return
	}
	m.pushes.WithLabelValues(outcome).Inc()
	m.latency.Observe(took.Seconds())
}
