package telemetry

import (
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them (an exporter that was
// not shut down).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scrape fetches the metrics as Prometheus would and parses them.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("the scrape does not parse: %v", err)
	}
	return fams
}

// value is the sample of name with exactly labels (a counter's or gauge's value, a
// histogram's count); -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if !cmp.Equal(got, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

type l = map[string]string

// Each observation lands in its metric under bounded labels; the families a dashboard
// relies on exist (at zero) before anything happened.
func TestMetricsNamesLabelsAndValues(t *testing.T) {
	t.Parallel()
	m := NewMetrics("v1.2.3")
	state := map[string]string{"concur-api": "open", "concur-token": "closed"}
	m.WatchBreakers(func(n string) string { return state[n] }, "concur-api", "concur-token")

	before := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels l
	}{
		{"gateway_closes_total", l{"outcome": "unknown"}},
		{"gateway_concur_token_refreshes_total", l{"result": "failed"}},
		{"gateway_batch_lookups_total", l{"result": "miss"}},
		{"gateway_batch_list_refreshes_total", l{"result": "failed"}},
		{"gateway_concur_breaker_transitions_total", l{"breaker": "concur-api", "to": "open"}},
	} {
		if v := value(before, c.name, c.labels); v != 0 {
			t.Errorf("%s%v before anything happened = %v, want 0", c.name, c.labels, v)
		}
	}

	m.ObserveRequest("POST", "/batches/{id}/close", 200, 30*time.Millisecond)
	m.ObserveRequest("POST", "/batches/{id}/close", 200, 40*time.Millisecond)
	m.ObserveRequest("BREW", "unmatched", 405, time.Millisecond)
	m.ConcurRequest("close", 503, "upstream_unavailable", time.Second)
	m.ConcurRequest("list", 0, "circuit_open", 0)
	m.TokenRefreshed(true)
	m.TokenRefreshed(false)
	m.BreakerChanged("concur-api", "closed", "open")
	m.BatchLookup(true)
	m.BatchLookup(false)
	m.BatchListRefreshed(true)
	m.CloseObserved("closed")
	m.CloseObserved("refused")

	fams := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels l
		want   float64
	}{
		{"gateway_http_requests_total", l{"route": "/batches/{id}/close", "method": "POST", "status": "200"}, 2},
		{"gateway_http_request_duration_seconds", l{"route": "/batches/{id}/close", "method": "POST", "status": "200"}, 2},
		{"gateway_http_requests_total", l{"route": "unmatched", "method": "other", "status": "405"}, 1},
		{"gateway_concur_requests_total", l{"operation": "close", "status": "503", "outcome": "upstream_unavailable"}, 1},
		{"gateway_concur_request_duration_seconds", l{"operation": "close", "outcome": "upstream_unavailable"}, 1},
		{"gateway_concur_requests_total", l{"operation": "list", "status": "none", "outcome": "circuit_open"}, 1},
		{"gateway_concur_token_refreshes_total", l{"result": "ok"}, 1},
		{"gateway_concur_token_refreshes_total", l{"result": "failed"}, 1},
		{"gateway_concur_breaker_transitions_total", l{"breaker": "concur-api", "to": "open"}, 1},
		{"gateway_concur_breaker_state", l{"breaker": "concur-api", "state": "open"}, 1},
		{"gateway_concur_breaker_state", l{"breaker": "concur-api", "state": "closed"}, 0},
		{"gateway_concur_breaker_state", l{"breaker": "concur-token", "state": "closed"}, 1},
		{"gateway_concur_breaker_state", l{"breaker": "concur-token", "state": "half-open"}, 0},
		{"gateway_batch_lookups_total", l{"result": "hit"}, 1},
		{"gateway_batch_lookups_total", l{"result": "miss"}, 1},
		{"gateway_batch_list_refreshes_total", l{"result": "ok"}, 1},
		{"gateway_closes_total", l{"outcome": "closed"}, 1},
		{"gateway_closes_total", l{"outcome": "refused"}, 1},
		{"gateway_closes_total", l{"outcome": "failed"}, 0},
		{"gateway_build_info", l{"version": "v1.2.3"}, 1},
	} {
		if v := value(fams, c.name, c.labels); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
	// The histogram's sum is in seconds.
	for _, h := range fams["gateway_http_request_duration_seconds"].GetMetric() {
		if s := h.GetHistogram().GetSampleSum(); h.GetHistogram().GetSampleCount() == 2 && (s < 0.069 || s > 0.071) {
			t.Errorf("duration sum = %v s, want 0.07", s)
		}
	}
	// The breaker state is read at each scrape.
	state["concur-api"] = "half-open"
	if v := value(scrape(t, m), "gateway_concur_breaker_state", l{"breaker": "concur-api", "state": "half-open"}); v != 1 {
		t.Errorf("half-open breaker reads %v, want 1", v)
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
}

// Labels stay bounded whatever callers send: every label name in use is one of the
// documented ones, and methods outside the standard ones collapse into "other".
func TestMetricsLabelsAreBounded(t *testing.T) {
	t.Parallel()
	m := NewMetrics("dev")
	for _, method := range []string{"GET", "get", "FOO", strings.Repeat("X", 100), "PROPFIND"} {
		m.ObserveRequest(method, "unmatched", 404, time.Millisecond)
	}
	fams := scrape(t, m)
	var methods []string
	for _, s := range fams["gateway_http_requests_total"].GetMetric() {
		for _, lp := range s.GetLabel() {
			if lp.GetName() == "method" {
				methods = append(methods, lp.GetValue())
			}
		}
	}
	sort.Strings(methods)
	if diff := cmp.Diff([]string{"GET", "other"}, methods); diff != "" {
		t.Errorf("method labels (-want +got):\n%s", diff)
	}
	allowed := map[string]bool{"route": true, "method": true, "status": true, "operation": true, "outcome": true,
		"result": true, "breaker": true, "to": true, "state": true, "version": true,
		"limit": true}
	for name, f := range fams {
		if !strings.HasPrefix(name, "gateway_") {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, lp := range s.GetLabel() {
				if !allowed[lp.GetName()] {
					t.Errorf("%s has label %q", name, lp.GetName())
				}
			}
		}
	}
}

func TestMetricsHandlerServesOpenMetricsWhenAsked(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	NewMetrics("dev").Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/openmetrics-text") {
		t.Errorf("got %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
}
