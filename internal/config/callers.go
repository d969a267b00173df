package config

import (
	"net/url"
	"os"
	"strings"

	"github.com/finplat/payment-batch-gateway/internal/auth"
)

// callers reads who may call the gateway and from where. Secure by default: without any
// caller configured the gateway refuses to start, unless GATEWAY_AUTH=disabled says so.
func (l *loader) callers(c *Config) {
	switch mode := strings.ToLower(l.str("GATEWAY_AUTH", "enabled")); mode {
	case "enabled":
	case "disabled":
		c.AuthDisabled = true
	default:
		l.fail("GATEWAY_AUTH must be enabled or disabled")
	}
	keys := 0
	if c.APIKeys != "" {
		set, err := auth.ParseKeys([]byte(c.APIKeys))
		if err != nil {
			l.fail("GATEWAY_API_KEYS: " + err.Error())
		} else {
			keys += set.Len()
		}
	}
	if c.APIKeysFile != "" {
		b, err := os.ReadFile(c.APIKeysFile)
		if err != nil {
			l.fail("GATEWAY_API_KEYS_FILE: cannot read " + c.APIKeysFile)
		} else if set, err := auth.ParseKeys(b); err != nil {
			l.fail("GATEWAY_API_KEYS_FILE: " + err.Error())
		} else {
			keys += set.Len()
		}
	}
	if c.JWKSURL != "" {
		if u, err := url.Parse(c.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			l.fail("GATEWAY_JWKS_URL must be an absolute https URL")
		}
		if c.JWTIssuer == "" || c.JWTAudience == "" {
			l.fail("GATEWAY_JWT_ISSUER and GATEWAY_JWT_AUDIENCE are required with GATEWAY_JWKS_URL")
		}
	}
	if !c.AuthDisabled && keys == 0 && c.APIKeysFile == "" && c.JWKSURL == "" {
		l.fail("no callers are configured: set GATEWAY_API_KEYS, GATEWAY_API_KEYS_FILE or GATEWAY_JWKS_URL " +
			"(see README: minting a key), or GATEWAY_AUTH=disabled for development")
	}
	for o := range strings.SplitSeq(l.str("GATEWAY_CORS_ORIGINS", ""), ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		u, err := url.Parse(o)
		// go-chi/cors reads any * as a wildcard: https://* would allow every site.
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.User != nil ||
			strings.Contains(o, "*") {
			l.fail("GATEWAY_CORS_ORIGINS: each origin must be like https://portal.example.com (no path, no *)")
			continue
		}
		c.CORSOrigins = append(c.CORSOrigins, o)
	}
}
