package e2e

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/finplat/payment-batch-gateway/api"
)

// metrics scrapes base/metrics as Prometheus would.
type metrics map[string]*dto.MetricFamily

func scrape(t *testing.T, base string) metrics {
	t.Helper()
	r := do(t, "GET", base+"/metrics", map[string]string{"Authorization": ""})
	if r.Status != 200 {
		t.Fatalf("GET /metrics: %d %s", r.Status, r.Body)
	}
	for _, id := range []string{employeeBatch, cardBatch, "e2e-caller"} {
		if bytes.Contains(r.Body, []byte(id)) {
			t.Errorf("/metrics mentions %q: labels must never carry a batch id or a caller", id)
		}
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.Body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// get is the value of the sample of name with exactly labels (a histogram's count); 0 when
// there is none yet.
func (m metrics) get(name string, labels ...string) float64 {
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, s := range m[name].GetMetric() {
		if len(s.GetLabel()) != len(want) {
			continue
		}
		match := true
		for _, l := range s.GetLabel() {
			match = match && want[l.GetName()] == l.GetValue()
		}
		if !match {
			continue
		}
		switch {
		case s.Counter != nil:
			return s.GetCounter().GetValue()
		case s.Gauge != nil:
			return s.GetGauge().GetValue()
		case s.Histogram != nil:
			return float64(s.GetHistogram().GetSampleCount())
		}
	}
	return 0
}

// Metrics move as requests flow: a close, a close Concur refuses, an unknown id; each
// lands in the request, Concur, token, directory and close-outcome metrics.
func TestMetricsChangeAsRequestsFlow(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil, nil)
	before := scrape(t, s.gw.URL)

	if r := do(t, "POST", s.gw.URL+"/batches/"+employeeBatch+"/close", nil); r.Status != 200 {
		t.Fatalf("close: %d %s", r.Status, r.Body)
	}
	s.fault(t, `{"op":"close","mode":"status","status":503,"count":1}`)
	if r := do(t, "POST", s.gw.URL+"/batches/"+cardBatch+"/close", nil); r.Status != 503 {
		t.Fatalf("close under a 503 fault: %d %s", r.Status, r.Body)
	}
	if r := do(t, "POST", s.gw.URL+"/batches/no-such-batch/close", nil); r.Status != 404 {
		t.Fatalf("close of an unknown batch: %d %s", r.Status, r.Body)
	}
	after := scrape(t, s.gw.URL)

	closeRoute := []string{"route", "/batches/{id}/close", "method", "POST", "status"}
	for _, c := range []struct {
		name    string
		labels  []string
		delta   float64
		atLeast bool
	}{
		{"gateway_http_requests_total", append(closeRoute, "200"), 1, false},
		{"gateway_http_requests_total", append(closeRoute, "503"), 1, false},
		{"gateway_http_requests_total", append(closeRoute, "404"), 1, false},
		{"gateway_http_request_duration_seconds", append(closeRoute, "200"), 1, false},
		{"gateway_http_requests_total", []string{"route", "/metrics", "method", "GET", "status", "200"}, 1, false},
		{"gateway_concur_requests_total", []string{"operation", "close", "status", "200", "outcome", "ok"}, 1, false},
		{"gateway_concur_requests_total", []string{"operation", "close", "status", "503", "outcome", "upstream_unavailable"}, 1, false},
		{"gateway_concur_request_duration_seconds", []string{"operation", "close", "outcome", "ok"}, 1, false},
		{"gateway_concur_requests_total", []string{"operation", "list", "status", "200", "outcome", "ok"}, 2, true},
		{"gateway_concur_requests_total", []string{"operation", "token", "status", "200", "outcome", "ok"}, 1, false},
		{"gateway_concur_token_refreshes_total", []string{"result", "ok"}, 1, false},
		{"gateway_batch_lookups_total", []string{"result", "miss"}, 2, false},
		{"gateway_batch_lookups_total", []string{"result", "hit"}, 1, false},
		{"gateway_batch_list_refreshes_total", []string{"result", "ok"}, 1, true},
		{"gateway_closes_total", []string{"outcome", "closed"}, 1, false},
		{"gateway_closes_total", []string{"outcome", "failed"}, 1, false},
		{"gateway_closes_total", []string{"outcome", "unknown"}, 0, false},
	} {
		d := after.get(c.name, c.labels...) - before.get(c.name, c.labels...)
		if d != c.delta && !(c.atLeast && d >= c.delta) {
			t.Errorf("%s%v moved by %v, want %v", c.name, c.labels, d, c.delta)
		}
	}
	for _, b := range []string{"concur-api", "concur-token"} {
		if v := after.get("gateway_concur_breaker_state", "breaker", b, "state", "closed"); v != 1 {
			t.Errorf("breaker %s closed = %v, want 1", b, v)
		}
	}
	if len(after["gateway_build_info"].GetMetric()) != 1 || len(after["process_resident_memory_bytes"].GetMetric()) != 1 {
		t.Error("build info or process metrics missing")
	}
}

// With GATEWAY_ADMIN_ADDR, /healthz, /readyz and /metrics are served there without a
// credential, and no longer on the API's listener; `gateway healthcheck` follows them.
func TestObservabilityAdminAddr(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil, map[string]string{"GATEWAY_ADMIN_ADDR": "127.0.0.1:0"})
	admin := "http://" + logField(t, s.gw, "adminAddr")

	if r := do(t, "GET", admin+"/healthz", nil); r.Status != 200 || string(r.Body) != "ok\n" {
		t.Errorf("admin /healthz: %d %q", r.Status, r.Body)
	}
	if rep := waitReady(t, admin, 200); rep.Status != "ready" {
		t.Errorf("admin /readyz: %+v", rep)
	}
	if m := scrape(t, admin); len(m["gateway_build_info"].GetMetric()) != 1 {
		t.Error("admin /metrics has no gateway_build_info")
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		r := do(t, "GET", s.gw.URL+path, map[string]string{"Authorization": ""})
		if p := decode[api.Problem](t, r); r.Status != 404 || p.Code != "route_not_found" {
			t.Errorf("API listener %s: %d %s, want 404 route_not_found", path, r.Status, r.Body)
		}
	}
	if r := do(t, "GET", s.gw.URL+"/batches", nil); r.Status != 200 {
		t.Errorf("the API on its listener: %d %s", r.Status, r.Body)
	}
	if r := do(t, "GET", admin+"/batches", nil); r.Status != 404 {
		t.Errorf("the API on the admin listener: %d", r.Status)
	}

	hc := func(env map[string]string) error {
		cmd := execGateway(env)
		cmd.Args = append(cmd.Args, "healthcheck")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Logf("healthcheck %v: %s", env, out)
		}
		return err
	}
	main := strings.TrimPrefix(s.gw.URL, "http://")
	adminAddr := strings.TrimPrefix(admin, "http://")
	if err := hc(map[string]string{"GATEWAY_ADDR": main, "GATEWAY_ADMIN_ADDR": adminAddr}); err != nil {
		t.Errorf("healthcheck with GATEWAY_ADMIN_ADDR: %v", err)
	}
	if err := hc(map[string]string{"GATEWAY_ADDR": main}); err == nil {
		t.Error("healthcheck against the API listener succeeded, but /healthz moved")
	}
}

