package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// LoadListen reads the listen addresses as Load does (defaults, trimming, checks) and
// nothing else: a setting `gateway healthcheck` does not use cannot fail it.
func TestLoadListen(t *testing.T) {
	t.Parallel()
	badKeys := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(badKeys, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		env     map[string]string
		want    string // HealthAddr
		wantErr string // "" for none
	}{
		{"defaults", nil, ":8080", ""},
		{"trimmed", map[string]string{"GATEWAY_ADDR": " 127.0.0.1:9000 "}, "127.0.0.1:9000", ""},
		{"admin wins", map[string]string{"GATEWAY_ADDR": ":9000", "GATEWAY_ADMIN_ADDR": "\t:9090"}, ":9090", ""},
		{"other settings unread", map[string]string{"GATEWAY_API_KEYS_FILE": badKeys, "CONCUR_TIMEOUT": "soon"}, ":8080", ""},
		{"bad address", map[string]string{"GATEWAY_ADDR": "8080"}, "", "GATEWAY_ADDR must be host:port"},
		{"bad admin address", map[string]string{"GATEWAY_ADMIN_ADDR": "localhost"}, "", "GATEWAY_ADMIN_ADDR must be host:port"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := LoadListen(env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.HealthAddr(); got != tt.want {
				t.Errorf("HealthAddr() = %q, want %q", got, tt.want)
			}
		})
	}
}

// Load checks the listen addresses too, with every other problem.
func TestLoadChecksAddresses(t *testing.T) {
	t.Parallel()
	_, err := Load(env(map[string]string{"CONCUR_BASE_URL": "http://127.0.0.1:1", "CONCUR_ACCESS_TOKEN": "t",
		"GATEWAY_AUTH": "disabled", "GATEWAY_ADDR": "127.0.0.1", "GATEWAY_ADMIN_ADDR": "127.0.0.1:"}))
	for _, want := range []string{"GATEWAY_ADDR must be host:port", "GATEWAY_ADMIN_ADDR must be host:port"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}
