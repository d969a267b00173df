package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestSecretsNeverPrint(t *testing.T) {
	t.Parallel()
	c := Config{ConcurClientSecret: "s3cret", ConcurRefreshToken: "r3fresh", ConcurAccessToken: "acc3ss"}
	var sb strings.Builder
	log := zerolog.New(&sb)
	log.Info().Object("config", c).Send()
	js, _ := json.Marshal(c)
	for _, out := range []string{sb.String(), string(js), fmt.Sprintf("%v %+v %s", c, c, c.ConcurClientSecret)} {
		for _, secret := range []string{"s3cret", "r3fresh", "acc3ss"} {
			if strings.Contains(out, secret) {
				t.Errorf("secret %q printed in %s", secret, out)
			}
		}
	}
}

// TestLogNamesEverySetting: the start-up line carries every variable by its name, with
// the secrets masked and URLs without their query.
func TestLogNamesEverySetting(t *testing.T) {
	t.Parallel()
	c, err := Load(env(map[string]string{
		"CONCUR_BASE_URL": "https://h", "CONCUR_CLIENT_ID": "id", "CONCUR_CLIENT_SECRET": "s3cret",
		"CONCUR_REFRESH_TOKEN": "r3fresh", "GATEWAY_DATABASE_URL": "postgres://gw:pa55word@db/gw",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318?api-key=k3y", "CONCUR_TIMEOUT": "2s",
		"GATEWAY_CORS_ORIGINS": "https://a.example.com",
		"GATEWAY_API_KEYS":     `[{"name":"app","sha256":"` + strings.Repeat("ab", 32) + `","scopes":["batches:read"]}]`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	log := zerolog.New(&sb)
	log.Info().Object("config", c).Send()
	var line struct{ Config map[string]any }
	if err := json.Unmarshal([]byte(sb.String()), &line); err != nil {
		t.Fatalf("%v: %s", err, sb.String())
	}
	for _, s := range settings {
		if _, ok := line.Config[s.name]; !ok {
			t.Errorf("%s is not in the log line", s.name)
		}
	}
	if len(line.Config) != len(settings) {
		t.Errorf("%d values logged, want one per setting (%d): %s", len(line.Config), len(settings), sb.String())
	}
	if got := line.Config["GATEWAY_API_KEYS"]; got != "(set)" {
		t.Errorf("GATEWAY_API_KEYS logged as %v, want only (set)", got)
	}
	for _, leak := range []string{"s3cret", "r3fresh", "pa55word", "k3y", strings.Repeat("ab", 32)} {
		if strings.Contains(sb.String(), leak) {
			t.Errorf("the log line leaks %q: %s", leak, sb.String())
		}
	}
	for name, want := range map[string]any{"CONCUR_TIMEOUT": "2s", "CONCUR_CLIENT_SECRET": "***", "GATEWAY_PPROF": false,
		"CONCUR_TOKEN_URL": "https://h/oauth2/v0/token", "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318",
		"GATEWAY_RATE_LIMIT_PER_MINUTE": 600.0, "LOG_LEVEL": "info", "GATEWAY_SECRET_KEY": ""} {
		if got := line.Config[name]; got != want {
			t.Errorf("%s logged as %v, want %v", name, got, want)
		}
	}
}

// TestLogNeverLeaksFromBadURLs: a URL setting the gateway does not use (tracing off), or
// could not parse, is not logged as it is: it may carry a key.
func TestLogNeverLeaksFromBadURLs(t *testing.T) {
	t.Parallel()
	tests := map[string]map[string]string{
		"unparsable, tracing off": {"OTEL_SDK_DISABLED": "true",
			"OTEL_EXPORTER_OTLP_ENDPOINT": "https://user:S3CRET@collector.example:4318/%zz"},
		"no scheme, tracing off": {"OTEL_SDK_DISABLED": "true",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector.example:4318/v1/traces?api-key=S3CRET"},
		"base unused beside a traces endpoint": {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector.example:4318/v1/traces",
			"OTEL_EXPORTER_OTLP_ENDPOINT": "collector.example:4318?api-key=S3CRET"},
	}
	for name, vars := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			vars["CONCUR_BASE_URL"], vars["CONCUR_ACCESS_TOKEN"], vars["GATEWAY_AUTH"] = "https://h", "t", "disabled"
			c, err := Load(env(vars))
			if err != nil {
				t.Fatalf("Load refused it (%v): the case is meant to reach the log", err)
			}
			var sb strings.Builder
			log := zerolog.New(&sb)
			log.Info().Object("config", c).Send()
			if strings.Contains(sb.String(), "S3CRET") {
				t.Errorf("the log line leaks the URL's secret: %s", sb.String())
			}
		})
	}
}
