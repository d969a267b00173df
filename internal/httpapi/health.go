package httpapi

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// Admin is the operational surface: liveness, readiness and metrics. None of it needs a
// credential: it reveals no batch data.
type Admin struct {
	// Ready decides /readyz; nil: /readyz is not served.
	Ready *Readiness
	// Metrics serves /metrics (Prometheus); nil: /metrics is not served.
	Metrics http.Handler
}

// adminPaths are the routes of Admin, which move to their own listener with
// GATEWAY_ADMIN_ADDR.
var adminPaths = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// IsAdminRequest reports whether r is for one of the admin routes: probes and scrapes are
// not traced.
func IsAdminRequest(r *http.Request) bool { return adminPaths[r.URL.Path] }

// mountAdmin routes the admin endpoints on r.
func mountAdmin(r chi.Router, a Admin) {
	r.Get("/healthz", healthz)
	r.Head("/healthz", healthz)
	if a.Ready != nil {
		r.Get("/readyz", readyz(a.Ready))
		r.Head("/readyz", readyz(a.Ready))
	}
	if a.Metrics != nil {
		r.Get("/metrics", metrics(a.Metrics))
	}
}

// AdminHandler serves the admin endpoints alone, for their own listener
// (GATEWAY_ADMIN_ADDR). Requests are not access-logged (probes and scrapes would drown
// the log); a panic is logged and answered 500.
func AdminHandler(log zerolog.Logger, a Admin) http.Handler {
	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			o := &outcome{}
			ctx := withOutcome(log.WithContext(req.Context()), o)
			defer func() {
				if o.stack != "" {
					log.Error().AnErr("error", o.err).Str("stack", o.stack).Str("route", req.URL.Path).Msg("admin request panicked")
				}
			}()
			next.ServeHTTP(w, req.WithContext(ctx))
		})
	}, recoverer)
	r.NotFound(func(w http.ResponseWriter, req *http.Request) {
		writeProblem(w, req, batch.Errorf(codeRouteNotFound, "no route for %s %s", req.Method, req.URL.Path))
	})
	mountAdmin(r, a)
	return r
}

// ReadinessReport is the answer of /readyz.
type ReadinessReport struct {
	// Status is ready (200), not_ready or shutting_down (503).
	Status string          `json:"status" enums:"ready,not_ready,shutting_down" example:"ready"`
	Store  *ReadinessCheck `json:"store,omitempty"`
	Concur *ReadinessCheck `json:"concur,omitempty"`
	// UnrecordedCloses is how many close outcomes Concur produced that this replica has
	// not stored yet (it keeps trying; they are in its log, sealed). Not zero calls for
	// an operator when it lasts.
	UnrecordedCloses int `json:"unrecordedCloses,omitempty" example:"0" format:"int64" minimum:"0" maximum:"9223372036854775807"`
	// Warnings are what an operator must act on soon, though the gateway is ready: the
	// Concur grant's refresh token close to its expiry, or Concur announcing the end of an
	// endpoint the gateway calls. They do not change the status.
	Warnings []ReadinessWarning `json:"warnings,omitempty" validate:"max=16"`
}

// ReadinessWarning is one warning of /readyz.
type ReadinessWarning struct {
	// Code is stable: concur_refresh_token_expiring, concur_keepalive_failing,
	// concur_api_sunset or concur_api_warning.
	Code string `json:"code" enums:"concur_refresh_token_expiring,concur_keepalive_failing,concur_api_sunset,concur_api_warning" example:"concur_api_sunset"`
	// Detail says what it is and what to do, in a sentence.
	Detail string `json:"detail" example:"Concur announced that an endpoint the gateway calls (close) ends on 2027-10-31 (Sunset: Sun, 31 Oct 2027 23:59:59 GMT)" maxLength:"1024"`
	// At is when: the refresh token's expiry, the announced sunset.
	At *time.Time `json:"at,omitempty" format:"date-time" maxLength:"64"`
}

// ReadinessCheck is one dependency's state.
type ReadinessCheck struct {
	// Status is ok; failing (the check fails, but not for long enough to matter yet); or
	// down (it makes the gateway not ready).
	Status string `json:"status" enums:"ok,failing,down" example:"ok"`
	// Code is the error code of the failure, e.g. store_unavailable, upstream_unavailable.
	Code string `json:"code,omitempty" example:"upstream_unavailable" maxLength:"64"`
	// FailingSince is when the check started failing without a success since.
	FailingSince *time.Time `json:"failingSince,omitempty" format:"date-time" maxLength:"64"`
}

// Readiness states, as ReadinessReport and ReadinessCheck spell them.
const (
	statusReady        = "ready"
	statusNotReady     = "not_ready"
	statusShuttingDown = "shutting_down"
	checkOK            = "ok"
	checkFailing       = "failing"
	checkDown          = "down"
)

// Pinger is the store as readiness sees it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// TokenChecker is Concur as readiness sees it: nil when the gateway holds a usable access
// token or obtains one now (concur.Client.Ready).
type TokenChecker interface {
	Ready(ctx context.Context) error
}

// DefaultReadyTimeout bounds one readiness check.
const DefaultReadyTimeout = 2 * time.Second

