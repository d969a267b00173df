package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// dependency is a store or a Concur whose health the test sets.
type dependency struct {
	mu    sync.Mutex
	err   error
	calls int
	block bool // wait for the check's context to end
}

func (d *dependency) set(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.err = err
}

func (d *dependency) check(ctx context.Context) error {
	d.mu.Lock()
	d.calls++
	err, block := d.err, d.block
	d.mu.Unlock()
	if block {
		<-ctx.Done()
		return &batch.Error{Code: batch.CodeUpstreamTimeout, Err: ctx.Err()}
	}
	return err
}

func (d *dependency) Ping(ctx context.Context) error  { return d.check(ctx) }
func (d *dependency) Ready(ctx context.Context) error { return d.check(ctx) }

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Readiness: the store at once; Concur only once it has failed every check for the grace
// period, so a blip (or a failing refresh while a cached token is valid, which the
// checker reports as success) leaves the gateway ready; one success resets the window.
func TestReadinessToleratesConcurBlipsNotOutages(t *testing.T) {
	t.Parallel()
	st, up := &dependency{}, &dependency{}
	clk := &fakeClock{now: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	rd := NewReadiness(st, up, 30*time.Second)
	rd.now = clk.Now
	down := &batch.Error{Code: batch.CodeUpstreamUnavailable}

	steps := []struct {
		name          string
		act           func()
		status        string
		store, concur string
	}{
		{"all well", func() {}, "ready", "ok", "ok"},
		{"a Concur blip", func() { up.set(down) }, "ready", "ok", "failing"},
		{"Concur back", func() { clk.advance(10 * time.Second); up.set(nil) }, "ready", "ok", "ok"},
		{"failing again: a new window", func() { up.set(down) }, "ready", "ok", "failing"},
		{"failing for less than the grace", func() { clk.advance(29 * time.Second) }, "ready", "ok", "failing"},
		{"failing for the grace: not ready", func() { clk.advance(time.Second) }, "not_ready", "ok", "down"},
		{"still down", func() { clk.advance(time.Minute) }, "not_ready", "ok", "down"},
		{"one success: ready again", func() { up.set(nil) }, "ready", "ok", "ok"},
		{"the store fails: not ready at once", func() { st.set(errors.New("connection refused")) }, "not_ready", "down", "ok"},
		{"the store is back", func() { st.set(nil) }, "ready", "ok", "ok"},
	}
	for _, s := range steps {
		s.act()
		rep := rd.Check(context.Background())
		if rep.Status != s.status || rep.Store.Status != s.store || rep.Concur.Status != s.concur {
			t.Fatalf("%s: got %s (store %s, concur %s), want %s (store %s, concur %s)", s.name,
				rep.Status, rep.Store.Status, rep.Concur.Status, s.status, s.store, s.concur)
		}
		if s.concur != "ok" && (rep.Concur.Code != "upstream_unavailable" || rep.Concur.FailingSince == nil) {
			t.Errorf("%s: Concur check %+v, want its code and since when", s.name, rep.Concur)
		}
		if s.store != "ok" && rep.Store.Code != "store_unavailable" {
			t.Errorf("%s: store check %+v, want store_unavailable (and no internal detail)", s.name, rep.Store)
		}
	}
}

// With no grace, a Concur failure makes the gateway not ready at the first check; a check
// that cannot finish within the time-out fails; shutting down is not ready.
func TestReadinessTimeoutGraceZeroAndShutdown(t *testing.T) {
	t.Parallel()
	up := &dependency{block: true}
	rd := NewReadiness(&dependency{}, up, 0)
	rd.timeout = 50 * time.Millisecond
	start := time.Now()
	rep := rd.Check(context.Background())
	if rep.Status != "not_ready" || rep.Concur.Code != "upstream_timeout" {
		t.Errorf("blocked Concur with no grace: %+v %+v", rep, rep.Concur)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the check took %v, want the time-out", took)
	}
	rd.ShuttingDown()
	if rep := rd.Check(context.Background()); rep.Status != "shutting_down" {
		t.Errorf("shutting down: %+v", rep)
	}
}

// /readyz answers 200 or 503 with the report; without GATEWAY_ADMIN_ADDR the admin routes
// are on the API's handler; with it they are only on AdminHandler, which serves nothing
// else.
func TestAdminRoutes(t *testing.T) {
	t.Parallel()
	st := &dependency{}
	admin := Admin{Ready: NewReadiness(st, &dependency{}, time.Minute),
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("gateway_up 1\n")) })}
	get := func(h http.Handler, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Code, rec.Body.String()
	}
	together := NewHandler(Deps{Log: zerolog.Nop(), Batches: panicky{}, Admin: admin})
	apart := NewHandler(Deps{Log: zerolog.Nop(), Batches: panicky{}, Admin: admin, AdminSeparate: true})
	adminOnly := AdminHandler(zerolog.Nop(), admin)
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, body := get(together, p); code != 200 {
			t.Errorf("GET %s on the API listener: %d %s", p, code, body)
		}
		if code, _ := get(apart, p); code != 404 {
			t.Errorf("GET %s on the API listener with GATEWAY_ADMIN_ADDR: %d, want 404", p, code)
		}
		if code, body := get(adminOnly, p); code != 200 {
			t.Errorf("GET %s on the admin listener: %d %s", p, code, body)
		}
	}
	if code, _ := get(adminOnly, "/batches"); code != 404 {
		t.Errorf("GET /batches on the admin listener: %d, want 404", code)
	}
	if _, body := get(adminOnly, "/metrics"); body != "gateway_up 1\n" {
		t.Errorf("/metrics = %q", body)
	}

	st.set(errors.New("gone"))
	code, body := get(adminOnly, "/readyz")
	var rep ReadinessReport
	if err := json.Unmarshal([]byte(body), &rep); err != nil || code != 503 || rep.Status != "not_ready" ||
		rep.Store == nil || rep.Store.Status != "down" {
		t.Errorf("/readyz with the store gone: %d %s (%v)", code, body, err)
	}
}

// Warnings are reported as they are, and leave a ready gateway ready.
func TestReadinessWarnings(t *testing.T) {
	t.Parallel()
	at := time.Date(2027, 10, 31, 23, 59, 59, 0, time.UTC)
	rd := NewReadiness(&dependency{}, &dependency{}, time.Minute)
	rd.Warnings = func() []ReadinessWarning {
		return []ReadinessWarning{{Code: "concur_api_sunset", Detail: "ends", At: &at}}
	}
	rec := httptest.NewRecorder()
	readyz(rd)(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	var rep struct {
		Status   string
		Warnings []struct {
			Code, Detail string
			At           time.Time
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusOK || rep.Status != "ready" || len(rep.Warnings) != 1 ||
		rep.Warnings[0].Code != "concur_api_sunset" || !rep.Warnings[0].At.Equal(at) {
		t.Errorf("readyz = %d %s", rec.Code, rec.Body)
	}
}
