// Package telemetry sets up the gateway's Prometheus metrics and OpenTelemetry tracing.
// The packages it observes (httpapi, concur, batch) declare small observer interfaces;
// Metrics implements them all, and cmd/gateway wires it in. Nothing here is global: the
// metrics live in a registry of their own, the tracer provider is passed where it is used.
// It imports, of ours, only the packages it observes the vocabulary of (internal/batch,
// internal/concur).
package telemetry

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every metric name.
const namespace = "gateway"

// Latency buckets, in seconds: from a cached answer to the longest Concur call (its
// time-out is 60 s by default, and a close may wait for a token and a batch list first).
var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// Breaker states, as concur names them, in the order of the state gauge's series.
var breakerStates = []string{"closed", "half-open", "open"}

// Metrics is the gateway's Prometheus metrics on a registry of its own. Its methods are
// safe for concurrent use. The labels are all bounded: route patterns (never a path),
// known methods, statuses, operations, error codes and outcomes; never a batch id or a
// caller.
type Metrics struct {
	reg *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	concurRequests     *prometheus.CounterVec
	concurDuration     *prometheus.HistogramVec
	tokenRefreshes     *prometheus.CounterVec
	breakerTransitions *prometheus.CounterVec

	lookups   *prometheus.CounterVec
	refreshes *prometheus.CounterVec
	closes    *prometheus.CounterVec

	downloadsInFlight prometheus.Gauge
	downloadsRefused  *prometheus.CounterVec
	downloads         *prometheus.CounterVec
}

// NewMetrics registers the gateway's metrics, and Go's and the process's, on a new
// registry. version is exported as gateway_build_info{version}.
func NewMetrics(version string) *Metrics {
	reg := prometheus.NewRegistry()
	f := factory{reg}
	m := &Metrics{
		reg: reg,
		httpRequests: f.counter("http_requests_total",
			"HTTP requests answered, by route pattern, method and status (499: the caller left first).",
			"route", "method", "status"),
		httpDuration: f.histogram("http_request_duration_seconds",
			"Time to answer an HTTP request, by route pattern, method and status.",
			"route", "method", "status"),
		concurRequests: f.counter("concur_requests_total",
			"Tries of calls to Concur, by operation (token, list, close, file), Concur's HTTP status "+
				"(none: no answer was read) and outcome (ok, circuit_open, no_turn, caller_gone, or the error code).",
			"operation", "status", "outcome"),
		concurDuration: f.histogram("concur_request_duration_seconds",
			"Duration of one try of a call to Concur (slot, token and answer; a file until its headers), "+
				"by operation and outcome.",
			"operation", "outcome"),
		tokenRefreshes: f.counter("concur_token_refreshes_total",
			"Renewals of the Concur access token (one per refresh, however many calls waited), by result (ok, failed).",
			"result"),
		breakerTransitions: f.counter("concur_breaker_transitions_total",
			"State changes of the Concur circuit breakers, by breaker and the state entered.",
			"breaker", "to"),
		lookups: f.counter("batch_lookups_total",
			"Lookups of a batch id in the gateway's batch directory, by result: hit (the store had it) "+
				"or miss (it triggered or joined a batch-list refresh).",
			"result"),
		refreshes: f.counter("batch_list_refreshes_total",
			"Refreshes of the stored batches from Concur's OPEN and CLOSED lists actually fetched, by result (ok, failed).",
			"result"),
		closes: f.counter("closes_total",
			"Close attempts recorded as ended, by outcome (closed, failed, unknown, refused).",
			"outcome"),
	}
	m.downloadsInFlight = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "downloads_in_flight",
		Help: "Downloads of payment files holding a slot (admitted, not yet ended)."})
	reg.MustRegister(m.downloadsInFlight)
	m.downloadsRefused = f.counter("downloads_refused_total",
		"Downloads of payment files refused with too_many_downloads, by the cap they hit (caller, total).", "limit")
	m.downloads = f.counter("downloads_total",
		"Downloads of payment files streamed, by outcome: complete, cut (slower than the minimum throughput: "+
			"the downloads cut for slowness), mismatch (Concur's file differed from its fingerprint), failed.",
		"outcome")
	info := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
		Help: "Always 1; the gateway's version is its label.", ConstLabels: prometheus.Labels{"version": version}})
	info.Set(1)
	reg.MustRegister(info,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range []string{"ok", "failed"} {
		m.tokenRefreshes.WithLabelValues(r)
		m.refreshes.WithLabelValues(r)
	}
	for _, r := range []string{"hit", "miss"} {
		m.lookups.WithLabelValues(r)
	}
	for _, o := range []string{"closed", "failed", "unknown", "refused"} {
		m.closes.WithLabelValues(o)
	}
	for _, l := range []string{"caller", "total"} {
		m.downloadsRefused.WithLabelValues(l)
	}
	for _, o := range []string{"complete", "cut", "mismatch", "failed"} {
		m.downloads.WithLabelValues(o)
	}
	return m
}

