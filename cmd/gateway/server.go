package main

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/concur"
	"github.com/finplat/payment-batch-gateway/internal/config"
	"github.com/finplat/payment-batch-gateway/internal/httpapi"
)

// maxHeader is the most a request's line and headers may take (README: server hardening).
const maxHeader = 64 << 10

// newAPIServer is the server of GATEWAY_ADDR: the API, and the admin endpoints unless
// GATEWAY_ADMIN_ADDR serves them.
func newAPIServer(cfg config.Config, log zerolog.Logger, deps httpapi.Deps) *http.Server {
	return &http.Server{
		Handler:           httpapi.NewHandler(deps),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// File downloads move their own write deadline as they progress.
		WriteTimeout:   cfg.CloseBudget() + 10*time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: headerLimit(maxHeader),
		ErrorLog:       stdlog.New(log.With().Str("component", "http").Logger(), "", 0),
	}
}

// headerLimit is the Server.MaxHeaderBytes that refuses, with 431, a request whose
// request line and headers, up to and including the blank line that ends them, are more
// than limit bytes. net/http lets a request read MaxHeaderBytes + 4096 bytes before its
// headers must have ended (initialReadLimitSize, "bufio slop"); the documented limit is
// the whole of that.
func headerLimit(limit int) int { return limit - 4096 }

// shutdown stops the servers, letting in-flight closes finish within the grace period. It
// always runs to its end, whatever fails on the way; drain comes next.
func shutdown(ctx context.Context, cfg config.Config, log zerolog.Logger, srv *http.Server, serveErr chan error,
	adminSrv *adminServer, ready *httpapi.Readiness) error {
	log.Info().Msg("shutting down; finishing in-flight requests")
	ready.ShuttingDown() // the admin listener answers /readyz 503 while the closes finish
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownGrace())
	defer cancel()
	var errs []error
	if err := srv.Shutdown(shutdownCtx); err != nil {
		errs = append(errs, fmt.Errorf("shutdown: %w", err))
		_ = srv.Close()
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, fmt.Errorf("serve: %w", err))
	}
	if err := adminSrv.shutdown(shutdownCtx); err != nil {
		errs = append(errs, fmt.Errorf("shutdown admin: %w", err))
	}
	if len(errs) == 0 {
		log.Info().Msg("stopped")
	}
	return errors.Join(errs...)
}

// drain stores, once the servers and the background work stopped and before the store
// closes, what their callers left: the rotated refresh token of a token refresh that runs
// on, and the close ends the store refused so far (stored now, or logged sealed). Both
// drain at once within cfg.Drain(), a time of their own even if the grace period is spent,
// and counted in cfg.ShutdownBudget().
func drain(ctx context.Context, cfg config.Config, log zerolog.Logger, up *concur.Client, svc *batch.Service) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Drain())
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := up.Drain(ctx); err != nil {
			log.Error().Err(err).Msg("a Concur token refresh was still running at shutdown; its rotated refresh token may be lost")
		}
	})
	if err := svc.Drain(log.WithContext(ctx)); err != nil {
		log.Error().Err(err).Msg("close outcomes left unrecorded: their sealed records are in this log")
	}
	wg.Wait()
}
