package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/internal/concursim"
)

const shutdownTimeout = 10 * time.Second

const usage = `usage: concursim [healthcheck]

concursim serves a simulated SAP Concur Payment Batch API; "concursim healthcheck" probes
one running on this machine (for container health checks). Configure it with CONCURSIM_ADDR, CONCURSIM_CLIENT_ID, CONCURSIM_CLIENT_SECRET,
CONCURSIM_REFRESH_TOKEN, CONCURSIM_TOKEN_TTL, CONCURSIM_EXPIRES_IN, CONCURSIM_ROTATE,
CONCURSIM_URL_ELEMENT, CONCURSIM_GEOLOCATION, CONCURSIM_ASYNC_CLOSE_DELAY,
CONCURSIM_LARGE_FILE_BYTES, CONCURSIM_LOAD_BATCHES, CONCURSIM_ERROR_NAMESPACE, CONCURSIM_CONTENT_DISPOSITION,
CONCURSIM_CHAOS (random failures, the JSON of PUT /_sim/chaos, e.g.
{"reset":0.1,"status5xx":0.1,"slow":0.1,"slowFor":"3s","seed":42}).

A real company's day one:
  CONCURSIM_COMPANY_UUID, CONCURSIM_REQUEST_TOKEN   the request-token grant (grant_type=password,
      credtype=authtoken); with it CONCURSIM_REFRESH_TOKEN is optional
  CONCURSIM_REQUEST_TOKEN_TTL        default 24h from the start (expired: code 108)
  CONCURSIM_REQUEST_TOKEN_CLIENT_ID  the client it was issued for (default the client id; another: code 136)
  CONCURSIM_REFRESH_TOKEN_TTL        default 4320h (180 days); each refresh extends the grant
  CONCURSIM_SCOPE                    the scope of token answers, default "EXPRPT PAYBAT company.read"
  CONCURSIM_GEO_ADDR                 a second listener, the data-centre host (CONCURSIM_ADDR plays GLZ):
      token answers' geolocation and batch URLs name it, API calls at GLZ are refused (403,
      or 401 as unknown tokens are), refreshes at GLZ get code 16 once per grant
  CONCURSIM_REDIRECT_REFRESH         default true; false: GLZ redeems refresh tokens itself
  CONCURSIM_GEOLOCATION_PATH         true: the default geolocation ends in /oauth2/v0/token
  CONCURSIM_SUNSET, CONCURSIM_API_WARN  Sunset (an HTTP-date) and x-api-warn headers on Payment
      Batch answers (also PUT/DELETE /_sim/deprecation)
Token errors on demand: PUT /_sim/token-error {"code":20,"count":1}. Every answer carries a
concur-correlationid; GET /_sim/stats lists the last 100.
`

