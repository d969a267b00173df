package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/config"
	"github.com/finplat/payment-batch-gateway/internal/httpapi"
	"github.com/finplat/payment-batch-gateway/internal/secretbox"
	"github.com/finplat/payment-batch-gateway/internal/store"
	"github.com/finplat/payment-batch-gateway/internal/telemetry"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// run is the whole program; main only wires it to the process. It serves until ctx ends,
// then shuts down gracefully, letting in-flight closes finish.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	switch {
	case len(args) == 1 && args[0] == "healthcheck":
		return healthcheck(ctx, getenv)
	case len(args) > 0 && args[0] == "mint-key":
		return mintKey(args[1:], stdout)
	case len(args) > 0 && args[0] == "authorize":
		return authorize(ctx, args[1:], getenv, stdin, stdout, stderr)
	case len(args) > 0:
		fmt.Fprintln(stderr, "usage: gateway [healthcheck | mint-key NAME SCOPE... | authorize [--replace]]   "+
			"(configured by environment variables; see README.md)")
		return fmt.Errorf("unexpected arguments %q", args)
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stdout)
	log.Info().Str("version", version).Object("config", cfg).Msg("starting")
	for _, w := range cfg.Warnings {
		log.Warn().Msg(w)
	}
	if cfg.ConcurRequestToken != "" {
		log.Warn().Msg("CONCUR_REQUEST_TOKEN is set: only `gateway authorize` reads it; remove it from the service's environment")
	}

	st, sealer, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	tel, err := newTelemetry(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer tel.shutdown(ctx, log) // last: after the servers stopped, the spans are flushed

	up, err := newConcurClient(cfg, st, tel, log)
	if err != nil {
		return err
	}
	svc := batch.NewService(up, st, batch.Options{
		BatchListMinInterval: cfg.BatchListMinInterval, CloseLease: cfg.CloseLease(), SettleDelay: cfg.ConcurTimeout,
		Observer: tel.metrics, Seal: sealer,
	})
	tel.metrics.WatchUnrecorded(svc.Unrecorded)
	downloads := batch.NewDownloads(st, batch.DownloadOptions{
		PerCaller: cfg.DownloadsPerCaller, Max: cfg.DownloadsMax,
		MinRate: int64(cfg.DownloadMinRate), RateWindow: cfg.DownloadRateWindow, Observer: tel.metrics,
	})
	bgCtx, stopBackground := context.WithCancel(log.WithContext(ctx)) // background work ends with run
	defer stopBackground()
	go purgeIdempotencyKeys(bgCtx, st, log)
	authn, err := newAuthenticator(bgCtx, cfg, log)
	if err != nil {
		return err
	}

	ready := httpapi.NewReadiness(st, up, cfg.ReadyConcurGrace)
	ready.Unrecorded = svc.Unrecorded
	ready.Warnings = concurWarnings(up.Signals)
	admin := httpapi.Admin{Ready: ready, Metrics: tel.metrics.Handler()}
	adminSrv, err := serveAdmin(cfg, log, admin) // before the main listener: its line comes first
	if err != nil {
		return err
	}
	defer adminSrv.close()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := newAPIServer(cfg, log, httpapi.Deps{
		Log:              log,
		Batches:          svc,
		Idempotency:      httpapi.Idempotency{Store: st, TTL: cfg.IdempotencyTTL, Lease: cfg.CloseLease()},
		Downloads:        downloads,
		Auth:             authn,
		CORSOrigins:      cfg.CORSOrigins,
		RateLimit:        cfg.RateLimitPerMinute,
		FileWriteTimeout: cfg.ConcurTimeout,
		Metrics:          tel.metrics,
		Trace:            telemetry.ServerMiddleware(tel.tracing.Provider, httpapi.IsAdminRequest),
		Admin:            admin,
		AdminSeparate:    cfg.AdminAddr != "",
	})

	base := "http://" + displayAddr(ln.Addr())
	log.Info().
		Str("addr", ln.Addr().String()).
		Str("swaggerUi", base+"/swagger/index.html").
		Msgf("listening; Swagger UI at %s/swagger/index.html", base)

	// The background work starts last, when nothing can fail any more before the shutdown
	// below, which waits for it: a return above leaves no close of the finisher's running.
	recording, finishing := make(chan struct{}), make(chan struct{})
	go func() { defer close(recording); svc.RunRecorder(bgCtx) }()
	go up.KeepAlive(bgCtx) // renews an idle gateway's grant; stops with the background work
	finishCtx, stopFinishing := context.WithCancel(bgCtx)
	defer stopFinishing()
	go func() { defer close(finishing); svc.RunFinisher(finishCtx, finishEvery) }()

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	var failed error
	select {
	case err := <-serveErr:
		serveErr <- err
		failed = fmt.Errorf("serve: %w", err)
	case err := <-adminSrv.err:
		failed = fmt.Errorf("serve admin: %w", err)
	case <-ctx.Done():
	}
	// The finisher starts no close once the shutdown begins, and the one it may be making
	// ends within its deadline, inside the grace period; the recorder keeps storing ends
	// until the servers stopped, then Drain takes what is left.
	stopFinishing()
	err = shutdown(ctx, cfg, log, srv, serveErr, adminSrv, ready)
	<-finishing
	stopBackground()
	<-recording
	drain(ctx, cfg, log, up, svc)
	return errors.Join(failed, err)
}

