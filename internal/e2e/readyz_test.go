package e2e

import (
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/store/storetest"
)

// readiness asks base/readyz once and decodes its report.
func readiness(t *testing.T, base string) (int, readyReport) {
	t.Helper()
	r := do(t, "GET", base+"/readyz", map[string]string{"Authorization": ""})
	return r.Status, decode[readyReport](t, r)
}

type readyReport struct {
	Status string
	Store  struct{ Status, Code string }
	Concur struct {
		Status, Code string
		FailingSince time.Time
	}
}

// waitReady polls /readyz until it answers status, or fails the test after 15 s.
func waitReady(t *testing.T, base string, status int) readyReport {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, rep := readiness(t, base)
		if code == status {
			return rep
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %+v, want %d", code, rep, status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// /readyz: ready with Concur up; still ready through a blip of Concur's API (the token is
// cached) and through a single failed token renewal; not ready once renewals have failed
// for GATEWAY_READY_CONCUR_GRACE; ready again once Concur is back.
func TestReadyzThroughConcurBlipsAndOutage(t *testing.T) {
	t.Parallel()
	const grace = 2 * time.Second
	s := startStack(t, map[string]string{"CONCURSIM_TOKEN_TTL": "2s"}, map[string]string{
		"GATEWAY_READY_CONCUR_GRACE":   grace.String(),
		"CONCUR_BREAKER_OPEN_INTERVAL": "1s",
	})
	if rep := waitReady(t, s.gw.URL, 200); rep.Store.Status != "ok" || rep.Concur.Status != "ok" {
		t.Fatalf("ready: %+v", rep)
	}

	// A blip of the API: the batch list fails once; the token is cached, so readiness
	// asks Concur nothing and stays ready.
	s.fault(t, `{"op":"list","mode":"status","status":503,"count":1}`)
	do(t, "GET", s.gw.URL+"/batches", nil)
	if code, rep := readiness(t, s.gw.URL); code != 200 || rep.Concur.Status != "ok" {
		t.Errorf("after an API blip: %d %+v", code, rep)
	}

	// A blip of the token endpoint: one renewal fails; still ready, then ok again.
	time.Sleep(1100 * time.Millisecond) // the 2 s token is renewed once half its life is gone
	s.fault(t, `{"op":"token","mode":"status","status":503,"count":1}`)
	if code, rep := readiness(t, s.gw.URL); code != 200 || rep.Concur.Status != "failing" || rep.Concur.Code != "upstream_unavailable" {
		t.Errorf("after one failed renewal: %d %+v, want 200 with Concur failing", code, rep)
	}
	if rep := waitReady(t, s.gw.URL, 200); rep.Concur.Status != "ok" {
		t.Errorf("after the blip: %+v", rep)
	}

	// An outage: every renewal fails. Ready (failing) until the grace has passed.
	time.Sleep(1100 * time.Millisecond)
	s.fault(t, `{"op":"token","mode":"status","status":503}`)
	code, rep := readiness(t, s.gw.URL)
	if code != 200 || rep.Concur.Status != "failing" {
		t.Fatalf("at the start of the outage: %d %+v", code, rep)
	}
	down := waitReady(t, s.gw.URL, 503)
	if down.Status != "not_ready" || down.Concur.Status != "down" || down.Store.Status != "ok" {
		t.Errorf("during the outage: %+v", down)
	}
	if failed := time.Since(down.Concur.FailingSince); failed < grace {
		t.Errorf("not ready after %v of failures, want at least %v", failed, grace)
	}

	// Concur is back: the next renewal (the token breaker's probe) succeeds.
	s.simAdmin(t, http.MethodDelete, "/_sim/fault", "")
	if rep := waitReady(t, s.gw.URL, 200); rep.Concur.Status != "ok" {
		t.Errorf("after the outage: %+v", rep)
	}
	m := scrape(t, s.gw.URL)
	if m.get("gateway_concur_token_refreshes_total", "result", "failed") < 2 ||
		m.get("gateway_concur_breaker_transitions_total", "breaker", "concur-token", "to", "open") < 1 {
		t.Errorf("the outage is not in the metrics: failed renewals %v, token breaker opened %v",
			m.get("gateway_concur_token_refreshes_total", "result", "failed"),
			m.get("gateway_concur_breaker_transitions_total", "breaker", "concur-token", "to", "open"))
	}
}

// tcpProxy forwards a local port to a server, and can cut every connection at once.
type tcpProxy struct {
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func (p *tcpProxy) listen(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

// cut closes the listener and every connection.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// /readyz is not ready once the store is gone (PostgreSQL behind a proxy that is cut), and
// ready again when it is back.
func TestReadyzWhenTheStoreIsGone(t *testing.T) {
	t.Parallel()
	dbURL := storetest.PostgresURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{target: u.Host}
	if u.Port() == "" {
		p.target = net.JoinHostPort(u.Hostname(), "5432")
	}
	p.listen(t, "127.0.0.1:0")
	t.Cleanup(p.cut)
	addr := p.ln.Addr().String()
	u.Host = addr
	s := startStack(t, nil, map[string]string{
		"GATEWAY_DATABASE_URL": u.String(),
		"GATEWAY_SECRET_KEY":   base64.StdEncoding.EncodeToString(randBytes(t, 32)),
	})
	waitReady(t, s.gw.URL, 200)

	p.cut()
	rep := waitReady(t, s.gw.URL, 503)
	if rep.Status != "not_ready" || rep.Store.Status != "down" || rep.Store.Code != "store_unavailable" {
		t.Errorf("with the store gone: %+v", rep)
	}
	p.listen(t, addr)
	waitReady(t, s.gw.URL, 200)
}
