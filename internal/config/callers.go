package config

import (
	"net/url"
	"os"
	"strings"

	"github.com/finplat/payment-batch-gateway/internal/auth"
)

// Who may call the gateway and from where. Secure by default: without any caller
// configured the gateway refuses to start, unless GATEWAY_AUTH=disabled says so.

func keyList(keys string) string {
	if keys == "" {
		return ""
	}
	if _, err := auth.ParseKeys([]byte(keys)); err != nil {
		return "is not a valid key list: " + err.Error()
	}
	return ""
}

func keyFile(path string) string {
	if path == "" {
		return ""
	}
	b, err := os.ReadFile(path) // #nosec G304 -- the operator's key file
	if err != nil {
		return "cannot be read: " + path
	}
	if _, err := auth.ParseKeys(b); err != nil {
		return "is not a valid key list: " + err.Error()
	}
	return ""
}

func jwksURL(v string) string {
	if v == "" {
		return ""
	}
	if u, err := url.Parse(v); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "must be an absolute https URL"
	}
	return ""
}

// corsOrigins refuses wildcards: go-chi/cors reads any * as one, and https://* would
// allow every site.
func corsOrigins(origins []string) string {
	for _, o := range origins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.User != nil ||
			strings.Contains(o, "*") {
			return "must list origins like https://portal.example.com (no path, no *)"
		}
	}
	return ""
}

// callers is the rule that some caller can be admitted, and that a JWT can be checked.
func callers(c *Config, fail func(string)) {
	if c.JWKSURL != "" && (c.JWTIssuer == "" || c.JWTAudience == "") {
		fail("GATEWAY_JWT_ISSUER and GATEWAY_JWT_AUDIENCE are required with GATEWAY_JWKS_URL")
	}
	if c.AuthDisabled() || c.APIKeysFile != "" || c.JWKSURL != "" {
		return // a key file may be empty at start and filled later
	}
	if keys, err := auth.ParseKeys([]byte(c.APIKeys)); c.APIKeys == "" || err != nil || keys.Len() == 0 {
		fail("no callers are configured: set GATEWAY_API_KEYS, GATEWAY_API_KEYS_FILE or GATEWAY_JWKS_URL " +
			"(see README: minting a key), or GATEWAY_AUTH=disabled for development")
	}
}
