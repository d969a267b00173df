// Package loadbench is the gateway's load-test suite: it starts the real simulator, a bare
// reverse proxy (the floor) and the real gateway on loopback, drives the same close through
// each with vegeta, and measures throughput at saturation, latency at a fixed rate, and the
// CPU and allocations each process spends per request, as ratios to the floor measured in
// the same run. It also streams a large payment file through the gateway while watching
// its resident memory.
package loadbench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/auth"
)

// Config is one run of the suite.
type Config struct {
	Gateway, Concursim string // the binaries under test
	Self               string // this suite's own binary: it serves the floor proxy ("proxy")
	WorkDir            string // logs and the gateway's database go here

	Warmup     time.Duration // per target, before anything is measured
	Saturation time.Duration // per target, as fast as Workers go
	Fixed      time.Duration // per target, at FixedShare of the floor's saturation rate
	FixedShare float64       // 0.5: the rate of the latency phase, as a share of the floor's saturation
	Workers    int           // requests in flight
	Batches    int           // batches the closes rotate over (> Workers)
	FileBytes  int64         // size of the payment file streamed through the gateway

	// ProfileDir, when set, receives the gateway's CPU profile of its fixed-rate phase
	// (gateway.cpu.pprof) and its allocation profile (gateway.allocs.pprof), from pprof on
	// its admin listener (GATEWAY_PPROF).
	ProfileDir string

	Progress io.Writer // one line per step
}

// Defaults is the full run of `make bench`.
func Defaults() Config {
	return Config{
		Warmup: 2 * time.Second, Saturation: 8 * time.Second, Fixed: 8 * time.Second, FixedShare: 0.5,
		Workers: 16, Batches: 2000, FileBytes: 1 << 30,
	}
}

// Smoke is the short run of `make bench-smoke`: every step, tiny amounts, no targets.
func Smoke() Config {
	return Config{
		Warmup: 200 * time.Millisecond, Saturation: 500 * time.Millisecond, Fixed: 500 * time.Millisecond,
		FixedShare: 0.5, Workers: 4, Batches: 100, FileBytes: 8 << 20,
	}
}

// Run starts the three processes, measures, stops them and returns the results.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Workers < 1 || cfg.Batches <= cfg.Workers || cfg.FixedShare <= 0 || cfg.FileBytes < 1 {
		return nil, errors.New("loadbench: workers >= 1, batches > workers, a positive fixed share and file size")
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	say := func(format string, a ...any) { _, _ = fmt.Fprintf(cfg.Progress, format+"\n", a...) }
	res := &Result{Started: time.Now().UTC(), Config: cfg, Machine: readMachine()}

	s, err := startStack(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	say("simulator %s, floor proxy %s, gateway %s (logs in %s)", s.sim.URL, s.proxy.URL, s.gw.URL, cfg.WorkDir)

	targets, err := s.targets(ctx, cfg.Batches)
	if err != nil {
		return nil, err
	}
	for _, t := range targets {
		say("warm-up %-9s %v", t.Name, cfg.Warmup)
		if o := attack(t, pace{Workers: cfg.Workers, Duration: cfg.Warmup}); o.OK != o.Requests || o.OK == 0 {
			return nil, fmt.Errorf("warm-up of %s: %d of %d requests failed:%s", t.Name, o.Requests-o.OK, o.Requests, o.failureSummary())
		}
	}

	rows := make([]Row, len(targets))
	for i, t := range targets {
		say("saturate %-9s %v, %d in flight", t.Name, cfg.Saturation, cfg.Workers)
		o, _, err := s.measure(ctx, t, pace{Workers: cfg.Workers, Duration: cfg.Saturation})
		if err != nil {
			return nil, err
		}
		rows[i] = Row{Target: t.Name, Saturation: o.Throughput(), SaturationRequests: o.OK}
	}
	rate := int(rows[floorRow].Saturation * cfg.FixedShare)
	res.FixedRate = max(rate, 1)
	for i, t := range targets {
		say("fixed    %-9s %v at %d/s", t.Name, cfg.Fixed, res.FixedRate)
		var profiled <-chan error
		if cfg.ProfileDir != "" && i == gatewayRow {
			profiled = s.profileGateway(ctx, cfg.ProfileDir, cfg.Fixed)
		}
		o, u, err := s.measure(ctx, t, pace{Rate: res.FixedRate, Workers: 4 * cfg.Workers, Duration: cfg.Fixed})
		if profiled != nil {
			err = errors.Join(err, <-profiled)
		}
		if err != nil {
			return nil, err
		}
		n := float64(o.Requests)
		rows[i].FixedRequests = o.Requests
		rows[i].P50, rows[i].P99, rows[i].P999 = o.Quantile(0.50), o.Quantile(0.99), o.Quantile(0.999)
		rows[i].CPUPerRequest = time.Duration(float64(u.hop.CPU) / n)
		rows[i].AllocBytesPerRequest = u.hop.AllocBytes / n
		rows[i].AllocsPerRequest = u.hop.Allocs / n
		rows[i].UpstreamCPUPerRequest = time.Duration(float64(u.upstream.CPU) / n)
	}
	res.Rows = rows

	// When the gateway cannot carry the floor's half rate, its latency there is queueing.
	// Measure the floor and the gateway again at half the gateway's own saturation too.
	res.CarriedRate = max(int(rows[gatewayRow].Saturation*cfg.FixedShare), 1)
	for _, i := range []int{floorRow, gatewayRow} {
		t := targets[i]
		say("carried  %-9s %v at %d/s", t.Name, cfg.Fixed, res.CarriedRate)
		o, _, err := s.measure(ctx, t, pace{Rate: res.CarriedRate, Workers: 4 * cfg.Workers, Duration: cfg.Fixed})
		if err != nil {
			return nil, err
		}
		rows[i].Carried = [3]time.Duration{o.Quantile(0.50), o.Quantile(0.99), o.Quantile(0.999)}
	}

	say("file     %d MiB from the simulator, then through the gateway", cfg.FileBytes>>20)
	if res.File, err = s.fileBench(ctx, cfg.FileBytes); err != nil {
		return nil, err
	}
	res.Finished = time.Now().UTC()
	return res, nil
}

