package config

import (
	"strings"
	"testing"
)

func TestLoadIdempotencyOutlastsClose(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, ttl, timeout string
		wantErr            bool
	}{
		{"defaults: 24h against 16m", "", "", false},
		{"shorter than the longest close", "15m", "", true},
		{"just enough", "16m", "", false},
		{"short time-out, short key", "2m", "2s", false}, // a close takes 15 × 2s + 1m
		{"below the minute", "30s", "1s", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(env(map[string]string{"CONCUR_BASE_URL": "http://127.0.0.1:1", "CONCUR_ACCESS_TOKEN": "t",
				"GATEWAY_IDEMPOTENCY_TTL": tt.ttl, "CONCUR_TIMEOUT": tt.timeout}))
			if got := err != nil && strings.Contains(err.Error(), "GATEWAY_IDEMPOTENCY_TTL"); got != tt.wantErr {
				t.Errorf("err = %v, want an error about GATEWAY_IDEMPOTENCY_TTL: %v", err, tt.wantErr)
			}
			if err == nil && c.IdempotencyTTL < c.CloseLease() {
				t.Errorf("a key of %v expires while a close holds it for %v", c.IdempotencyTTL, c.CloseLease())
			}
		})
	}
}

func TestConcurRateBurst(t *testing.T) {
	t.Parallel()
	for rate, want := range map[float64]int{0: 1, 0.5: 1, 1: 1, 2.5: 2, 20: 20} {
		if got := (Config{ConcurRateLimitPerSecond: rate}).ConcurRateBurst(); got != want {
			t.Errorf("ConcurRateBurst at %v/s = %d, want %d", rate, got, want)
		}
	}
}
