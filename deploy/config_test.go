package deploy

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/finplat/payment-batch-gateway/internal/config"
)

// stand-ins for the secrets a manifest reads from files, valid for config.Load.
var secretStandIns = map[string]string{
	"CONCUR_CLIENT_SECRET": "stand-in",
	"CONCUR_REFRESH_TOKEN": "stand-in",
	"CONCUR_ACCESS_TOKEN":  "stand-in",
	"GATEWAY_DATABASE_URL": "postgres://gateway@postgres:5432/gateway",
	"GATEWAY_SECRET_KEY":   base64.StdEncoding.EncodeToString(make([]byte, 32)),
	"GATEWAY_API_KEYS":     `[{"name":"stand-in","sha256":"` + strings.Repeat("0", 64) + `","scopes":["batches:read"]}]`,
}

// gatewayConfig loads the gateway's configuration from the environment a deployment file
// gives it, with the gateway's own loader: it is valid, and its budgets and addresses are
// the gateway's, not copies. A NAME_FILE variable reads a stand-in for the secret (the
// real one is mounted at run time); fromOperator are variables the file leaves to the
// operator (set to a stand-in when empty).
func gatewayConfig(t *testing.T, env map[string]string, fromOperator ...string) config.Config {
	t.Helper()
	dir := t.TempDir()
	getenv := func(name string) string {
		v := env[name]
		if v == "" && slices.Contains(fromOperator, name) {
			return "stand-in"
		}
		if base, ok := strings.CutSuffix(name, "_FILE"); ok && v != "" {
			standIn, known := secretStandIns[base]
			if !known {
				return v
			}
			path := filepath.Join(dir, base)
			if err := os.WriteFile(path, []byte(standIn), 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}
		return v
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		t.Fatalf("the gateway refuses this environment: %v", err)
	}
	return cfg
}
