package deploy

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

const (
	alertsFile    = "prometheus/alerts.yaml"
	dashboardFile = "grafana/gateway-dashboard.json"

	// pendingGroup, when there is one, holds rules on metrics promised by open work, not
	// exposed yet (none now).
	pendingGroup = "payment-batch-gateway.pending"
	// platformGroup holds rules on what Prometheus (up) and kube-state-metrics (kube_*)
	// record about the gateway: readiness is a probe, not a gateway metric.
	platformGroup = "payment-batch-gateway.platform"
)

var promql = parser.NewParser(parser.Options{})

// TestAlertRulesParse loads the rules as Prometheus does (unknown fields are errors,
// every expression and template checked).
func TestAlertRulesParse(t *testing.T) {
	t.Parallel()
	groups := loadRules(t)
	for _, want := range []string{"payment-batch-gateway", platformGroup} {
		if !slices.ContainsFunc(groups.Groups, func(g rulefmt.RuleGroup) bool { return g.Name == want }) {
			t.Errorf("%s: no group %q", alertsFile, want)
		}
	}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %s: wants a severity label and a summary annotation", r.Alert)
			}
		}
	}
}

// TestMetricsExist checks every metric the rules and the dashboard name against the
// /metrics of the real gateway binary, after it served requests and called Concur.
func TestMetricsExist(t *testing.T) {
	realGateway(t)
	served := scrape(t)

	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			for _, name := range metricNames(t, r.Expr) {
				family := familyOf(name, served)
				switch g.Name {
				case pendingGroup:
					if family != "" {
						t.Errorf("alert %s: %s is on /metrics now: move the rule out of the %q group", r.Alert, name, pendingGroup)
					}
				case platformGroup:
					if name != "up" && !strings.HasPrefix(name, "kube_") {
						t.Errorf("alert %s: %s is neither Prometheus's up nor kube-state-metrics'", r.Alert, name)
					}
				default:
					if family == "" {
						t.Errorf("alert %s: %s is not on the gateway's /metrics", r.Alert, name)
					}
				}
			}
		}
	}
	for _, expr := range dashboardExprs(t) {
		for _, name := range metricNames(t, expr) {
			if familyOf(name, served) == "" {
				t.Errorf("%s: %s is not on the gateway's /metrics (in %s)", dashboardFile, name, expr)
			}
		}
	}
}

func loadRules(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	groups, errs := rulefmt.ParseFile(alertsFile, false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Error(err)
	}
	if groups == nil {
		t.FailNow()
	}
	return groups
}

// metricNames returns the metric names an expression selects.
func metricNames(t *testing.T, expr string) []string {
	t.Helper()
	e, err := promql.ParseExpr(expr)
	if err != nil {
		t.Errorf("%q: %v", expr, err)
		return nil
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if vs.Name == "" {
				t.Errorf("%q: a selector without a metric name", expr)
			}
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

// grafanaVars are the dashboard's variables that stand for a duration.
var grafanaVars = regexp.MustCompile(`\$__(rate_)?interval|\$__range`)

// dashboardExprs returns every PromQL expression of the dashboard: panel targets and
// query variables, with Grafana's interval variables replaced by a duration.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct {
				Type  string
				Query json.RawMessage
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var exprs []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("%s: panel %q has no query", dashboardFile, p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, grafanaVars.ReplaceAllString(tg.Expr, "5m"))
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("%s: variable query: %v", dashboardFile, err)
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("%s: variable query %q is not label_values(selector, label)", dashboardFile, q.Query)
			continue
		}
		exprs = append(exprs, m[1])
	}
	return exprs
}

// scrape reads the gateway's /metrics on its admin listener and returns the families.
func scrape(t *testing.T) map[string]bool {
	t.Helper()
	status, body, err := get(gateway.adm, "GET", "/metrics", "")
	if err != nil || status != 200 {
		t.Fatalf("GET /metrics: %d %v", status, err)
	}
	tp := expfmt.NewTextParser(model.UTF8Validation)
	families, err := tp.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	served := map[string]bool{}
	for name := range families {
		served[name] = true
	}
	if !served["gateway_build_info"] {
		keys := make([]string, 0, len(served))
		for k := range served {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		t.Fatalf("/metrics has no gateway_build_info: %v", keys)
	}
	return served
}

// familyOf returns the family a sample name belongs to (a histogram's _bucket, _sum and
// _count belong to the histogram), or "" when the gateway serves none.
func familyOf(name string, served map[string]bool) string {
	if served[name] {
		return name
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && served[base] {
			return base
		}
	}
	return ""
}
