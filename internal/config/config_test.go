package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// env serves m; caller authentication is off unless m says otherwise, so that tests of
// other settings need not configure callers.
func env(m map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := m[k]; ok || k != "GATEWAY_AUTH" {
			return v
		}
		return "disabled"
	}
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(env(map[string]string{
		"CONCUR_BASE_URL":      "https://us2.api.concursolutions.com/",
		"CONCUR_CLIENT_ID":     "id",
		"CONCUR_CLIENT_SECRET": "s3cret",
		"CONCUR_REFRESH_TOKEN": "r3fresh",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":8080" || c.ConcurTimeout != 60*time.Second || c.ConcurAuthScheme != "Bearer" ||
		c.LogLevel != zerolog.InfoLevel || c.LogFormat != "json" {
		t.Errorf("defaults wrong: %+v", c)
	}
	if want := "https://us2.api.concursolutions.com/oauth2/v0/token"; c.ConcurTokenURL != want {
		t.Errorf("token URL = %q, want %q", c.ConcurTokenURL, want)
	}
	if !c.UsesRefreshToken() {
		t.Error("UsesRefreshToken = false")
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := Load(env(map[string]string{
		"CONCUR_AUTH_SCHEME": "Basic",
		"CONCUR_TIMEOUT":     "soon",
		"LOG_FORMAT":         "xml",
		"LOG_LEVEL":          "loud",
	}))
	if err == nil {
		t.Fatal("Load succeeded on bad config")
	}
	for _, want := range []string{
		"CONCUR_BASE_URL is required", "CONCUR_CLIENT_ID is required", "CONCUR_CLIENT_SECRET is required",
		"CONCUR_AUTH_SCHEME", "CONCUR_TIMEOUT", "LOG_FORMAT", "LOG_LEVEL",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestLoadStaticTokenAndFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("static-token-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(env(map[string]string{
		"CONCUR_BASE_URL":          "http://127.0.0.1:9090",
		"CONCUR_ACCESS_TOKEN_FILE": file,
		"CONCUR_AUTH_SCHEME":       "OAuth",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.ConcurAccessToken.Reveal() != "static-token-value" || c.UsesRefreshToken() {
		t.Errorf("static token not loaded from file: %+v", c)
	}

	_, err = Load(env(map[string]string{
		"CONCUR_BASE_URL":          "http://127.0.0.1:9090",
		"CONCUR_ACCESS_TOKEN":      "x",
		"CONCUR_ACCESS_TOKEN_FILE": file,
	}))
	if err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("both value and file: err = %v", err)
	}
}

func TestLoadRejectsBadURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"ftp://x", "not a url", "https://user:pw@host", "/relative"} {
		_, err := Load(env(map[string]string{"CONCUR_BASE_URL": u, "CONCUR_ACCESS_TOKEN": "t"}))
		if err == nil || !strings.Contains(err.Error(), "CONCUR_BASE_URL must be") {
			t.Errorf("CONCUR_BASE_URL=%q: err = %v", u, err)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("error leaks URL credentials: %v", err)
		}
	}
}

func TestLoadStoreSettings(t *testing.T) {
	t.Parallel()
	base := map[string]string{"CONCUR_BASE_URL": "http://127.0.0.1:1", "CONCUR_ACCESS_TOKEN": "t"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	c, err := Load(env(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.StoreKind() != "sqlite" || c.DataDir != "./data" || c.IdempotencyTTL != 24*time.Hour || c.SecretKey != "" {
		t.Errorf("store defaults wrong: kind %s, dir %q, ttl %v", c.StoreKind(), c.DataDir, c.IdempotencyTTL)
	}

	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Load(env(with(map[string]string{
		"GATEWAY_DATABASE_URL":    "postgresql://gw:pa55word@db:5432/gw",
		"GATEWAY_SECRET_KEY_FILE": keyFile,
		"GATEWAY_IDEMPOTENCY_TTL": "48h",
	})))
	if err != nil {
		t.Fatal(err)
	}
	if c.StoreKind() != "postgres" || c.IdempotencyTTL != 48*time.Hour || c.SecretKey == "" {
		t.Errorf("postgres settings wrong: kind %s, ttl %v", c.StoreKind(), c.IdempotencyTTL)
	}
	var sb strings.Builder
	log := zerolog.New(&sb)
	log.Info().Object("config", c).Send()
	if strings.Contains(sb.String(), "pa55word") || strings.Contains(sb.String(), "AAECAwQF") {
		t.Errorf("config log leaks the database password or the key: %s", sb.String())
	}

	_, err = Load(env(with(map[string]string{
		"GATEWAY_DATABASE_URL":    "mysql://root@db/gw",
		"GATEWAY_SECRET_KEY":      "c2hvcnQ=",
		"GATEWAY_IDEMPOTENCY_TTL": "1s",
	})))
	if err == nil {
		t.Fatal("Load accepted a bad store configuration")
	}
	for _, want := range []string{"GATEWAY_DATABASE_URL", "GATEWAY_SECRET_KEY", "GATEWAY_IDEMPOTENCY_TTL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "c2hvcnQ=") {
		t.Errorf("error echoes the key: %v", err)
	}
}

func TestLoadBaseURLAndSchemeRules(t *testing.T) {
	t.Parallel()
	base := map[string]string{"CONCUR_ACCESS_TOKEN": "t", "LOG_LEVEL": "nope"}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for bk, bv := range base {
			m[bk] = bv
		}
		return m
	}
	_, err := Load(env(with("CONCUR_BASE_URL", "https://h/api")))
	if err == nil || !strings.Contains(err.Error(), "without a path") || !strings.Contains(err.Error(), "LOG_LEVEL") {
		t.Errorf("a base URL with a path must be reported with the other problems: %v", err)
	}
	c, err := Load(env(map[string]string{"CONCUR_BASE_URL": "https://h/", "CONCUR_ACCESS_TOKEN": "t", "CONCUR_AUTH_SCHEME": "oauth"}))
	if err != nil || c.ConcurAuthScheme != "OAuth" || c.ConcurBaseURL != "https://h" {
		t.Errorf("scheme %q base %q: %v", c.ConcurAuthScheme, c.ConcurBaseURL, err)
	}
}

func TestLoadRefusesCleartextTokenURL(t *testing.T) {
	t.Parallel()
	_, err := Load(env(map[string]string{
		"CONCUR_BASE_URL": "https://us.api.concursolutions.com", "CONCUR_TOKEN_URL": "http://us.api.concursolutions.com/oauth2/v0/token",
		"CONCUR_CLIENT_ID": "id", "CONCUR_CLIENT_SECRET": "s", "CONCUR_REFRESH_TOKEN": "r",
	}))
	if err == nil || !strings.Contains(err.Error(), "CONCUR_TOKEN_URL must be https") {
		t.Errorf("err = %v", err)
	}
}

func TestLoadDownloads(t *testing.T) {
	t.Parallel()
	base := map[string]string{"CONCUR_BASE_URL": "https://us.api.concursolutions.com", "CONCUR_ACCESS_TOKEN": "t"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	c, err := Load(env(with()))
	if err != nil {
		t.Fatal(err)
	}
	if c.DownloadsPerCaller != 2 || c.DownloadsMax != 16 || c.DownloadMinRate != 16384 || c.DownloadRateWindow != 30*time.Second {
		t.Errorf("download defaults: %d per caller, %d in all, %d B/s over %v; want 2, 16, 16384, 30s",
			c.DownloadsPerCaller, c.DownloadsMax, c.DownloadMinRate, c.DownloadRateWindow)
	}
	c, err = Load(env(with("GATEWAY_DOWNLOADS_PER_CALLER", "0", "GATEWAY_DOWNLOADS_MAX", "0",
		"GATEWAY_DOWNLOAD_MIN_RATE_BYTES_PER_SECOND", "0", "GATEWAY_DOWNLOAD_RATE_WINDOW", "1m")))
	if err != nil || c.DownloadsPerCaller != 0 || c.DownloadsMax != 0 || c.DownloadMinRate != 0 || c.DownloadRateWindow != time.Minute {
		t.Errorf("downloads off: %+v, %v", c, err)
	}
	_, err = Load(env(with("GATEWAY_DOWNLOADS_PER_CALLER", "-1", "GATEWAY_DOWNLOADS_MAX", "x",
		"GATEWAY_DOWNLOAD_MIN_RATE_BYTES_PER_SECOND", "fast", "GATEWAY_DOWNLOAD_RATE_WINDOW", "10ms")))
	for _, want := range []string{"GATEWAY_DOWNLOADS_PER_CALLER", "GATEWAY_DOWNLOADS_MAX",
		"GATEWAY_DOWNLOAD_MIN_RATE_BYTES_PER_SECOND", "GATEWAY_DOWNLOAD_RATE_WINDOW must be at least 1s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
	_, err = Load(env(with("GATEWAY_DOWNLOADS_PER_CALLER", "5", "GATEWAY_DOWNLOADS_MAX", "4")))
	if err == nil || !strings.Contains(err.Error(), "must not exceed GATEWAY_DOWNLOADS_MAX") {
		t.Errorf("per caller above the total: %v", err)
	}
}
