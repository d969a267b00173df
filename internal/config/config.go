// Package config loads the gateway's configuration from the environment. Load takes the
// lookup function as an argument so tests never touch the process environment.
package config

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/internal/secretbox"
)

// Secret is a string that never prints itself.
type Secret string

// String masks the value so fmt, %v and errors cannot leak it.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "***"
}

// MarshalText masks the value for JSON and zerolog.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the value, for the one place that must send it.
func (s Secret) Reveal() string { return string(s) }

// Config is everything the gateway reads from its environment.
type Config struct {
	Addr string // GATEWAY_ADDR
	// AdminAddr, when set, is where /healthz, /readyz and /metrics are served instead of
	// Addr (GATEWAY_ADMIN_ADDR).
	AdminAddr string
	// PProf serves net/http/pprof under /debug/pprof/ on the admin listener, for profiling
	// (GATEWAY_PPROF, default false; needs GATEWAY_ADMIN_ADDR, never on GATEWAY_ADDR).
	PProf bool
	// ReadyConcurGrace is how long Concur must fail every readiness check before the
	// gateway reports not ready (GATEWAY_READY_CONCUR_GRACE).
	ReadyConcurGrace time.Duration

	ConcurBaseURL      string // CONCUR_BASE_URL
	ConcurTokenURL     string // CONCUR_TOKEN_URL
	ConcurClientID     string // CONCUR_CLIENT_ID
	ConcurClientSecret Secret // CONCUR_CLIENT_SECRET(_FILE)
	// ConcurRefreshToken seeds the credentials store. Concur rotates it; the newest lives
	// in the store, and the configured one is used again only when it changes (a person
	// re-authorised the gateway).
	ConcurRefreshToken Secret        // CONCUR_REFRESH_TOKEN(_FILE)
	ConcurAccessToken  Secret        // CONCUR_ACCESS_TOKEN(_FILE)
	ConcurAuthScheme   string        // CONCUR_AUTH_SCHEME
	ConcurTimeout      time.Duration // CONCUR_TIMEOUT

	// Resilience toward Concur (see concur.Config).
	ConcurBreakerThreshold    int           // CONCUR_BREAKER_THRESHOLD: consecutive failures that open the breaker
	ConcurBreakerOpenInterval time.Duration // CONCUR_BREAKER_OPEN_INTERVAL: how long it stays open before a probe
	ConcurMaxAttempts         int           // CONCUR_MAX_ATTEMPTS: tries of a batch list or file download; 1 = no retry
	ConcurMaxConcurrent       int           // CONCUR_MAX_CONCURRENT: calls in flight to Concur
	ConcurRateLimit           float64       // CONCUR_RATE_LIMIT: requests per second to Concur; 0 = off

	DataDir     string // GATEWAY_DATA_DIR: the SQLite database and the generated key
	DatabaseURL Secret // GATEWAY_DATABASE_URL(_FILE): postgres://… for PostgreSQL; empty for SQLite
	// SecretKey encrypts the stored Concur tokens: base64 of 32 bytes. Empty means a key
	// generated into DataDir (one instance only: replicas must share the key).
	SecretKey      Secret        // GATEWAY_SECRET_KEY(_FILE)
	IdempotencyTTL time.Duration // GATEWAY_IDEMPOTENCY_TTL

	// AuthDisabled turns caller authentication off (GATEWAY_AUTH=disabled): development only.
	AuthDisabled bool
	APIKeys      string   // GATEWAY_API_KEYS: JSON array of {name, sha256, scopes}
	APIKeysFile  string   // GATEWAY_API_KEYS_FILE: the same, in a file reloaded on change or SIGHUP
	JWKSURL      string   // GATEWAY_JWKS_URL: the identity provider's keys, for JWT callers
	JWTIssuer    string   // GATEWAY_JWT_ISSUER
	JWTAudience  string   // GATEWAY_JWT_AUDIENCE
	JWTScopes    string   // GATEWAY_JWT_SCOPE_CLAIM
	JWTName      string   // GATEWAY_JWT_NAME_CLAIM
	CORSOrigins  []string // GATEWAY_CORS_ORIGINS: comma-separated origins allowed to call from a browser
	RateLimit    int      // GATEWAY_RATE_LIMIT: requests per minute per caller; 0 = off

	// Downloads of payment files (batch.DownloadOptions).
	DownloadsPerCaller int           // GATEWAY_DOWNLOADS_PER_CALLER: at once per caller; 0 = no cap
	DownloadsMax       int           // GATEWAY_DOWNLOADS_MAX: at once in all (per replica); 0 = no cap
	DownloadMinRate    int           // GATEWAY_DOWNLOAD_MIN_RATE_BYTES_PER_SECOND: slower downloads are cut; 0 = off
	DownloadRateWindow time.Duration // GATEWAY_DOWNLOAD_RATE_WINDOW: what DownloadMinRate is averaged over

	// BatchListMinInterval bounds how often an unknown id may trigger a batch-list fetch.
	BatchListMinInterval time.Duration // GATEWAY_BATCH_LIST_MIN_INTERVAL

	LogLevel  zerolog.Level // LOG_LEVEL
	LogFormat string        // LOG_FORMAT

	// TracesEndpoint is the OTLP/HTTP URL spans are sent to: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
	// as is, or OTEL_EXPORTER_OTLP_ENDPOINT + "/v1/traces". Empty: tracing is off (also
	// with OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none).
	TracesEndpoint string
	ServiceName    string // OTEL_SERVICE_NAME
}

