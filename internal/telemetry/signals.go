package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/finplat/payment-batch-gateway/internal/concur"
)

// WatchConcurSignals exports, read from signals (concur.Client.Signals) at each scrape:
//
//   - gateway_concur_refresh_token_expiry_timestamp_seconds: when the grant's refresh token
//     expires (absent while unknown). The keep-alive renews it well before; alert when it
//     comes within CONCUR_REFRESH_KEEPALIVE (deploy/prometheus/alerts.yaml).
//   - gateway_concur_api_sunset_timestamp_seconds{operation}: the date of the earliest Sunset
//     header Concur sent (absent when none, or none for a day).
//   - gateway_concur_api_warning{operation}: 1 while Concur sends x-api-warn headers.
//
// Call it once.
func (m *Metrics) WatchConcurSignals(signals func() concur.Signals) {
	m.reg.MustRegister(&signalCollector{
		signals: signals,
		expiry: prometheus.NewDesc(prometheus.BuildFQName(namespace, "concur", "refresh_token_expiry_timestamp_seconds"),
			"When the refresh token of the gateway's Concur grant expires (Unix seconds); absent while unknown.", nil, nil),
		sunset: prometheus.NewDesc(prometheus.BuildFQName(namespace, "concur", "api_sunset_timestamp_seconds"),
			"The earliest date Concur announced, in a Sunset header, for an endpoint the gateway calls (Unix seconds), "+
				"by the operation whose answer carried it.", []string{"operation"}, nil),
		warn: prometheus.NewDesc(prometheus.BuildFQName(namespace, "concur", "api_warning"),
			"1 while Concur's answers carry an x-api-warn header (a deprecation notice; the text is in the log and /readyz), "+
				"by the operation whose answer carried it.", []string{"operation"}, nil),
	})
}

type signalCollector struct {
	signals              func() concur.Signals
	expiry, sunset, warn *prometheus.Desc
}

func (c *signalCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.expiry
	ch <- c.sunset
	ch <- c.warn
}

func (c *signalCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.signals()
	if !s.RefreshExpiry.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, float64(s.RefreshExpiry.Unix()))
	}
	if !s.Sunset.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.sunset, prometheus.GaugeValue, float64(s.Sunset.Unix()), s.SunsetOperation)
	}
	if s.APIWarn != "" {
		ch <- prometheus.MustNewConstMetric(c.warn, prometheus.GaugeValue, 1, s.APIWarnOp)
	}
}
