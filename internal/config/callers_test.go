package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/finplat/payment-batch-gateway/internal/auth"
)

func TestLoadCallers(t *testing.T) {
	t.Parallel()
	key, hash, err := auth.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	keys := `[{"name":"ap-portal","sha256":"` + hash + `","scopes":["batches:read","batches:close"]}]`
	keyFile := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(keyFile, []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	base := map[string]string{"CONCUR_BASE_URL": "http://127.0.0.1:1", "CONCUR_ACCESS_TOKEN": "t"}
	tests := []struct {
		name    string
		env     map[string]string
		wantErr []string
	}{
		{"no callers refused", map[string]string{"GATEWAY_AUTH": ""}, []string{"no callers are configured"}},
		{"empty key list refused", map[string]string{"GATEWAY_AUTH": "", "GATEWAY_API_KEYS": "[]"}, []string{"no callers are configured"}},
		{"keys", map[string]string{"GATEWAY_AUTH": "", "GATEWAY_API_KEYS": keys}, nil},
		{"key file", map[string]string{"GATEWAY_AUTH": "", "GATEWAY_API_KEYS_FILE": keyFile}, nil},
		{"explicitly disabled", map[string]string{"GATEWAY_AUTH": "DISABLED"}, nil},
		{"bad mode", map[string]string{"GATEWAY_AUTH": "off"}, []string{"GATEWAY_AUTH must be"}},
		{"bad keys", map[string]string{"GATEWAY_AUTH": "", "GATEWAY_API_KEYS": `[{"name":"x","sha256":"` + key + `"}]`},
			[]string{"GATEWAY_API_KEYS"}},
		{"missing key file", map[string]string{"GATEWAY_AUTH": "", "GATEWAY_API_KEYS_FILE": keyFile + ".missing"},
			[]string{"GATEWAY_API_KEYS_FILE"}},
		{"jwt without issuer", map[string]string{"GATEWAY_AUTH": "", "GATEWAY_JWKS_URL": "https://idp.example.com/jwks"},
			[]string{"GATEWAY_JWT_ISSUER and GATEWAY_JWT_AUDIENCE"}},
		{"cors wildcard refused", map[string]string{"GATEWAY_CORS_ORIGINS": "*"}, []string{"GATEWAY_CORS_ORIGINS"}},
		{"cors host wildcard refused", map[string]string{"GATEWAY_CORS_ORIGINS": "https://*"}, []string{"GATEWAY_CORS_ORIGINS"}},
		{"cors subdomain wildcard refused", map[string]string{"GATEWAY_CORS_ORIGINS": "https://*.example.com"}, []string{"GATEWAY_CORS_ORIGINS"}},
		{"cors with path refused", map[string]string{"GATEWAY_CORS_ORIGINS": "https://a.example.com/app"}, []string{"GATEWAY_CORS_ORIGINS"}},
		{"bad rate limit", map[string]string{"GATEWAY_RATE_LIMIT": "-1"}, []string{"GATEWAY_RATE_LIMIT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := map[string]string{}
			for k, v := range base {
				m[k] = v
			}
			for k, v := range tt.env {
				m[k] = v
			}
			_, err := Load(env(m))
			if len(tt.wantErr) == 0 && err != nil {
				t.Fatalf("Load: %v", err)
			}
			for _, want := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error %v does not mention %q", err, want)
				}
			}
			if err != nil && strings.Contains(err.Error(), key) {
				t.Errorf("the error echoes a key")
			}
		})
	}

	c, err := Load(env(map[string]string{
		"CONCUR_BASE_URL": "http://127.0.0.1:1", "CONCUR_ACCESS_TOKEN": "t", "GATEWAY_API_KEYS": keys,
		"GATEWAY_AUTH": "", "GATEWAY_CORS_ORIGINS": " https://a.example.com, http://localhost:3000 ",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.AuthDisabled() || c.RateLimitPerMinute != 600 || strings.Join(c.CORSOrigins, ",") != "https://a.example.com,http://localhost:3000" {
		t.Errorf("callers config = disabled %v, rate %d, cors %v", c.AuthDisabled(), c.RateLimitPerMinute, c.CORSOrigins)
	}
}
