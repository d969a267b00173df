package main

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/internal/config"
	"github.com/finplat/payment-batch-gateway/internal/httpapi"
	"github.com/finplat/payment-batch-gateway/internal/telemetry"
)

// observability is the gateway's metrics and tracing.
type observability struct {
	metrics *telemetry.Metrics
	tracing telemetry.Tracing
}

func newTelemetry(ctx context.Context, cfg config.Config, log zerolog.Logger) (*observability, error) {
	tr, err := telemetry.NewTracing(ctx, telemetry.TracingConfig{
		Endpoint: cfg.TracesEndpoint, ServiceName: cfg.ServiceName, Version: version,
	})
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	if tr.Enabled() {
		log.Info().Str("serviceName", cfg.ServiceName).Msg("tracing: spans are exported over OTLP/HTTP")
	}
	return &observability{metrics: telemetry.NewMetrics(version), tracing: tr}, nil
}

// shutdown flushes the spans still buffered, for a few seconds at most.
func (o *observability) shutdown(ctx context.Context, log zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), config.SpanFlush)
	defer cancel()
	if err := o.tracing.Shutdown(ctx); err != nil {
		log.Warn().Err(err).Msg("tracing: could not flush the last spans")
	}
}

// adminServer is the listener of GATEWAY_ADMIN_ADDR, or nothing when it is not set.
type adminServer struct {
	srv *http.Server // nil: none
	err chan error   // the end of Serve; never sent to when there is no server
}

// serveAdmin opens GATEWAY_ADMIN_ADDR, when set, and serves /healthz, /readyz and
// /metrics there (then not on GATEWAY_ADDR).
func serveAdmin(cfg config.Config, log zerolog.Logger, a httpapi.Admin) (*adminServer, error) {
	s := &adminServer{err: make(chan error, 1)}
	if cfg.AdminAddr == "" {
		return s, nil
	}
	ln, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on GATEWAY_ADMIN_ADDR: %w", err)
	}
	h := httpapi.AdminHandler(log.With().Str("component", "admin").Logger(), a)
	if cfg.PProf {
		h = withPProf(h)
		log.Warn().Msg("GATEWAY_PPROF: profiles are served under /debug/pprof/ on GATEWAY_ADMIN_ADDR")
	}
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          stdlog.New(log.With().Str("component", "admin-http").Logger(), "", 0),
	}
	log.Info().Str("adminAddr", ln.Addr().String()).
		Msg("admin endpoints (/healthz, /readyz, /metrics) listening on GATEWAY_ADMIN_ADDR")
	go func() { s.err <- s.srv.Serve(ln) }()
	return s, nil
}

// withPProf serves net/http/pprof's handlers under /debug/pprof/ and the rest with h.
func withPProf(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.Handle("/", h)
	return mux
}

// shutdown stops the admin server, letting a scrape in progress finish.
func (s *adminServer) shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	if err := s.srv.Shutdown(ctx); err != nil {
		return err
	}
	if err := <-s.err; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	s.srv = nil
	return nil
}

// close stops the admin server at once, when run returns early.
func (s *adminServer) close() {
	if s.srv != nil {
		_ = s.srv.Close()
	}
}
