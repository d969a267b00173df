package config

import "time"

// A setting is one environment variable, declared once: Load reads it into its field and
// checks it, the start-up log line prints it (masked when secret), and README.md's table
// is rendered from it (TestREADMEConfigTable).
type setting struct {
	name    string
	old     string   // the name it had before: still read, with a warning in the start-up log
	def     string   // the value when it is unset or blank, as it would be written
	unit    string   // what a number counts (README); durations and choices say so themselves
	secret  bool     // masked in the log; NAME_FILE may name a file that holds it
	quiet   bool     // the log says only whether it is set (a long value, of hashes)
	choices []string // the values it may take, in any case; stored as spelled here
	doc     string   // markdown for the README, one line
	// field points at the field it sets: a *string, *Secret, *int, *float64,
	// *time.Duration, *bool, *[]string (comma-separated) or *zerolog.Level.
	field func(*Config) any
	// check says what is wrong with the value, after its name ("must be at least 1m"), or
	// "". It runs after every variable is read, when the value parsed.
	check func(*Config) string
}

// settings is the gateway's configuration, in the README's order.
var settings = []setting{
	{name: "GATEWAY_ADDR", def: ":8080", unit: "host:port", doc: "listen address",
		field: func(c *Config) any { return &c.Addr },
		check: func(c *Config) string { return hostPort(c.Addr) }},
	{name: "CONCUR_BASE_URL", unit: "URL",
		doc: "required: the Concur API origin of your company's data centre, e.g. `https://us2.api.concursolutions.com` " +
			"(no path). Calls go to the geolocation Concur names in its token answers when there is one",
		field: func(c *Config) any { return &c.ConcurBaseURL },
		check: func(c *Config) string { return origin(c.ConcurBaseURL) }},
	{name: "CONCUR_TOKEN_URL", unit: "URL",
		doc: "OAuth2 token endpoint for a grant that names no geolocation; unset: `$CONCUR_BASE_URL/oauth2/v0/token`, and for " +
			"`gateway authorize` Concur's GLZ endpoint `" + GLZTokenURL + "` when the base is a Concur production host. " +
			"Must be https when the base is",
		field: func(c *Config) any { return &c.ConcurTokenURL },
		check: func(c *Config) string { return httpURL(c.ConcurTokenURL, c.UsesRefreshToken()) }},
	{name: "CONCUR_CLIENT_ID", doc: "OAuth2 client id of the app registered with the `PAYBAT` scope (required unless `CONCUR_ACCESS_TOKEN` is set)",
		field: func(c *Config) any { return &c.ConcurClientID },
		check: func(c *Config) string { return requiredForRefresh(c, c.ConcurClientID) }},
	{name: "CONCUR_CLIENT_SECRET", secret: true, doc: "OAuth2 client secret (required unless `CONCUR_ACCESS_TOKEN` is set)",
		field: func(c *Config) any { return &c.ConcurClientSecret },
		check: func(c *Config) string { return requiredForRefresh(c, string(c.ConcurClientSecret)) }},
	{name: "CONCUR_COMPANY_UUID", unit: "UUID",
		doc:   "read by `gateway authorize` only: the Concur company's UUID, shown with the company request token",
		field: func(c *Config) any { return &c.ConcurCompanyUUID }},
	{name: "CONCUR_REQUEST_TOKEN", secret: true,
		doc: "read by `gateway authorize` only: the company request token a Concur administrator generated for the app " +
			"(valid 24 hours); unset on a terminal, `gateway authorize` asks for it without echo. Never stored",
		field: func(c *Config) any { return &c.ConcurRequestToken }},
	{name: "CONCUR_REFRESH_TOKEN", secret: true,
		doc: "optional *seed*, instead of `gateway authorize`: a company-level refresh token obtained by hand. Concur rotates it; " +
			"the newest lives in the store (encrypted), written before the new access token is used. The configured one is " +
			"redeemed only if it was never redeemed before, i.e. when a person re-authorised the gateway with a new one",
		field: func(c *Config) any { return &c.ConcurRefreshToken }},
	{name: "CONCUR_REFRESH_KEEPALIVE", def: "720h",
		doc: "the grant is renewed on its own once its refresh token (Concur: six months) expires within this, so that an idle " +
			"gateway keeps it; within it, `/readyz` and the log warn. Alert on `gateway_concur_refresh_token_expiry_timestamp_seconds`",
		field: func(c *Config) any { return &c.ConcurRefreshKeepAlive },
		check: func(c *Config) string {
			return durationBetween(c.ConcurRefreshKeepAlive, time.Second, 150*24*time.Hour)
		}},
	{name: "CONCUR_ACCESS_TOKEN", secret: true, doc: "static token for development instead of a grant; never refreshed",
		field: func(c *Config) any { return &c.ConcurAccessToken }},
	{name: "CONCUR_AUTH_SCHEME", def: "Bearer", choices: []string{"Bearer", "OAuth"},
		doc:   "`OAuth` is the legacy form of the reference page",
		field: func(c *Config) any { return &c.ConcurAuthScheme }},
	{name: "CONCUR_TIMEOUT", def: "60s", doc: "time-out of each Concur call (Concur promises an answer within 60 s)",
		field: func(c *Config) any { return &c.ConcurTimeout },
		check: func(c *Config) string { return positive(c.ConcurTimeout) }},
	{name: "CONCUR_BREAKER_THRESHOLD", def: "5", unit: "consecutive failures",
		doc:   "consecutive Concur failures (5xx, time-outs, connection errors; never a 4xx) that open the circuit breaker",
		field: func(c *Config) any { return &c.ConcurBreakerThreshold },
		check: func(c *Config) string { return between(c.ConcurBreakerThreshold, 1, 10000) }},
	{name: "CONCUR_BREAKER_OPEN_INTERVAL", def: "30s",
		doc:   "how long an open breaker answers `503 upstream_unavailable` at once before it lets one probe through",
		field: func(c *Config) any { return &c.ConcurBreakerOpenInterval },
		check: func(c *Config) string { return atLeast(c.ConcurBreakerOpenInterval, time.Second) }},
	{name: "CONCUR_MAX_ATTEMPTS", def: "3", unit: "tries",
		doc: "tries of a batch list or a file download (back-off with jitter, `Retry-After` honoured, within " +
			"2 × `CONCUR_TIMEOUT`); a close is never retried; `1` turns retries off",
		field: func(c *Config) any { return &c.ConcurMaxAttempts },
		check: func(c *Config) string { return between(c.ConcurMaxAttempts, 1, 10000) }},
	{name: "CONCUR_MAX_CONCURRENT", def: "8", unit: "calls in flight",
		doc:   "calls in flight to Concur per gateway process; more wait for a slot (at most `CONCUR_TIMEOUT`)",
		field: func(c *Config) any { return &c.ConcurMaxConcurrent },
		check: func(c *Config) string { return between(c.ConcurMaxConcurrent, 1, 10000) }},
	{name: "CONCUR_RATE_LIMIT_PER_SECOND", old: "CONCUR_RATE_LIMIT", def: "0", unit: "requests per second",
		doc:   "requests sent to Concur per gateway process (`0`: no limit); a fraction such as `0.5` is one every 2 s",
		field: func(c *Config) any { return &c.ConcurRateLimitPerSecond }},
	{name: "GATEWAY_BATCH_LIST_MIN_INTERVAL", def: "10s",
		doc: "least time between two batch-list fetches caused by unknown ids or by reads (`GET /batches`, " +
			"`GET /batches/{id}`): also how old a read's data may be",
		field: func(c *Config) any { return &c.BatchListMinInterval },
		check: func(c *Config) string { return atLeast(c.BatchListMinInterval, 0) }},
	{name: "GATEWAY_DATA_DIR", def: "./data", unit: "directory",
		doc:   "where the SQLite database (`gateway.db`) and a generated key live (created 0700)",
		field: func(c *Config) any { return &c.DataDir }},
	{name: "GATEWAY_DATABASE_URL", secret: true, unit: "URL",
		doc:   "`postgres://…` or `postgresql://…` to use PostgreSQL instead of SQLite; required for replicas",
		field: func(c *Config) any { return &c.DatabaseURL },
		check: func(c *Config) string { return postgresURL(c) }},
	{name: "GATEWAY_SECRET_KEY", secret: true, unit: "base64",
		doc: "base64 of 32 random bytes (`openssl rand -base64 32`): the AES-256-GCM key that encrypts the stored Concur " +
			"tokens. Unset, one is generated into `GATEWAY_DATA_DIR/secret.key` on first start, with a warning: fine for " +
			"one instance; replicas must all get the same key",
		field: func(c *Config) any { return &c.SecretKey },
		check: func(c *Config) string { return secretKey(c.SecretKey) }},
	{name: "GATEWAY_IDEMPOTENCY_TTL", def: "24h",
		doc: "how long an `Idempotency-Key` and its answer are kept: at least `1m`, and longer than the longest close " +
			"(15 × `CONCUR_TIMEOUT` + 1m: 16m with the default)",
		field: func(c *Config) any { return &c.IdempotencyTTL },
		check: func(c *Config) string { return atLeast(c.IdempotencyTTL, time.Minute) }},
	{name: "GATEWAY_API_KEYS", unit: "JSON", quiet: true,
		doc:   "callers' API keys: a JSON array of `{\"name\",\"sha256\",\"scopes\"}` (see [Callers](#callers))",
		field: func(c *Config) any { return &c.APIKeys },
		check: func(c *Config) string { return keyList(c.APIKeys) }},
	{name: "GATEWAY_API_KEYS_FILE", unit: "path",
		doc:   "the same in a file, reloaded on change (checked every 5 s) and on SIGHUP; an invalid file keeps the keys in use",
		field: func(c *Config) any { return &c.APIKeysFile },
		check: func(c *Config) string { return keyFile(c.APIKeysFile) }},
	{name: "GATEWAY_JWKS_URL", unit: "URL",
		doc:   "accept JWTs from the company identity provider, whose keys are here (with the issuer and audience below)",
		field: func(c *Config) any { return &c.JWKSURL },
		check: func(c *Config) string { return jwksURL(c.JWKSURL) }},
	{name: "GATEWAY_JWT_ISSUER", doc: "the JWTs' `iss` (required with `GATEWAY_JWKS_URL`)",
		field: func(c *Config) any { return &c.JWTIssuer }},
	{name: "GATEWAY_JWT_AUDIENCE", doc: "the JWTs' `aud` (required with `GATEWAY_JWKS_URL`)",
		field: func(c *Config) any { return &c.JWTAudience }},
	{name: "GATEWAY_JWT_SCOPE_CLAIM", def: "scope", doc: "where a JWT carries its scopes (space-separated string or array)",
		field: func(c *Config) any { return &c.JWTScopes }},
	{name: "GATEWAY_JWT_NAME_CLAIM", doc: "where a JWT names its caller; unset: the first of `client_id`, `azp`, `sub`",
		field: func(c *Config) any { return &c.JWTName }},
	{name: "GATEWAY_AUTH", def: "enabled", choices: []string{"enabled", "disabled"},
		doc: "`disabled` turns caller authentication off (development only; logged loudly). With it enabled, " +
			"the gateway refuses to start without callers",
		field: func(c *Config) any { return &c.Auth }},
	{name: "GATEWAY_CORS_ORIGINS", unit: "comma-separated origins",
		doc:   "browser origins allowed to call the API, e.g. `https://ap-portal.example.com`; `*` is refused",
		field: func(c *Config) any { return &c.CORSOrigins },
		check: func(c *Config) string { return corsOrigins(c.CORSOrigins) }},
	{name: "GATEWAY_RATE_LIMIT_PER_MINUTE", old: "GATEWAY_RATE_LIMIT", def: "600", unit: "requests per minute per caller",
		doc:   "`0`: no limit; beyond it, `429 rate_limited` with `Retry-After`",
		field: func(c *Config) any { return &c.RateLimitPerMinute }},
	{name: "GATEWAY_DOWNLOADS_PER_CALLER", def: "2", unit: "downloads at once",
		doc: "payment-file downloads one caller may run at once (`0`: no cap); beyond it, `429 too_many_downloads` " +
			"with `Retry-After`, before Concur is called",
		field: func(c *Config) any { return &c.DownloadsPerCaller }},
	{name: "GATEWAY_DOWNLOADS_MAX", def: "16", unit: "downloads at once",
		doc:   "payment-file downloads the gateway (each replica) runs at once (`0`: no cap); beyond it, `429 too_many_downloads`",
		field: func(c *Config) any { return &c.DownloadsMax }},
	{name: "GATEWAY_DOWNLOAD_MIN_RATE_BYTES_PER_SECOND", def: "16384", unit: "bytes per second",
		doc: "a download that moves fewer bytes per second than this, averaged over `GATEWAY_DOWNLOAD_RATE_WINDOW`, is cut " +
			"(Concur's stream closed, the caller's connection ended) and counted (`0`: off). It measures the bytes reaching " +
			"the caller, so a stalled Concur counts too",
		field: func(c *Config) any { return &c.DownloadMinRate }},
	{name: "GATEWAY_DOWNLOAD_RATE_WINDOW", def: "30s", doc: "the window of the minimum download rate (at least `1s`)",
		field: func(c *Config) any { return &c.DownloadRateWindow },
		check: func(c *Config) string { return atLeast(c.DownloadRateWindow, time.Second) }},
	{name: "GATEWAY_ADMIN_ADDR", unit: "host:port",
		doc: "serve `/healthz`, `/readyz` and `/metrics` on this address (e.g. `:9090`) instead of `GATEWAY_ADDR`, " +
			"where they then answer 404",
		field: func(c *Config) any { return &c.AdminAddr },
		check: func(c *Config) string { return hostPort(c.AdminAddr) }},
	{name: "GATEWAY_PPROF", def: "false",
		doc: "`true` serves Go's profiles (`net/http/pprof`) under `/debug/pprof/` on `GATEWAY_ADMIN_ADDR`, which it " +
			"requires; never on `GATEWAY_ADDR`. For profiling (`bin/loadbench -profile` turns it on), not for everyday running",
		field: func(c *Config) any { return &c.PProf }},
	{name: "GATEWAY_READY_CONCUR_GRACE", def: "1m",
		doc: "how long Concur must fail every readiness check before `/readyz` says not ready (`0s`: at once); " +
			"see [Operating it](#operating-it)",
		field: func(c *Config) any { return &c.ReadyConcurGrace },
		check: func(c *Config) string { return atLeast(c.ReadyConcurGrace, 0) }},
	{name: "OTEL_EXPORTER_OTLP_ENDPOINT", unit: "URL",
		doc:   "OTLP/HTTP collector, e.g. `http://otel-collector:4318`: spans go to `…/v1/traces` (protobuf). Unset: tracing is off",
		field: func(c *Config) any { return &c.otel.endpoint },
		check: func(c *Config) string { return otlpEndpoint(c) }},
	{name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", unit: "URL", doc: "the traces URL itself, used as is; wins over the above",
		field: func(c *Config) any { return &c.otel.tracesEndpoint },
		check: func(c *Config) string { return otlpTracesEndpoint(c) }},
	{name: "OTEL_SERVICE_NAME", def: "payment-batch-gateway", doc: "the traces' `service.name`",
		field: func(c *Config) any { return &c.ServiceName }},
	{name: "OTEL_SDK_DISABLED", doc: "`true` turns tracing off",
		field: func(c *Config) any { return &c.otel.sdkDisabled }},
	{name: "OTEL_TRACES_EXPORTER", def: "otlp", doc: "`otlp`, or `none` to turn tracing off",
		field: func(c *Config) any { return &c.otel.exporter },
		check: func(c *Config) string { return otlpExporter(c) }},
	{name: "OTEL_EXPORTER_OTLP_PROTOCOL", def: "http/protobuf", doc: "may only be `http/protobuf`",
		field: func(c *Config) any { return &c.otel.protocol },
		check: func(c *Config) string { return otlpProtocol(c, c.otel.protocol) }},
	{name: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", def: "http/protobuf", doc: "may only be `http/protobuf`",
		field: func(c *Config) any { return &c.otel.tracesProtocol },
		check: func(c *Config) string { return otlpProtocol(c, c.otel.tracesProtocol) }},
	{name: "LOG_LEVEL", def: "info", unit: "`trace` … `error`", doc: "the least level logged",
		field: func(c *Config) any { return &c.LogLevel }},
	{name: "LOG_FORMAT", def: "json", choices: []string{"json", "console"}, doc: "`console` is for people",
		field: func(c *Config) any { return &c.LogFormat }},
}
