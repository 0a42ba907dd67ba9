package wxapi

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	calls     *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	refreshes prometheus.Counter
}

// knownErrcodes are the errcode label's values besides "other": the codes
// an operator alerts on. WeChat has hundreds more; each becomes "other",
// so that the label's values stay few whatever WeChat answers.
var knownErrcodes = map[string]bool{}

func init() {
	for _, c := range []int{0, codeSystemError, codeInvalidCredential, codeInvalidGrantType, 40003, 40007, 40008, codeInvalidAppID,
		40014, codeInvalidURL, codeInvalidSecret, 40164, codeTokenMissing, codeAppIDMissing, codeSecretMissing, codeTokenExpired,
		codeEmptyPostData, codeTooLarge, 45002, 45009, codeMinuteQuota, 45015, 45047, codeDataFormat, codeUnauthorized} {
		knownErrcodes[strconv.Itoa(c)] = true
	}
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxrelay_wxapi_calls_total",
			Help: "Calls of the WeChat-compatible API by path class (token, send, typing, media, other, none) and the errcode answered (WeChat's or the relay's own; \"other\" for codes outside a fixed set, \"none\" for answers without one).",
		}, []string{"path_class", "errcode"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wxrelay_wxapi_call_duration_seconds",
			Help:    "Time to answer a call of the WeChat-compatible API, WeChat's part included, by path class.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"path_class"}),
		refreshes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wxrelay_wxapi_token_retries_total",
			Help: "Forwarded calls WeChat refused for their access token, which the relay sent again with a refreshed one.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.calls, m.duration, m.refreshes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("wxapi: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observe(c class, errcode string, took time.Duration) {
	label := string(c)
	if label == "" {
		label = "none"
	}
	switch {
	case errcode == "":
		errcode = "none"
	case !knownErrcodes[errcode]:
		errcode = "other"
	}
	m.calls.WithLabelValues(label, errcode).Inc()
	m.duration.WithLabelValues(label).Observe(took.Seconds())
}