// Row indexes of Result.Rows.
const (
	simRow = iota
	floorRow
	gatewayRow
)

// stack is the three processes under test.
type stack struct {
	sim, proxy, gw *process
	simCreds       url.Values // the refresh grant the simulator accepts
	apiKey         string     // the gateway's caller key
	client         *http.Client
}

func startStack(ctx context.Context, cfg Config) (_ *stack, err error) {
	s := &stack{client: &http.Client{Timeout: 30 * time.Second}}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	secret, refresh := randomHex(), randomHex()
	s.simCreds = url.Values{"grant_type": {"refresh_token"}, "client_id": {"loadbench"},
		"client_secret": {secret}, "refresh_token": {refresh}}
	s.sim, err = start(ctx, "concursim", cfg.Concursim, nil, []string{
		"CONCURSIM_ADDR=127.0.0.1:0", "CONCURSIM_CLIENT_ID=loadbench",
		"CONCURSIM_CLIENT_SECRET=" + secret, "CONCURSIM_REFRESH_TOKEN=" + refresh,
		// The suite takes an access token of its own for the direct and floor targets: the
		// refresh token must survive the gateway's refreshes and the suite's.
		"CONCURSIM_ROTATE=false",
		fmt.Sprintf("CONCURSIM_LOAD_BATCHES=%d", cfg.Batches),
		fmt.Sprintf("CONCURSIM_LARGE_FILE_BYTES=%d", cfg.FileBytes),
	}, cfg.WorkDir)
	if err != nil {
		return nil, err
	}
	s.proxy, err = start(ctx, "proxy", cfg.Self, []string{"proxy", "-addr", "127.0.0.1:0", "-target", s.sim.URL}, nil, cfg.WorkDir)
	if err != nil {
		return nil, err
	}
	key, hash, err := auth.NewKey()
	if err != nil {
		return nil, err
	}
	s.apiKey = key
	keys, _ := json.Marshal([]map[string]any{{"name": "loadbench", "sha256": hash,
		"scopes": []string{"batches:read", "batches:close", "batches:regenerate"}}})
	secretKey := make([]byte, 32)
	_, _ = rand.Read(secretKey)
	s.gw, err = start(ctx, "gateway", cfg.Gateway, nil, []string{
		"GATEWAY_ADDR=127.0.0.1:0", "CONCUR_BASE_URL=" + s.sim.URL, "CONCUR_CLIENT_ID=loadbench",
		"CONCUR_CLIENT_SECRET=" + secret, "CONCUR_REFRESH_TOKEN=" + refresh,
		"GATEWAY_DATA_DIR=" + filepath.Join(cfg.WorkDir, "gateway-data"),
		"GATEWAY_SECRET_KEY=" + base64.StdEncoding.EncodeToString(secretKey),
		"GATEWAY_API_KEYS=" + string(keys),
		// The per-caller limit (600/min by default) would be the whole measurement.
		"GATEWAY_RATE_LIMIT_PER_MINUTE=0",
		// As in production (README): /metrics, and with Profile /debug/pprof/, on their own listener.
		"GATEWAY_ADMIN_ADDR=127.0.0.1:0",
		fmt.Sprintf("GATEWAY_PPROF=%t", cfg.ProfileDir != ""),
	}, cfg.WorkDir)
	if err != nil {
		return nil, err
	}
	if s.gw.Admin == "" {
		return nil, errors.New("the gateway did not log its admin listener (adminAddr)")
	}
	return s, nil
}

func (s *stack) stop() {
	s.gw.stop()
	s.proxy.stop()
	s.sim.stop()
}