// Readiness decides whether the gateway should receive traffic:
//
//   - the store answers a ping (else not ready at once: nothing works without it; a
//     probe's failure threshold absorbs a blip);
//   - a Concur access token is held and not about to expire, or one can be obtained now
//     (a refresh, started or joined, waited for within the check's time-out). A failure
//     makes the gateway not ready only once Concur has failed every check for Grace:
//     while a cached token is valid no request is sent at all, and a single failed
//     refresh (a blip) leaves the gateway ready. A check that succeeds resets the window.
//
// Concur's API breaker is deliberately not part of it: every replica shares the one
// Concur, and taking them all out of the load balancer would turn the documented 503
// problems (with Retry-After) into connection errors; alert on the breaker instead.
type Readiness struct {
	store   Pinger
	concur  TokenChecker
	grace   time.Duration
	timeout time.Duration
	now     func() time.Time

	// Unrecorded, when set, counts the close outcomes not stored yet (batch.Service.Unrecorded).
	Unrecorded func() int
	// Warnings, when set, are the report's warnings (from the Concur client's signals).
	Warnings func() []ReadinessWarning

	stopping atomic.Bool

	mu           sync.Mutex
	failingSince time.Time // of Concur's check; zero while it succeeds
}

// NewReadiness checks store and concur (either may be nil: not checked), tolerating
// Concur failures for grace.
func NewReadiness(store Pinger, concur TokenChecker, grace time.Duration) *Readiness {
	return &Readiness{store: store, concur: concur, grace: max(grace, 0), timeout: DefaultReadyTimeout, now: time.Now}
}

// ShuttingDown makes every later check answer shutting_down: the gateway is draining.
func (rd *Readiness) ShuttingDown() { rd.stopping.Store(true) }

// Check runs the checks within the readiness time-out and reports the gateway's state.
func (rd *Readiness) Check(ctx context.Context) ReadinessReport {
	if rd.stopping.Load() {
		return ReadinessReport{Status: statusShuttingDown}
	}
	cctx, cancel := context.WithTimeout(ctx, rd.timeout)
	defer cancel()
	var storeErr, concurErr error
	var wg sync.WaitGroup
	if rd.store != nil {
		wg.Go(func() { storeErr = rd.store.Ping(cctx) })
	}
	if rd.concur != nil {
		wg.Go(func() { concurErr = rd.concur.Ready(cctx) })
	}
	wg.Wait()

	rep := ReadinessReport{Status: statusReady, Store: &ReadinessCheck{Status: checkOK}, Concur: &ReadinessCheck{Status: checkOK}}
	if rd.Unrecorded != nil {
		rep.UnrecordedCloses = rd.Unrecorded()
	}
	if rd.Warnings != nil {
		rep.Warnings = rd.Warnings()
	}
	if storeErr != nil {
		rep.Status = statusNotReady
		rep.Store = &ReadinessCheck{Status: checkDown, Code: string(batch.CodeStoreUnavailable)}
	}
	if ctx.Err() != nil { // the prober left: this check says nothing about Concur
		return rep
	}
	now := rd.now()
	rd.mu.Lock()
	switch {
	case concurErr == nil:
		rd.failingSince = time.Time{}
	case rd.failingSince.IsZero():
		rd.failingSince = now
	}
	since := rd.failingSince
	rd.mu.Unlock()
	if concurErr != nil {
		rep.Concur = &ReadinessCheck{Status: checkFailing, Code: string(batch.ErrorCode(concurErr)), FailingSince: &since}
		if now.Sub(since) >= rd.grace {
			rep.Concur.Status = checkDown
			rep.Status = statusNotReady
		}
	}
	return rep
}

// healthz godoc
//
//	@Summary		Liveness
//	@Description	Answers 200 while the process serves HTTP. It checks nothing else and does not call Concur. With GATEWAY_ADMIN_ADDR set, it is served there instead (404 here).
//	@Tags			operations
//	@Produce		plain
//	@Produce		application/problem+json
//	@Success		200	{string}	string		"ok"
//	@Failure		404	{object}	api.Problem	"route_not_found: served on GATEWAY_ADMIN_ADDR"
//	@ID				getLiveness
//	@Router			/healthz [get]
func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz godoc
//
//	@Summary		Readiness
//	@Description	200 when the gateway should receive traffic: its store answers, and it holds a Concur access token or can obtain one. A Concur failure makes it not ready only after it persisted for GATEWAY_READY_CONCUR_GRACE (a cached token keeps it ready without calling Concur). 503 while not ready or shutting down. Warnings (the Concur grant close to its expiry, an endpoint Concur is retiring) do not change the status. With GATEWAY_ADMIN_ADDR set, it is served there instead (404 here).
//	@Tags			operations
//	@Produce		json
//	@Produce		application/problem+json
//	@Success		200	{object}	ReadinessReport
//	@Failure		404	{object}	api.Problem		"route_not_found: served on GATEWAY_ADMIN_ADDR"
//	@Failure		503	{object}	ReadinessReport	"not_ready or shutting_down"
//	@ID				getReadiness
//	@Router			/readyz [get]
func readyz(rd *Readiness) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rep := rd.Check(r.Context())
		status := http.StatusOK
		if rep.Status != statusReady {
			status = http.StatusServiceUnavailable
		}
		w.Header().Set("Cache-Control", "no-store")
		_ = writeJSON(w, status, rep)
	}
}

// metrics godoc
//
//	@Summary		Prometheus metrics
//	@Description	The gateway's metrics in Prometheus's text format (see the README, "Operating it"). With GATEWAY_ADMIN_ADDR set, it is served there instead (404 here).
//	@Tags			operations
//	@Produce		plain
//	@Produce		application/problem+json
//	@Success		200	{string}	string		"Prometheus text format"
//	@Failure		404	{object}	api.Problem	"route_not_found: served on GATEWAY_ADMIN_ADDR"
//	@ID				getMetrics
//	@Router			/metrics [get]
func metrics(h http.Handler) http.HandlerFunc { return h.ServeHTTP }