// factory registers the metrics it makes.
type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogram(name, help string, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help,
		Buckets: latencyBuckets}, labels)
	f.reg.MustRegister(h)
	return h
}

// Handler serves the metrics in Prometheus's text format (or OpenMetrics when asked).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, EnableOpenMetrics: true})
}

// Registry is the registry the metrics live in.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveRequest counts an answered request (httpapi.RequestObserver). route is the
// matched route pattern ("unmatched" for none); an unknown method counts as "other".
func (m *Metrics) ObserveRequest(method, route string, status int, took time.Duration) {
	s := strconv.Itoa(status)
	method = knownMethod(method)
	m.httpRequests.WithLabelValues(route, method, s).Inc()
	m.httpDuration.WithLabelValues(route, method, s).Observe(took.Seconds())
}

// knownMethod bounds the method label: a caller may send any token as a method.
func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// ConcurRequest counts one try of a call to Concur (concur.Observer).
func (m *Metrics) ConcurRequest(operation string, status int, outcome string, took time.Duration) {
	s := "none"
	if status > 0 {
		s = strconv.Itoa(status)
	}
	m.concurRequests.WithLabelValues(operation, s, outcome).Inc()
	m.concurDuration.WithLabelValues(operation, outcome).Observe(took.Seconds())
}

// TokenRefreshed counts a renewal of the Concur access token (concur.Observer).
func (m *Metrics) TokenRefreshed(ok bool) {
	m.tokenRefreshes.WithLabelValues(result(ok)).Inc()
}

// BreakerChanged counts a state change of a Concur circuit breaker; wire it to
// concur.Config.OnBreakerStateChange.
func (m *Metrics) BreakerChanged(name, _, to string) {
	m.breakerTransitions.WithLabelValues(name, to).Inc()
}

// WatchUnrecorded exports gateway_close_outcomes_unrecorded: the close outcomes Concur
// produced that the store has not taken yet (read from n at each scrape). Call it once.
func (m *Metrics) WatchUnrecorded(n func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "close_outcomes_unrecorded",
		Help: "Close outcomes Concur produced that this replica has not stored yet (retried in the background; sealed in the log).",
	}, func() float64 { return float64(n()) }))
}

// WatchBreakers exports gateway_concur_breaker_state{breaker,state}: 1 for each named
// breaker's current state, 0 for the others, read from state (concur.Client.BreakerState)
// at each scrape. Reading it at scrape time lets an open breaker whose interval has passed
// show as half-open even when no call has come since. Call it once.
func (m *Metrics) WatchBreakers(state func(name string) string, names ...string) {
	m.reg.MustRegister(&breakerCollector{state: state, names: names,
		desc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "concur", "breaker_state"),
			"Whether a Concur circuit breaker is in a state (1) or not (0), by breaker and state (closed, half-open, open).",
			[]string{"breaker", "state"}, nil)})
	for _, n := range names {
		for _, s := range breakerStates {
			m.breakerTransitions.WithLabelValues(n, s)
		}
	}
}

type breakerCollector struct {
	state func(string) string
	names []string
	desc  *prometheus.Desc
}

func (c *breakerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *breakerCollector) Collect(ch chan<- prometheus.Metric) {
	for _, n := range c.names {
		cur := c.state(n)
		for _, s := range breakerStates {
			v := 0.0
			if s == cur {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, n, s)
		}
	}
}

// BatchLookup counts a directory lookup (batch.Observer).
func (m *Metrics) BatchLookup(hit bool) {
	r := "miss"
	if hit {
		r = "hit"
	}
	m.lookups.WithLabelValues(r).Inc()
}

// BatchListRefreshed counts a batch-list refresh that was fetched (batch.Observer).
func (m *Metrics) BatchListRefreshed(ok bool) {
	m.refreshes.WithLabelValues(result(ok)).Inc()
}

// CloseObserved counts a close attempt recorded as ended, by outcome (batch.Observer).
func (m *Metrics) CloseObserved(outcome string) {
	m.closes.WithLabelValues(outcome).Inc()
}

func result(ok bool) string {
	if ok {
		return "ok"
	}
	return "failed"
}

// DownloadAdmitted counts a download into gateway_downloads_in_flight (batch.DownloadObserver).
func (m *Metrics) DownloadAdmitted() { m.downloadsInFlight.Inc() }

// DownloadReleased counts a download out of gateway_downloads_in_flight (batch.DownloadObserver).
func (m *Metrics) DownloadReleased() { m.downloadsInFlight.Dec() }

// DownloadRefused counts a download refused for a cap: caller or total (batch.DownloadObserver).
func (m *Metrics) DownloadRefused(limit string) { m.downloadsRefused.WithLabelValues(limit).Inc() }

// DownloadEnded counts a streamed download by outcome (batch.DownloadObserver).
func (m *Metrics) DownloadEnded(outcome string) { m.downloads.WithLabelValues(outcome).Inc() }