// StoreKind is "postgres" when GATEWAY_DATABASE_URL is a PostgreSQL URL, else "sqlite".
func (c Config) StoreKind() string {
	u := strings.ToLower(c.DatabaseURL.Reveal())
	if strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://") {
		return "postgres"
	}
	return "sqlite"
}

// UsesRefreshToken reports whether the gateway obtains tokens with the refresh-token grant
// (as opposed to a static development token).
func (c Config) UsesRefreshToken() bool { return c.ConcurAccessToken == "" }

// MarshalZerologObject logs the configuration with secrets masked.
func (c Config) MarshalZerologObject(e *zerolog.Event) {
	e.Str("addr", c.Addr).
		Str("adminAddr", c.AdminAddr).
		Bool("pprof", c.PProf).
		Dur("readyConcurGrace", c.ReadyConcurGrace).
		Str("tracesEndpoint", redactURL(c.TracesEndpoint)).
		Str("serviceName", c.ServiceName).
		Str("concurBaseUrl", c.ConcurBaseURL).
		Str("concurTokenUrl", c.ConcurTokenURL).
		Str("concurClientId", c.ConcurClientID).
		Stringer("concurClientSecret", c.ConcurClientSecret).
		Stringer("concurRefreshToken", c.ConcurRefreshToken).
		Stringer("concurAccessToken", c.ConcurAccessToken).
		Str("concurAuthScheme", c.ConcurAuthScheme).
		Dur("concurTimeout", c.ConcurTimeout).
		Dur("batchListMinInterval", c.BatchListMinInterval).
		Str("store", c.StoreKind()).
		Str("dataDir", c.DataDir).
		Stringer("databaseUrl", c.DatabaseURL).
		Stringer("secretKey", c.SecretKey).
		Dur("idempotencyTtl", c.IdempotencyTTL).
		Int("concurBreakerThreshold", c.ConcurBreakerThreshold).
		Dur("concurBreakerOpenInterval", c.ConcurBreakerOpenInterval).
		Int("concurMaxAttempts", c.ConcurMaxAttempts).
		Int("concurMaxConcurrent", c.ConcurMaxConcurrent).
		Float64("concurRateLimit", c.ConcurRateLimit).
		Bool("authDisabled", c.AuthDisabled).
		Bool("apiKeysSet", c.APIKeys != "").
		Str("apiKeysFile", c.APIKeysFile).
		Str("jwksUrl", c.JWKSURL).
		Str("jwtIssuer", c.JWTIssuer).
		Str("jwtAudience", c.JWTAudience).
		Strs("corsOrigins", c.CORSOrigins).
		Int("rateLimit", c.RateLimit).
		Int("downloadsPerCaller", c.DownloadsPerCaller).
		Int("downloadsMax", c.DownloadsMax).
		Int("downloadMinRate", c.DownloadMinRate).
		Dur("downloadRateWindow", c.DownloadRateWindow).
		Str("logLevel", c.LogLevel.String()).
		Str("logFormat", c.LogFormat)
}

