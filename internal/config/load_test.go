package config

import (
	"strings"
	"testing"
)

func TestLoadOldNames(t *testing.T) {
	t.Parallel()
	base := map[string]string{"CONCUR_BASE_URL": "http://127.0.0.1:1", "CONCUR_ACCESS_TOKEN": "t"}
	for _, tt := range []struct {
		name       string
		env        map[string]string
		perMinute  int
		perSecond  float64
		wantErr    string   // "" for none
		wantWarned []string // old names the warnings name
	}{
		{"defaults", nil, 600, 0, "", nil},
		{"new names", map[string]string{"GATEWAY_RATE_LIMIT_PER_MINUTE": "60", "CONCUR_RATE_LIMIT_PER_SECOND": "2.5"}, 60, 2.5, "", nil},
		{"old names", map[string]string{"GATEWAY_RATE_LIMIT": "0", "CONCUR_RATE_LIMIT": "4"}, 0, 4, "",
			[]string{"CONCUR_RATE_LIMIT", "GATEWAY_RATE_LIMIT"}},
		{"both, the same", map[string]string{"GATEWAY_RATE_LIMIT": "30", "GATEWAY_RATE_LIMIT_PER_MINUTE": "30"}, 30, 0, "",
			[]string{"GATEWAY_RATE_LIMIT"}},
		{"both, different", map[string]string{"GATEWAY_RATE_LIMIT": "30", "GATEWAY_RATE_LIMIT_PER_MINUTE": "60"}, 0, 0,
			"GATEWAY_RATE_LIMIT_PER_MINUTE and GATEWAY_RATE_LIMIT (its old name) are both set, to different values", nil},
		{"old name, bad value", map[string]string{"CONCUR_RATE_LIMIT": "-1"}, 0, 0, "CONCUR_RATE_LIMIT_PER_SECOND must be a number", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := map[string]string{}
			for k, v := range base {
				m[k] = v
			}
			for k, v := range tt.env {
				m[k] = v
			}
			c, err := Load(env(m))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.RateLimitPerMinute != tt.perMinute || c.ConcurRateLimitPerSecond != tt.perSecond {
				t.Errorf("rates %d/min, %v/s; want %d, %v", c.RateLimitPerMinute, c.ConcurRateLimitPerSecond, tt.perMinute, tt.perSecond)
			}
			if len(c.Warnings) != len(tt.wantWarned) {
				t.Fatalf("warnings %q, want one each for %v", c.Warnings, tt.wantWarned)
			}
			for i, old := range tt.wantWarned {
				if !strings.HasPrefix(c.Warnings[i], old+" is deprecated: it is now "+old+"_PER_") {
					t.Errorf("warning %q does not name %s and its new name", c.Warnings[i], old)
				}
			}
		})
	}
}

func TestLoadParseProblems(t *testing.T) {
	t.Parallel()
	_, err := Load(env(map[string]string{
		"CONCUR_BASE_URL": "http://127.0.0.1:1", "CONCUR_ACCESS_TOKEN": "t",
		"CONCUR_MAX_ATTEMPTS": "three", "CONCUR_RATE_LIMIT_PER_SECOND": "NaN", "GATEWAY_BATCH_LIST_MIN_INTERVAL": "10",
		"GATEWAY_PPROF": "maybe", "LOG_FORMAT": "XML",
	}))
	if err == nil {
		t.Fatal("Load accepted values that do not parse")
	}
	for _, want := range []string{
		`CONCUR_MAX_ATTEMPTS must be a whole number, 0 or more (got "three")`,
		`CONCUR_RATE_LIMIT_PER_SECOND must be a number, 0 or more (got "NaN")`,
		`GATEWAY_BATCH_LIST_MIN_INTERVAL must be a duration such as 30s (got "10")`,
		"GATEWAY_PPROF must be true or false",
		"LOG_FORMAT must be json or console",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if n := strings.Count(err.Error(), "\n  - "); n != 5 {
		t.Errorf("%d problems, want 5 (a value that does not parse is reported once):\n%v", n, err)
	}
}
