package concur

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Under load the default transport reuses the connections of earlier calls: rounds of
// DefaultMaxConcurrent calls at once open DefaultMaxConcurrent connections in all, not
// more with every round (the standard library keeps only 2 idle per host).
func TestDefaultTransportKeepsItsConnections(t *testing.T) {
	t.Parallel()
	const n, rounds = DefaultMaxConcurrent, 3
	var opened atomic.Int32
	var arrived sync.WaitGroup
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		arrived.Done()
		arrived.Wait() // every call of the round is in flight at once
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	tr := defaultTransport(5 * time.Second)
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for range rounds {
		arrived.Add(n)
		var done sync.WaitGroup
		for range n {
			done.Go(func() {
				resp, err := client.Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
		}
		done.Wait()
	}
	if got := opened.Load(); got != n {
		t.Errorf("%d rounds of %d calls opened %d connections, want %d", rounds, n, got, n)
	}
}