// Load reads the configuration through getenv and validates it, reporting every problem
// at once. A variable NAME_FILE, where allowed, names a file holding the secret.
func Load(getenv func(string) string) (Config, error) {
	l := loader{getenv: getenv}
	c := Config{
		Addr:               l.str("GATEWAY_ADDR", ":8080"),
		ConcurBaseURL:      strings.TrimRight(l.str("CONCUR_BASE_URL", ""), "/"),
		ConcurClientID:     l.str("CONCUR_CLIENT_ID", ""),
		ConcurClientSecret: l.secret("CONCUR_CLIENT_SECRET"),
		ConcurRefreshToken: l.secret("CONCUR_REFRESH_TOKEN"),
		ConcurAccessToken:  l.secret("CONCUR_ACCESS_TOKEN"),
		ConcurAuthScheme:   authScheme(l.str("CONCUR_AUTH_SCHEME", "Bearer")),
		ConcurTimeout:      l.duration("CONCUR_TIMEOUT", 60*time.Second),

		ConcurBreakerThreshold:    l.integer("CONCUR_BREAKER_THRESHOLD", 5),
		ConcurBreakerOpenInterval: l.duration("CONCUR_BREAKER_OPEN_INTERVAL", 30*time.Second),
		ConcurMaxAttempts:         l.integer("CONCUR_MAX_ATTEMPTS", 3),
		ConcurMaxConcurrent:       l.integer("CONCUR_MAX_CONCURRENT", 8),
		ConcurRateLimit:           l.number("CONCUR_RATE_LIMIT", 0),

		BatchListMinInterval: l.duration("GATEWAY_BATCH_LIST_MIN_INTERVAL", 10*time.Second),
		LogFormat:            l.str("LOG_FORMAT", "json"),
		DataDir:              l.str("GATEWAY_DATA_DIR", "./data"),
		DatabaseURL:          l.secret("GATEWAY_DATABASE_URL"),
		SecretKey:            l.secret("GATEWAY_SECRET_KEY"),
		IdempotencyTTL:       l.duration("GATEWAY_IDEMPOTENCY_TTL", 24*time.Hour),
		APIKeys:              l.str("GATEWAY_API_KEYS", ""),
		APIKeysFile:          l.str("GATEWAY_API_KEYS_FILE", ""),
		JWKSURL:              l.str("GATEWAY_JWKS_URL", ""),
		JWTIssuer:            l.str("GATEWAY_JWT_ISSUER", ""),
		JWTAudience:          l.str("GATEWAY_JWT_AUDIENCE", ""),
		JWTScopes:            l.str("GATEWAY_JWT_SCOPE_CLAIM", "scope"),
		JWTName:              l.str("GATEWAY_JWT_NAME_CLAIM", ""),
		RateLimit:            l.integer("GATEWAY_RATE_LIMIT", 600),
		DownloadsPerCaller:   l.integer("GATEWAY_DOWNLOADS_PER_CALLER", 2),
		DownloadsMax:         l.integer("GATEWAY_DOWNLOADS_MAX", 16),
		DownloadMinRate:      l.integer("GATEWAY_DOWNLOAD_MIN_RATE_BYTES_PER_SECOND", 16384),
		DownloadRateWindow:   l.duration("GATEWAY_DOWNLOAD_RATE_WINDOW", 30*time.Second),
		AdminAddr:            l.str("GATEWAY_ADMIN_ADDR", ""),
		ReadyConcurGrace:     l.duration("GATEWAY_READY_CONCUR_GRACE", time.Minute),
		ServiceName:          l.str("OTEL_SERVICE_NAME", "payment-batch-gateway"),
	}
	l.callers(&c)
	l.tracing(&c)
	c.ConcurTokenURL = l.str("CONCUR_TOKEN_URL", "")
	if c.ConcurTokenURL == "" && c.ConcurBaseURL != "" {
		c.ConcurTokenURL = c.ConcurBaseURL + "/oauth2/v0/token"
	}

	if lvl, err := zerolog.ParseLevel(strings.ToLower(l.str("LOG_LEVEL", "info"))); err != nil || lvl == zerolog.NoLevel {
		l.fail("LOG_LEVEL must be one of trace, debug, info, warn, error")
	} else {
		c.LogLevel = lvl
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		l.fail("LOG_FORMAT must be json or console")
	}
	if c.Addr == "" {
		l.fail("GATEWAY_ADDR must not be empty")
	}
	if u := l.httpURL("CONCUR_BASE_URL", c.ConcurBaseURL, true); u != nil && (u.Path != "" || u.RawQuery != "" || u.Fragment != "") {
		l.fail("CONCUR_BASE_URL must be an origin such as https://us.api.concursolutions.com, without a path or query")
	}
	if u := l.httpURL("CONCUR_TOKEN_URL", c.ConcurTokenURL, c.UsesRefreshToken()); u != nil &&
		u.Scheme == "http" && strings.HasPrefix(c.ConcurBaseURL, "https://") {
		l.fail("CONCUR_TOKEN_URL must be https when CONCUR_BASE_URL is: the client secret travels to it")
	}
	switch c.ConcurAuthScheme {
	case "Bearer", "OAuth":
	default:
		l.fail("CONCUR_AUTH_SCHEME must be Bearer or OAuth")
	}
	if c.DatabaseURL != "" && c.StoreKind() != "postgres" {
		l.fail("GATEWAY_DATABASE_URL must be a postgres:// or postgresql:// URL (leave it empty for SQLite in GATEWAY_DATA_DIR)")
	}
	if c.SecretKey != "" {
		if _, err := secretbox.ParseKey(c.SecretKey.Reveal()); err != nil {
			l.fail("GATEWAY_SECRET_KEY must be the base64 of 32 random bytes (e.g. openssl rand -base64 32)")
		}
	}
	if c.IdempotencyTTL < time.Minute {
		l.fail("GATEWAY_IDEMPOTENCY_TTL must be at least 1m")
	}
	if c.ConcurTimeout <= 0 {
		l.fail("CONCUR_TIMEOUT must be a positive duration such as 60s")
	}
	for name, v := range map[string]int{
		"CONCUR_BREAKER_THRESHOLD": c.ConcurBreakerThreshold,
		"CONCUR_MAX_ATTEMPTS":      c.ConcurMaxAttempts,
		"CONCUR_MAX_CONCURRENT":    c.ConcurMaxConcurrent,
	} {
		if v < 1 || v > 10000 {
			l.fail(fmt.Sprintf("%s must be a whole number from 1 to 10000", name))
		}
	}
	if c.ConcurBreakerOpenInterval < time.Second {
		l.fail("CONCUR_BREAKER_OPEN_INTERVAL must be at least 1s")
	}
	if c.ReadyConcurGrace < 0 {
		l.fail("GATEWAY_READY_CONCUR_GRACE must not be negative")
	}
	if c.AdminAddr != "" && c.AdminAddr == c.Addr && !strings.HasSuffix(c.Addr, ":0") {
		l.fail("GATEWAY_ADMIN_ADDR must differ from GATEWAY_ADDR (leave it empty to serve both on one listener)")
	}
	switch v := strings.ToLower(l.str("GATEWAY_PPROF", "false")); v {
	case "false", "0":
	case "true", "1":
		c.PProf = true
		if c.AdminAddr == "" {
			l.fail("GATEWAY_PPROF needs GATEWAY_ADMIN_ADDR: profiles are served on the admin listener only")
		}
	default:
		l.fail("GATEWAY_PPROF must be true or false")
	}
	if c.DownloadRateWindow < time.Second {
		l.fail("GATEWAY_DOWNLOAD_RATE_WINDOW must be at least 1s")
	}
	if c.DownloadsPerCaller > 0 && c.DownloadsMax > 0 && c.DownloadsPerCaller > c.DownloadsMax {
		l.fail("GATEWAY_DOWNLOADS_PER_CALLER must not exceed GATEWAY_DOWNLOADS_MAX")
	}
	if c.BatchListMinInterval < 0 {
		l.fail("GATEWAY_BATCH_LIST_MIN_INTERVAL must not be negative")
	}
	if c.UsesRefreshToken() {
		for name, v := range map[string]string{
			"CONCUR_CLIENT_ID":     c.ConcurClientID,
			"CONCUR_CLIENT_SECRET": string(c.ConcurClientSecret),
			"CONCUR_REFRESH_TOKEN": string(c.ConcurRefreshToken),
		} {
			if v == "" {
				l.fail(name + " is required (or set CONCUR_ACCESS_TOKEN for a static development token)")
			}
		}
	}
	return c, l.err()
}