// run serves the simulator until ctx ends, then shuts down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	switch {
	case len(args) == 1 && args[0] == "healthcheck":
		return healthcheck(ctx, getenv("CONCURSIM_ADDR"))
	case len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help"):
		_, _ = io.WriteString(stdout, usage)
		return nil
	case len(args) > 0:
		_, _ = io.WriteString(stderr, usage)
		return fmt.Errorf("unexpected arguments %q", args)
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := zerolog.New(stdout).With().Timestamp().Logger()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	var geoLn net.Listener
	dataCentre := ""
	if cfg.GeoAddr != "" {
		if geoLn, err = net.Listen("tcp", cfg.GeoAddr); err != nil {
			return fmt.Errorf("listen on CONCURSIM_GEO_ADDR: %w", err)
		}
		defer geoLn.Close()
		dataCentre = "http://" + geoLn.Addr().String()
	}
	sim, err := concursim.New(cfg.options(dataCentre))
	if err != nil {
		return err
	}
	defer sim.Close()

	// One line, the GLZ (or only) address first: tests read "addr" from it.
	ev := log.Info().Str("addr", ln.Addr().String())
	if geoLn != nil {
		ev = ev.Str("geo_addr", geoLn.Addr().String())
	}
	ev.Msg("listening")
	log.Info().
		Stringer("token_ttl", cfg.TokenTTL).Bool("expires_in_number", cfg.ExpiresInNumber).
		Bool("rotate", cfg.Rotate).Str("url_element", cfg.URLElement).
		Str("geolocation", cfg.Geolocation).Bool("geolocation_path", cfg.GeolocationPath).
		Stringer("async_close_delay", cfg.AsyncCloseDelay).
		Int64("large_file_bytes", cfg.LargeFileBytes).Int("load_batches", cfg.LoadBatches).
		Bool("request_token_grant", cfg.RequestToken != "").Stringer("request_token_ttl", cfg.RequestTokenTTL).
		Stringer("refresh_token_ttl", cfg.RefreshTokenTTL).Str("scope", cfg.Scope).
		Str("data_centre", dataCentre).Bool("redirect_refresh", cfg.RedirectRefresh).
		Str("sunset", cfg.Sunset).Str("api_warn", cfg.APIWarn).Msg("configured")
	if cfg.Chaos != nil {
		c := sim.Chaos() // with its defaults and seed, so that a run can be replayed
		log.Warn().Float64("reset", c.Reset).Float64("status5xx", c.Status5xx).Float64("slow", c.Slow).
			Stringer("slow_for", time.Duration(c.SlowFor)).Uint64("seed", c.Seed).Strs("ops", c.Ops).
			Msg("chaos on: a share of the token and API requests fail at random")
	}

	// Requests get a context that ends when shutdown starts, so slow faults give way.
	baseCtx, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	servers := []*http.Server{newServer(accessLog(log, sim), baseCtx)}
	listeners := []net.Listener{ln}
	if geoLn != nil {
		glz := log.With().Str("host", "glz").Logger()
		dc := log.With().Str("host", "data-centre").Logger()
		servers[0].Handler = accessLog(glz, sim)
		servers = append(servers, newServer(accessLog(dc, sim.DataCentreHandler()), baseCtx))
		listeners = append(listeners, geoLn)
	}

	serveErr := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { serveErr <- srv.Serve(listeners[i]) }()
	}

	select {
	case err := <-serveErr:
		for _, srv := range servers {
			_ = srv.Close()
		}
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info().Msg("shutting down")
	cancelBase()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	var shutdownErr error
	for _, srv := range servers {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			_ = srv.Close()
			shutdownErr = errors.Join(shutdownErr, err)
		}
	}
	if shutdownErr != nil {
		return fmt.Errorf("shutdown: %w", shutdownErr)
	}
	for range servers {
		if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
	}
	log.Info().Msg("stopped")
	return nil
}

// newServer is the HTTP server of one listener.
func newServer(h http.Handler, baseCtx context.Context) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		// No WriteTimeout: slow faults and large streamed files are the point; they end
		// with the client or with shutdown.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		BaseContext:    func(net.Listener) context.Context { return baseCtx },
	}
}

// accessLog writes one line per request: method, path, status, bytes and duration.
// It never logs headers or bodies, so tokens and secrets stay out of the log.
func accessLog(log zerolog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		defer func() {
			ev := log.Info().Str("method", r.Method).Str("path", r.URL.Path)
			switch {
			case rec.hijacked:
				ev = ev.Bool("hijacked", true)
			case rec.status == 0: // nothing written: net/http sends 200
				ev = ev.Int("status", http.StatusOK)
			default:
				ev = ev.Int("status", rec.status)
			}
			ev.Int64("bytes", rec.bytes).Dur("duration", time.Since(start)).Msg("request")
		}()
		next.ServeHTTP(rec, r)
	})
}

// recorder remembers the status and size of a response. Unwrap lets
// http.ResponseController reach Flush and Hijack underneath.
type recorder struct {
	http.ResponseWriter
	status   int
	bytes    int64
	hijacked bool
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Hijack is found by http.ResponseController through Unwrap; record it for the log.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	r.hijacked = true
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

// healthcheck probes GET /_sim/healthz of a simulator listening on this machine at the
// port of addr (CONCURSIM_ADDR), for images without a shell or curl.
func healthcheck(ctx context.Context, addr string) error {
	if addr == "" {
		addr = defaultAddr
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("CONCURSIM_ADDR: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	u := "http://" + net.JoinHostPort("127.0.0.1", port) + "/_sim/healthz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", u, resp.Status)
	}
	return nil
}