// targets reads the simulator's batch list and builds the three doors to the same closes:
// the simulator itself, the floor proxy in front of it, and the gateway (?regenerate=true,
// since every close after a batch's first closes it again, which the gateway lets through
// only on purpose, auditing each).
func (s *stack) targets(ctx context.Context, n int) ([]*target, error) {
	token, err := s.accessToken(ctx)
	if err != nil {
		return nil, err
	}
	batches, err := s.loadBatches(ctx, token)
	if err != nil {
		return nil, err
	}
	if len(batches) < n {
		return nil, fmt.Errorf("the simulator lists %d load batches, want %d", len(batches), n)
	}
	concur := http.Header{"Authorization": {"Bearer " + token}}
	direct := &target{Name: "simulator", Method: http.MethodPost, Header: concur, Metrics: s.sim.URL + "/_sim/metrics", proc: s.sim}
	floor := &target{Name: "floor", Method: http.MethodPost, Header: concur, Metrics: s.proxy.URL + proxyMetricsPath, proc: s.proxy}
	gw := &target{Name: "gateway", Method: http.MethodPost, Header: http.Header{"Authorization": {"Bearer " + s.apiKey}},
		Metrics: s.gw.Admin + "/metrics", proc: s.gw}
	for _, b := range batches {
		u, err := url.Parse(b.URL)
		if err != nil {
			return nil, fmt.Errorf("batch %s: %w", b.ID, err)
		}
		direct.URLs = append(direct.URLs, b.URL+"/close")
		floor.URLs = append(floor.URLs, s.proxy.URL+u.EscapedPath()+"/close")
		gw.URLs = append(gw.URLs, s.gw.URL+"/batches/"+url.PathEscape(b.ID)+"/close?regenerate=true")
	}
	return []*target{direct, floor, gw}, nil
}

// measured is the usage a phase charged to the process behind the target (hop) and to the
// simulator behind it (upstream; for the direct target, the same process).
type measured struct{ hop, upstream usage }

// measure runs a phase against t with the usage of its process and the simulator read
// before and after, and fails when any request did not succeed.
func (s *stack) measure(ctx context.Context, t *target, p pace) (outcome, measured, error) {
	read := func() (hop, up usage, err error) {
		if hop, err = t.proc.usage(ctx, s.client, t.Metrics); err != nil || t.proc == s.sim {
			return hop, hop, err // the direct door: the simulator is the hop
		}
		up, err = s.sim.usage(ctx, s.client, s.sim.URL+"/_sim/metrics")
		return
	}
	hop0, up0, err := read()
	if err != nil {
		return outcome{}, measured{}, err
	}
	o := attack(t, p)
	hop1, up1, err := read()
	if err != nil {
		return outcome{}, measured{}, err
	}
	if o.OK != o.Requests || o.OK == 0 {
		return outcome{}, measured{}, fmt.Errorf("%s: %d of %d requests failed:%s", t.Name, o.Requests-o.OK, o.Requests, o.failureSummary())
	}
	return o, measured{hop: hop1.sub(hop0), upstream: up1.sub(up0)}, nil
}

func (s *stack) accessToken(ctx context.Context) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.sim.URL+"/oauth2/v0/token",
		strings.NewReader(s.simCreds.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("simulator token: %s %v", resp.Status, err)
	}
	return tok.AccessToken, nil
}

type listed struct {
	ID  string `xml:"BatchID"`
	URL string `xml:"Batch-URL"`
}

// loadBatches lists the simulator's open "load-" batches, in list order.
func (s *stack) loadBatches(ctx context.Context, token string) ([]listed, error) {
	all, err := s.list(ctx, token)
	if err != nil {
		return nil, err
	}
	var out []listed
	for _, b := range all {
		if strings.HasPrefix(b.ID, "load-") {
			out = append(out, b)
		}
	}
	return out, nil
}

func (s *stack) list(ctx context.Context, token string) ([]listed, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.sim.URL+"/api/expense/paymentbatch/v1.1/batchlist/OPEN", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var list struct {
		Batches []listed `xml:"BatchSummary"`
	}
	if err := xml.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&list); err != nil {
		return nil, fmt.Errorf("simulator batch list: %s %w", resp.Status, err)
	}
	return list.Batches, nil
}

func randomHex() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Result is one run of the suite.
type Result struct {
	Started, Finished time.Time
	Config            Config
	Machine           Machine
	FixedRate         int   // requests per second of the latency phase
	CarriedRate       int   // FixedShare of the gateway's saturation: a rate it can carry
	Rows              []Row // simulator, floor, gateway
	File              FileResult
}

// Row is what the suite measured through one door.
type Row struct {
	Target             string
	Saturation         float64 // successful closes per second, Workers in flight
	SaturationRequests int

	FixedRequests        int
	P50, P99, P999       time.Duration // at the fixed rate
	CPUPerRequest        time.Duration // of the process behind the door, at the fixed rate
	AllocBytesPerRequest float64       // its Go heap allocations
	AllocsPerRequest     float64
	// UpstreamCPUPerRequest is the simulator's share (for the simulator row, the same).
	UpstreamCPUPerRequest time.Duration
	// Carried is p50, p99 and p99.9 at CarriedRate (floor and gateway only).
	Carried [3]time.Duration
}
