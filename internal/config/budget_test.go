package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestShutdownBudget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		concurTimeout time.Duration
		want          time.Duration
	}{
		{"default", 60 * time.Second, 17*time.Minute + 10*time.Second},
		{"short", 2 * time.Second, 15*2*time.Second + 5*time.Second + 2*2*time.Second + 5*time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Config{ConcurTimeout: tc.concurTimeout}
			if got := c.ShutdownBudget(); got != tc.want {
				t.Errorf("ShutdownBudget() = %v, want %v", got, tc.want)
			}
			if c.ShutdownGrace() <= c.CloseBudget() {
				t.Errorf("the grace period %v does not outlast a close (%v)", c.ShutdownGrace(), c.CloseBudget())
			}
		})
	}
}

// The figures the documentation derives from the defaults are the ones the table's
// defaults give. Change a default and this says which texts to change with it.
func TestDocumentedFiguresFollowTheDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(env(map[string]string{"CONCUR_BASE_URL": "https://us.api.concursolutions.com", "CONCUR_ACCESS_TOKEN": "t"}))
	if err != nil {
		t.Fatal(err)
	}
	// deploy/prometheus/alerts.yaml and internal/telemetry/metrics.go: "60 s by default".
	if c.ConcurTimeout != 60*time.Second {
		t.Errorf("the default CONCUR_TIMEOUT is %v: update the texts that say 60 s by default", c.ConcurTimeout)
	}
	// ShutdownBudget's doc, README.md (Running it), deployment.yaml and the compose files: 17m10s.
	if got := c.ShutdownBudget(); got != 17*time.Minute+10*time.Second {
		t.Errorf("the default shutdown budget is %v: update the texts that say 17m10s", got)
	}
	i := slices.IndexFunc(settings, func(s setting) bool { return s.name == "GATEWAY_IDEMPOTENCY_TTL" })
	if want := short(c.CloseLease()) + " with the default"; !strings.Contains(settings[i].doc, want) {
		t.Errorf("GATEWAY_IDEMPOTENCY_TTL's doc %q does not say %q", settings[i].doc, want)
	}
}
