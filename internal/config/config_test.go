package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(env(map[string]string{
		"CONCUR_BASE_URL":      "https://us.api.concursolutions.com/",
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
	if want := "https://us.api.concursolutions.com/oauth2/v0/token"; c.ConcurTokenURL != want {
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
		"CONCUR_REFRESH_TOKEN is required", "CONCUR_AUTH_SCHEME", "CONCUR_TIMEOUT", "LOG_FORMAT", "LOG_LEVEL",
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

func TestWriteSecretFileRoundTrips(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "refresh-token")
	if err := os.WriteFile(path, []byte("first\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteSecretFile(path, "rotated-value"); err != nil {
		t.Fatal(err)
	}
	c, err := Load(env(map[string]string{
		"CONCUR_BASE_URL": "http://127.0.0.1:1", "CONCUR_CLIENT_ID": "id", "CONCUR_CLIENT_SECRET": "s",
		"CONCUR_REFRESH_TOKEN_FILE": path,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.ConcurRefreshToken.Reveal() != "rotated-value" || c.ConcurRefreshTokenFile != path {
		t.Errorf("reloaded %q from %q", c.ConcurRefreshToken.Reveal(), c.ConcurRefreshTokenFile)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	err = WriteSecretFile(filepath.Join(dir, "missing-dir", "x"), "never-printed")
	if err == nil || strings.Contains(err.Error(), "never-printed") {
		t.Errorf("write into a missing directory: %v", err)
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