type loader struct {
	getenv   func(string) string
	problems []string
}

func (l *loader) fail(msg string) { l.problems = append(l.problems, msg) }

func (l *loader) err() error {
	if len(l.problems) == 0 {
		return nil
	}
	slices.Sort(l.problems)
	return errors.New("invalid configuration:\n  - " + strings.Join(l.problems, "\n  - "))
}

func (l *loader) str(name, def string) string {
	if v := strings.TrimSpace(l.getenv(name)); v != "" {
		return v
	}
	return def
}

func (l *loader) integer(name string, def int) int {
	v := l.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		l.fail(fmt.Sprintf("%s must be a whole number, 0 or more (got %q)", name, v))
		return def
	}
	return n
}

func (l *loader) number(name string, def float64) float64 {
	v := l.str(name, "")
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		l.fail(fmt.Sprintf("%s must be a number, 0 or more (got %q)", name, v))
		return def
	}
	return f
}

func (l *loader) duration(name string, def time.Duration) time.Duration {
	v := l.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		l.fail(fmt.Sprintf("%s must be a duration such as 30s (got %q)", name, v))
		return def
	}
	return d
}

// secret reads NAME, or the file named by NAME_FILE; setting both is an error.
func (l *loader) secret(name string) Secret {
	v, file := l.getenv(name), strings.TrimSpace(l.getenv(name+"_FILE"))
	switch {
	case v != "" && file != "":
		l.fail(fmt.Sprintf("set %s or %s_FILE, not both", name, name))
		return ""
	case file != "":
		b, err := os.ReadFile(file) // #nosec G304 -- NAME_FILE names the operator's secret file
		if err != nil {
			l.fail(fmt.Sprintf("%s_FILE: cannot read %s", name, file))
			return ""
		}
		return Secret(strings.TrimSpace(string(b)))
	}
	return Secret(strings.TrimSpace(v))
}

// httpURL checks an absolute http(s) URL and returns it parsed, or nil after a failure.
func (l *loader) httpURL(name, v string, required bool) *url.URL {
	if v == "" {
		if required {
			l.fail(name + " is required")
		}
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		l.fail(name + " must be an absolute http(s) URL without credentials")
		return nil
	}
	return u
}

// authScheme accepts the scheme in any case and returns Concur's spelling.
func authScheme(v string) string {
	switch {
	case strings.EqualFold(v, "Bearer"):
		return "Bearer"
	case strings.EqualFold(v, "OAuth"):
		return "OAuth"
	}
	return v
}