// finishEvery is how often the finisher of asynchronous closes looks for due batches.
const finishEvery = time.Second

// openStore opens SQLite in the data directory, or PostgreSQL, with the key that encrypts
// the stored tokens: GATEWAY_SECRET_KEY, or one generated into the data directory.
func openStore(ctx context.Context, cfg config.Config, log zerolog.Logger) (store.Store, func([]byte) (string, error), error) {
	var key []byte
	if cfg.SecretKey != "" {
		k, err := secretbox.ParseKey(cfg.SecretKey.Reveal())
		if err != nil {
			return nil, nil, fmt.Errorf("GATEWAY_SECRET_KEY: %w", err)
		}
		key = k
	} else {
		path := filepath.Join(cfg.DataDir, "secret.key")
		k, created, err := secretbox.LoadOrCreateKeyFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("secret key: %w", err)
		}
		key = k
		ev := log.Warn().Str("keyFile", path)
		if created {
			ev.Msg("GATEWAY_SECRET_KEY is not set: generated a key that encrypts the stored Concur tokens. " +
				"Fine for one instance; replicas must all be given the same GATEWAY_SECRET_KEY")
		} else {
			ev.Msg("GATEWAY_SECRET_KEY is not set: using the key generated earlier in the data directory. " +
				"Replicas must all be given the same GATEWAY_SECRET_KEY")
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Config{URL: cfg.DatabaseURL.Reveal(), DataDir: cfg.DataDir, Key: key})
	if err != nil {
		return nil, nil, fmt.Errorf("open the %s store: %w", cfg.StoreKind(), err)
	}
	log.Info().Str("store", cfg.StoreKind()).Msg("store ready")
	box, err := secretbox.New(key)
	if err != nil {
		_ = st.Close()
		return nil, nil, fmt.Errorf("secret key: %w", err)
	}
	return st, sealWith(box), nil
}

// sealWith seals a record for the log with the secret key (base64 of secretbox's
// AES-GCM): the last resort for a close outcome the store cannot take. Recover one with
// the key: secretbox.Open(sealed, []byte("close-record")).
func sealWith(box *secretbox.Box) func([]byte) (string, error) {
	return func(plain []byte) (string, error) {
		sealed, err := box.Seal(plain, []byte("close-record"))
		if err != nil {
			return "", err
		}
		return base64.StdEncoding.EncodeToString(sealed), nil
	}
}

// purgeIdempotencyKeys forgets expired idempotency keys every hour until ctx ends.
func purgeIdempotencyKeys(ctx context.Context, st store.Store, log zerolog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := st.PurgeIdempotencyKeys(ctx, time.Now())
			if err != nil {
				log.Error().Err(err).Msg("could not purge expired idempotency keys")
				continue
			}
			log.Debug().Int64("purged", n).Msg("expired idempotency keys purged")
		}
	}
}

func newLogger(cfg config.Config, out io.Writer) zerolog.Logger {
	if cfg.LogFormat == "console" {
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(out).Level(cfg.LogLevel).With().Timestamp().Logger()
}

// displayAddr turns a wildcard listen address into one a person can paste.
func displayAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	return fmt.Sprintf("localhost:%d", tcp.Port)
}

// healthcheck probes the /healthz of a gateway running on this machine with the same
// environment, for container health checks in images that have no shell or curl.
func healthcheck(ctx context.Context, getenv func(string) string) error {
	cfg, err := config.LoadListen(getenv)
	if err != nil {
		return err
	}
	_, port, err := net.SplitHostPort(cfg.HealthAddr())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort("127.0.0.1", port)+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz answered %s", resp.Status)
	}
	return nil
}