// GATEWAY_PPROF serves profiles on the admin listener only; without it, there are none.
func TestObservabilityPProf(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil, map[string]string{"GATEWAY_ADMIN_ADDR": "127.0.0.1:0", "GATEWAY_PPROF": "true"})
	admin := "http://" + logField(t, s.gw, "adminAddr")
	if r := do(t, "GET", admin+"/debug/pprof/allocs?debug=1", nil); r.Status != 200 || !strings.Contains(string(r.Body), "heap profile") {
		t.Errorf("admin allocs profile: %d %.200s", r.Status, r.Body)
	}
	if m := scrape(t, admin); len(m["gateway_build_info"].GetMetric()) != 1 {
		t.Error("admin /metrics is gone with pprof on")
	}
	if r := do(t, "GET", s.gw.URL+"/debug/pprof/allocs?debug=1", nil); r.Status != 404 {
		t.Errorf("API listener serves profiles: %d", r.Status)
	}

	off := startStack(t, nil, map[string]string{"GATEWAY_ADMIN_ADDR": "127.0.0.1:0"})
	if r := do(t, "GET", "http://"+logField(t, off.gw, "adminAddr")+"/debug/pprof/allocs?debug=1", nil); r.Status != 404 {
		t.Errorf("profiles served without GATEWAY_PPROF: %d", r.Status)
	}
}

// logField is the first value of a string field in the process's JSON log.
func logField(t *testing.T, p *proc, field string) string {
	t.Helper()
	for line := range strings.SplitSeq(p.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if v, ok := m[field].(string); ok && v != "" {
			return v
		}
	}
	t.Fatalf("no %s in the log:\n%s", field, p.logs)
	return ""
}
