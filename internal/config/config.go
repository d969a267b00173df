// Package config loads the gateway's configuration from the environment. Load takes the
// lookup function as an argument so tests never touch the process environment.
//
// Every variable is declared once, in settings (settings.go): its name, default, unit,
// whether it is a secret, and a line of documentation, with the field it sets and the rule
// its value keeps. That one table is what Load reads, what the start-up log line prints
// (log.go) and what README.md's configuration table is rendered from; rules.go holds the
// checks that tie several variables together. It imports, of ours, only internal/auth (to
// check the API keys) and internal/secretbox (to check the secret key).
package config

import (
	"cmp"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
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

// Config is everything the gateway reads from its environment; settings says which
// variable sets which field.
type Config struct {
	Addr             string
	AdminAddr        string // empty: the admin endpoints are served on Addr
	PProf            bool   // needs AdminAddr
	ReadyConcurGrace time.Duration

	ConcurBaseURL      string // an origin, without a trailing slash
	ConcurTokenURL     string // defaults to ConcurBaseURL + "/oauth2/v0/token"
	tokenURLSet        bool   // CONCUR_TOKEN_URL was set, not defaulted
	ConcurClientID     string
	ConcurClientSecret Secret
	// ConcurRefreshToken seeds the credentials store. Concur rotates it; the newest lives
	// in the store, and the configured one is used again only when it changes (a person
	// re-authorised the gateway).
	ConcurRefreshToken Secret
	// ConcurRefreshKeepAlive is the keep-alive's margin (concur.Config.RefreshKeepAlive).
	ConcurRefreshKeepAlive time.Duration
	// ConcurCompanyUUID and ConcurRequestToken are `gateway authorize`'s: the service
	// ignores them.
	ConcurCompanyUUID  string
	ConcurRequestToken Secret
	ConcurAccessToken  Secret // a static development token instead of the three above
	ConcurAuthScheme   string // "Bearer" or "OAuth"
	ConcurTimeout      time.Duration

	// Resilience toward Concur (see concur.Config).
	ConcurBreakerThreshold    int
	ConcurBreakerOpenInterval time.Duration
	ConcurMaxAttempts         int
	ConcurMaxConcurrent       int
	ConcurRateLimitPerSecond  float64 // 0: off

	BatchListMinInterval time.Duration

	DataDir     string // the SQLite database and the generated key
	DatabaseURL Secret // postgres://… for PostgreSQL; empty for SQLite
	// SecretKey encrypts the stored Concur tokens: base64 of 32 bytes. Empty means a key
	// generated into DataDir (one instance only: replicas must share the key).
	SecretKey      Secret
	IdempotencyTTL time.Duration

	APIKeys            string // JSON array of {name, sha256, scopes}
	APIKeysFile        string // the same, in a file reloaded on change or SIGHUP
	JWKSURL            string
	JWTIssuer          string
	JWTAudience        string
	JWTScopes          string // the claim that carries the scopes
	JWTName            string // the claim that names the caller
	Auth               string // "enabled" or "disabled" (development only)
	CORSOrigins        []string
	RateLimitPerMinute int // per caller; 0: off

	// Downloads of payment files (batch.DownloadOptions).
	DownloadsPerCaller int // at once per caller; 0: no cap
	DownloadsMax       int // at once in all (per replica); 0: no cap
	DownloadMinRate    int // bytes per second; slower downloads are cut; 0: off
	DownloadRateWindow time.Duration

	// TracesEndpoint is the OTLP/HTTP URL spans are sent to: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
	// as is, or OTEL_EXPORTER_OTLP_ENDPOINT + "/v1/traces". Empty: tracing is off (also
	// with OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none).
	TracesEndpoint string
	ServiceName    string

	LogLevel  zerolog.Level
	LogFormat string // "json" or "console"

	// Warnings are for the start-up log: old names of variables still in use.
	Warnings []string

	// The OpenTelemetry variables TracesEndpoint is made of (telemetry.go).
	otel struct{ sdkDisabled, exporter, protocol, tracesProtocol, endpoint, tracesEndpoint string }
}

// Load reads the configuration through getenv and validates it, reporting every problem
// at once. A secret's variable NAME may instead be NAME_FILE, the path of a file that
// holds it.
func Load(getenv func(string) string) (Config, error) {
	return load(getenv, callers)
}

// LoadAuthorize reads the configuration as Load does, for `gateway authorize`, which
// runs with the service's environment: it needs no callers (it serves nothing), and it
// needs the company and its request token (CONCUR_REQUEST_TOKEN may be left for a prompt).
func LoadAuthorize(getenv func(string) string) (Config, error) {
	return load(getenv, func(c *Config, fail func(string)) {
		switch {
		case !c.UsesRefreshToken():
			fail("CONCUR_ACCESS_TOKEN is set: a static development token has no grant to authorize (unset it)")
		case c.ConcurCompanyUUID == "":
			fail("CONCUR_COMPANY_UUID is required: the company UUID shown with the company request token")
		}
	})
}

// load reads every setting, checks it and the rules, then purpose's own rule (the
// service's callers; authorize's company).
func load(getenv func(string) string, purpose func(c *Config, fail func(string))) (Config, error) {
	var c Config
	l := loader{getenv: getenv}
	checked := l.read(&c, settings)
	c.derive()
	l.check(&c, checked)
	for _, rule := range rules {
		rule(&c, l.fail)
	}
	purpose(&c, l.fail)
	c.Warnings = l.warnings
	return c, l.err()
}

// LoadListen reads, as Load does (its defaults, trimming and checks), only the listen
// addresses: GATEWAY_ADDR and GATEWAY_ADMIN_ADDR. It is for `gateway healthcheck`, which
// runs with the service's environment and must fail on no other setting: the running
// service keeps its callers when GATEWAY_API_KEYS_FILE turns invalid, and so stays healthy.
func LoadListen(getenv func(string) string) (Config, error) {
	var c Config
	l := loader{getenv: getenv}
	listen := slices.DeleteFunc(slices.Clone(settings), func(s setting) bool {
		f := s.field(&c)
		return f != any(&c.Addr) && f != any(&c.AdminAddr)
	})
	l.check(&c, l.read(&c, listen))
	return c, l.err()
}

// HealthAddr is where /healthz is served: AdminAddr when set, else Addr.
func (c Config) HealthAddr() string { return cmp.Or(c.AdminAddr, c.Addr) }

// check runs the check of each setting in checked.
func (l *loader) check(c *Config, checked []setting) {
	for _, s := range checked {
		if msg := s.check(c); msg != "" {
			l.fail(s.name + " " + msg)
		}
	}
}

// derive fills in what follows from other settings.
func (c *Config) derive() {
	c.ConcurBaseURL = strings.TrimRight(c.ConcurBaseURL, "/")
	c.tokenURLSet = c.ConcurTokenURL != ""
	if c.ConcurTokenURL == "" && c.ConcurBaseURL != "" {
		c.ConcurTokenURL = c.ConcurBaseURL + "/oauth2/v0/token"
	}
	c.TracesEndpoint = c.tracesEndpoint()
}

// GLZTokenURL is Concur's global token endpoint, the one its documentation names for the
// company request token grant.
const GLZTokenURL = "https://glz.api.concursolutions.com/oauth2/v0/token" // #nosec G101 -- a URL, not a credential

// AuthorizeTokenURL is where `gateway authorize` exchanges the company request token:
// CONCUR_TOKEN_URL when set; else GLZ when CONCUR_BASE_URL is one of Concur's production
// hosts; else the base's token endpoint (an implementation host such as us-impl, whose
// companies GLZ does not hold; the simulator; a test).
func (c Config) AuthorizeTokenURL() string {
	if !c.tokenURLSet {
		if u, err := url.Parse(c.ConcurBaseURL); err == nil && u.Scheme == "https" {
			host := strings.ToLower(u.Hostname())
			if strings.HasSuffix(host, ".concursolutions.com") && !strings.Contains(host, "-impl.") {
				return GLZTokenURL
			}
		}
	}
	return c.ConcurTokenURL
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

// AuthDisabled reports whether caller authentication is off (GATEWAY_AUTH=disabled).
func (c Config) AuthDisabled() bool { return c.Auth == "disabled" }

// ConcurRateBurst is how many requests may go to Concur at once under its rate limit:
// one second's worth, at least one.
func (c Config) ConcurRateBurst() int { return max(1, int(c.ConcurRateLimitPerSecond)) }
