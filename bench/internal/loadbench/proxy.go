package loadbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// proxyMetricsPath is where the floor proxy answers its own runtime metrics, instead of
// forwarding.
const proxyMetricsPath = "/_proxy/metrics"

// idleConnsPerHost is the keep-alive pool of the floor proxy towards the simulator: as
// large as the suite's concurrency, so the floor never pays for new connections (the
// standard library's default of 2 would, and make the floor look worse than it is).
const idleConnsPerHost = 64

// ServeProxy is the floor: a bare httputil.ReverseProxy to target, one hop and nothing
// else, listening on addr until ctx ends. It logs its "listening" line as JSON to stdout.
func ServeProxy(ctx context.Context, addr, target string, stdout io.Writer) error {
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("proxy target %q: want an absolute URL", target)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = idleConnsPerHost
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = t

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET "+proxyMetricsPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/", rp)

	return serveUntil(ctx, addr, mux, stdout)
}

// serveUntil serves h on addr, says where on stdout (the "listening" line the suite waits
// for), and shuts down gracefully when ctx ends.
func serveUntil(ctx context.Context, addr string, h http.Handler, stdout io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	line, _ := json.Marshal(map[string]string{"message": "listening", "addr": ln.Addr().String()})
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
