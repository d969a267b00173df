package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/secretbox"
)

// rules are the checks that tie several variables together (Load also checks the callers,
// callers.go). They run after every
// variable is read and checked; each reports what it finds through fail.
var rules = []func(c *Config, fail func(string)){
	func(c *Config, fail func(string)) {
		if u, err := url.Parse(c.ConcurTokenURL); err == nil && u.Scheme == "http" && strings.HasPrefix(c.ConcurBaseURL, "https://") {
			fail("CONCUR_TOKEN_URL must be https when CONCUR_BASE_URL is: the client secret travels to it")
		}
	},
	func(c *Config, fail func(string)) {
		if c.IdempotencyTTL >= time.Minute && c.IdempotencyTTL < c.CloseLease() {
			fail(fmt.Sprintf("GATEWAY_IDEMPOTENCY_TTL (%v) must outlast the longest close (%v, from CONCUR_TIMEOUT): "+
				"a key must not expire while its close runs", c.IdempotencyTTL, c.CloseLease()))
		}
	},
	func(c *Config, fail func(string)) {
		if c.AdminAddr != "" && c.AdminAddr == c.Addr && !strings.HasSuffix(c.Addr, ":0") {
			fail("GATEWAY_ADMIN_ADDR must differ from GATEWAY_ADDR (leave it empty to serve both on one listener)")
		}
	},
	func(c *Config, fail func(string)) {
		if c.PProf && c.AdminAddr == "" {
			fail("GATEWAY_PPROF needs GATEWAY_ADMIN_ADDR: profiles are served on the admin listener only")
		}
	},
	func(c *Config, fail func(string)) {
		if c.DownloadsPerCaller > 0 && c.DownloadsMax > 0 && c.DownloadsPerCaller > c.DownloadsMax {
			fail("GATEWAY_DOWNLOADS_PER_CALLER must not exceed GATEWAY_DOWNLOADS_MAX")
		}
	},
}

// The checks of single values: each says what is wrong, after the variable's name, or "".

func atLeast(d, least time.Duration) string {
	switch {
	case d >= least:
		return ""
	case least == 0:
		return "must not be negative"
	}
	return "must be at least " + short(least)
}

// short writes 1m rather than 1m0s.
func short(d time.Duration) string {
	return strings.TrimSuffix(strings.TrimSuffix(d.String(), "0s"), "0m")
}

// hostPort checks a listen address (empty: unset): host:port, the host may be empty.
func hostPort(v string) string {
	if v == "" {
		return ""
	}
	if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
		return fmt.Sprintf("must be host:port, e.g. :8080 (got %q)", v)
	}
	return ""
}

func positive(d time.Duration) string {
	if d <= 0 {
		return "must be a positive duration such as 60s"
	}
	return ""
}

func between(n, least, most int) string {
	if n < least || n > most {
		return fmt.Sprintf("must be a whole number from %d to %d", least, most)
	}
	return ""
}

func durationBetween(d, least, most time.Duration) string {
	if d < least || d > most {
		return "must be a duration from " + short(least) + " to " + short(most)
	}
	return ""
}

// httpURL checks an absolute http(s) URL without credentials.
func httpURL(v string, required bool) string {
	if v == "" {
		if required {
			return "is required"
		}
		return ""
	}
	if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "must be an absolute http(s) URL without credentials"
	}
	return ""
}

// origin checks a required http(s) origin: no path, query or fragment.
func origin(v string) string {
	if msg := httpURL(v, true); msg != "" {
		return msg
	}
	if u, _ := url.Parse(v); u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return "must be an origin such as https://us2.api.concursolutions.com, without a path or query"
	}
	return ""
}

func requiredForRefresh(c *Config, v string) string {
	if c.UsesRefreshToken() && v == "" {
		return "is required (or set CONCUR_ACCESS_TOKEN for a static development token)"
	}
	return ""
}

func postgresURL(c *Config) string {
	if c.DatabaseURL != "" && c.StoreKind() != "postgres" {
		return "must be a postgres:// or postgresql:// URL (leave it empty for SQLite in GATEWAY_DATA_DIR)"
	}
	return ""
}

func secretKey(key Secret) string {
	if key == "" {
		return ""
	}
	if _, err := secretbox.ParseKey(key.Reveal()); err != nil {
		return "must be the base64 of 32 random bytes (e.g. openssl rand -base64 32)"
	}
	return ""
}
