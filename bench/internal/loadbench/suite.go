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
	"slices"
	"strings"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/auth"
)

// Config is one run of the suite.
type Config struct {
	Gateway, Concursim string // the binaries under test
	Self               string // this suite's own binary: it serves the floors ("proxy", "durable")
	WorkDir            string // logs and the databases of the gateway and the durable floor go here
	// Postgres is the PostgreSQL server of the PostgreSQL mode (postgres://...; it must run
	// on this machine, for its backends' CPU); "" leaves the mode out, as does a server that
	// does not answer (the report says so).
	Postgres string

	Warmup     time.Duration // per door, before anything is measured
	Saturation time.Duration // per door, as fast as Workers go
	Fixed      time.Duration // per door, at FixedShare of the judged door's saturation
	FixedShare float64       // 0.5: the rate of the latency phase, as a share of that saturation
	Workers    int           // requests in flight
	Batches    int           // batches the closes rotate over (> Workers)
	FileBytes  int64         // size of the payment file streamed through the gateway

	// Only, when set, runs only the groups it names (comma-separated: close, postgres,
	// get, list, file), for a quick look: the verdicts of the rest are then meaningless.
	Only string

	// ProfileDir, when set, receives the gateway's CPU profile of its fixed-rate phase
	// (gateway.cpu.pprof) and its allocation profile (gateway.allocs.pprof), from pprof on
	// its admin listener (GATEWAY_PPROF).
	ProfileDir string

	Progress io.Writer `json:"-"` // one line per step
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

// Run starts the processes, measures, stops them and returns the results.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Workers < 1 || cfg.Batches <= cfg.Workers || cfg.FixedShare <= 0 || cfg.FileBytes < 1 {
		return nil, errors.New("loadbench: workers >= 1, batches > workers, a positive fixed share and file size")
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	say := func(format string, a ...any) { _, _ = fmt.Fprintf(cfg.Progress, format+"\n", a...) }
	res := &Result{Started: time.Now().UTC(), Config: cfg, Machine: readMachine()}

	var pg *pgServer
	if cfg.Postgres != "" {
		var err error
		if pg, err = openPG(ctx, cfg.Postgres); err != nil {
			res.PostgresSkipped = "PostgreSQL did not answer: " + err.Error()
		}
	} else {
		res.PostgresSkipped = "no PostgreSQL server given (-postgres)"
	}
	if res.PostgresSkipped != "" {
		say("%s", strings.Repeat("*", 78))
		say("* PostgreSQL mode SKIPPED: %s", res.PostgresSkipped)
		say("%s", strings.Repeat("*", 78))
	}
	defer pg.close()

	s, err := startStack(ctx, cfg, pg)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	say("simulator %s, floor %s, durable floor %s, gateway %s (logs in %s)", s.sim.URL, s.proxy.URL, s.durable.URL, s.gw.URL, cfg.WorkDir)
	d, err := s.targets(ctx, cfg.Batches)
	if err != nil {
		return nil, err
	}

	want := func(group string) bool {
		return cfg.Only == "" || slices.Contains(strings.Split(cfg.Only, ","), group)
	}
	if !want("postgres") && res.PostgresSkipped == "" {
		res.PostgresSkipped = "left out (-only)"
		res.Postgres = nil
	}
	if want("close") {
		if res.Close, err = s.group(ctx, cfg, say, "close", []*target{d.sim, d.floor, d.durable, d.gw}, len(closeLabels)-1, cfg.ProfileDir); err != nil {
			return nil, err
		}
	}
	if d.pgDurable != nil && want("postgres") {
		pgRes, err := s.group(ctx, cfg, say, "postgres", []*target{d.pgDurable, d.pgGateway}, 1, "")
		if err != nil {
			return nil, err
		}
		res.Postgres = &pgRes
	}
	if want("get") {
		if res.Get, err = s.group(ctx, cfg, say, "get", []*target{d.readFloor, d.get}, 1, ""); err != nil {
			return nil, err
		}
	}
	if want("list") {
		if res.List, err = s.group(ctx, cfg, say, "list", []*target{d.readFloor, d.list}, 1, ""); err != nil {
			return nil, err
		}
	}
	if want("file") {
		say("file     %d MiB from the simulator, then through the gateway", cfg.FileBytes>>20)
		if res.File, err = s.fileBench(ctx, cfg.FileBytes); err != nil {
			return nil, err
		}
	}
	res.Finished = time.Now().UTC()
	res.Machine.LoadAfter = readLoad()
	return res, nil
}

// group measures doors side by side: warm-up, saturation, then each at FixedShare of the
// saturation of doors[judged] (a rate that door can carry), for latency, CPU and heap.
func (s *stack) group(ctx context.Context, cfg Config, say func(string, ...any), name string, doors []*target, judged int, profileDir string) (Group, error) {
	for _, t := range doors {
		say("%-8s warm-up  %-16s %v", name, t.Name, cfg.Warmup)
		if o := attack(t, pace{Workers: cfg.Workers, Duration: cfg.Warmup}); o.OK != o.Requests || o.OK == 0 {
			return Group{}, fmt.Errorf("warm-up of %s: %d of %d requests failed:%s", t.Name, o.Requests-o.OK, o.Requests, o.failureSummary())
		}
	}
	g := Group{Rows: make([]Row, len(doors))}
	for i, t := range doors {
		say("%-8s saturate %-16s %v, %d in flight", name, t.Name, cfg.Saturation, cfg.Workers)
		o, _, err := s.measure(ctx, t, pace{Workers: cfg.Workers, Duration: cfg.Saturation})
		if err != nil {
			return Group{}, err
		}
		g.Rows[i] = Row{Target: t.Name, Saturation: o.Throughput(), SaturationRequests: o.OK}
	}
	g.Rate = max(int(g.Rows[judged].Saturation*cfg.FixedShare), 1)
	for i, t := range doors {
		say("%-8s fixed    %-16s %v at %d/s", name, t.Name, cfg.Fixed, g.Rate)
		var profiled <-chan error
		if profileDir != "" && i == judged {
			profiled = s.profileGateway(ctx, profileDir, cfg.Fixed)
		}
		o, u, err := s.measure(ctx, t, pace{Rate: g.Rate, Workers: 4 * cfg.Workers, Duration: cfg.Fixed})
		if profiled != nil {
			err = errors.Join(err, <-profiled)
		}
		if err != nil {
			return Group{}, err
		}
		n := float64(o.Requests)
		r := &g.Rows[i]
		r.FixedRequests = o.Requests
		r.P50, r.P99, r.P999 = o.Quantile(0.50), o.Quantile(0.99), o.Quantile(0.999)
		r.CPUPerRequest = time.Duration(float64(u.hop.CPU+u.db) / n)
		r.DBCPUPerRequest = time.Duration(float64(u.db) / n)
		r.AllocBytesPerRequest = u.hop.AllocBytes / n
		r.AllocsPerRequest = u.hop.Allocs / n
		r.UpstreamCPUPerRequest = time.Duration(float64(u.upstream.CPU) / n)
	}
	return g, nil
}

// closeLabels name the close group's doors, in order.
var closeLabels = []string{"simulator (Concur alone)", "bare floor (reverse proxy)", "durable floor (proxy + 2 commits)", "gateway (full path)"}

// stack is the processes under test.
type stack struct {
	sim, proxy, durable, gw *process
	pgDurable, pgGateway    *process // the PostgreSQL mode; nil without it
	pg                      *pgServer
	simCreds                url.Values // the refresh grant the simulator accepts
	apiKey                  string     // the gateway's caller key
	client                  *http.Client
}

// The application names of the PostgreSQL mode's connections, whose backends' CPU the
// suite counts with the process they serve.
const (
	pgAppDurable = "loadbench-durable"
	pgAppGateway = "loadbench-gateway"
)

func startStack(ctx context.Context, cfg Config, pg *pgServer) (_ *stack, err error) {
	s := &stack{client: &http.Client{Timeout: 30 * time.Second}, pg: pg}
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
	s.durable, err = start(ctx, "durable", cfg.Self, []string{"durable", "-addr", "127.0.0.1:0", "-target", s.sim.URL,
		"-data", filepath.Join(cfg.WorkDir, "durable-data")}, nil, cfg.WorkDir)
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
	gwEnv := func(dataDir string) []string {
		return []string{
			"GATEWAY_ADDR=127.0.0.1:0", "CONCUR_BASE_URL=" + s.sim.URL, "CONCUR_CLIENT_ID=loadbench",
			"CONCUR_CLIENT_SECRET=" + secret, "CONCUR_REFRESH_TOKEN=" + refresh,
			"GATEWAY_DATA_DIR=" + filepath.Join(cfg.WorkDir, dataDir),
			"GATEWAY_SECRET_KEY=" + base64.StdEncoding.EncodeToString(secretKey),
			"GATEWAY_API_KEYS=" + string(keys),
			// The per-caller limit (600/min by default) would be the whole measurement.
			"GATEWAY_RATE_LIMIT_PER_MINUTE=0",
			// As in production (README): /metrics, and with Profile /debug/pprof/, on their own listener.
			"GATEWAY_ADMIN_ADDR=127.0.0.1:0",
			fmt.Sprintf("GATEWAY_PPROF=%t", cfg.ProfileDir != ""),
		}
	}
	if s.gw, err = start(ctx, "gateway", cfg.Gateway, nil, gwEnv("gateway-data"), cfg.WorkDir); err != nil {
		return nil, err
	}
	if s.gw.Admin == "" {
		return nil, errors.New("the gateway did not log its admin listener (adminAddr)")
	}
	if pg == nil {
		return s, nil
	}
	run := strings.ToLower(randomHex()[:8])
	floorURL, err := pg.schema(ctx, "loadbench_"+run+"_floor", pgAppDurable)
	if err != nil {
		return nil, err
	}
	gwURL, err := pg.schema(ctx, "loadbench_"+run+"_gateway", pgAppGateway)
	if err != nil {
		return nil, err
	}
	s.pgDurable, err = start(ctx, "durable-pg", cfg.Self, []string{"durable", "-addr", "127.0.0.1:0", "-target", s.sim.URL,
		"-database-url", floorURL}, nil, cfg.WorkDir)
	if err != nil {
		return nil, err
	}
	if s.pgGateway, err = start(ctx, "gateway-pg", cfg.Gateway, nil,
		append(gwEnv("gateway-pg-data"), "GATEWAY_DATABASE_URL="+gwURL), cfg.WorkDir); err != nil {
		return nil, err
	}
	if s.pgGateway.Admin == "" {
		return nil, errors.New("the PostgreSQL gateway did not log its admin listener (adminAddr)")
	}
	return s, nil
}

func (s *stack) stop() {
	s.pgGateway.stop()
	s.gw.stop()
	s.pgDurable.stop()
	s.durable.stop()
	s.proxy.stop()
	s.sim.stop()
}

// doors are the targets of the run.
type doors struct {
	sim, floor, durable, gw *target // one close, four ways
	pgDurable, pgGateway    *target // the PostgreSQL mode, nil without it
	readFloor, get, list    *target // the reads: a bare hop, GET /batches/{id}, GET /batches
}

// targets reads the simulator's batch list, stores the batches in the durable floors, and
// builds the doors to the same closes: the simulator itself, the bare floor in front of
// it, the durable floor, and the gateway (?regenerate=true, since every close after a
// batch's first closes it again, which the gateway lets through only on purpose, auditing
// each); and the doors of the reads.
func (s *stack) targets(ctx context.Context, n int) (*doors, error) {
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
	var seed strings.Builder
	for _, b := range batches {
		fmt.Fprintf(&seed, "%s %s\n", b.ID, b.URL)
	}
	for _, p := range []*process{s.durable, s.pgDurable} {
		if p == nil {
			continue
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+durableSeedPath, strings.NewReader(seed.String()))
		resp, err := s.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("seeding %s: %w", p.name, err)
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return nil, fmt.Errorf("seeding %s: %s %s", p.name, resp.Status, b)
		}
	}
	concur := http.Header{"Authorization": {"Bearer " + token}}
	gwAuth := http.Header{"Authorization": {"Bearer " + s.apiKey}}
	simMetrics := s.sim.URL + "/_sim/metrics"
	d := &doors{
		sim:       &target{Name: "simulator", Method: http.MethodPost, Header: concur, Metrics: simMetrics, proc: s.sim},
		floor:     &target{Name: "floor", Method: http.MethodPost, Header: concur, Metrics: s.proxy.URL + proxyMetricsPath, proc: s.proxy},
		durable:   &target{Name: "durable floor", Method: http.MethodPost, Header: concur, Metrics: s.durable.URL + proxyMetricsPath, proc: s.durable},
		gw:        &target{Name: "gateway", Method: http.MethodPost, Header: gwAuth, Metrics: s.gw.Admin + "/metrics", proc: s.gw},
		readFloor: &target{Name: "floor", Method: http.MethodGet, Header: concur, Metrics: s.proxy.URL + proxyMetricsPath, proc: s.proxy, URLs: []string{s.proxy.URL + "/_sim/healthz"}},
		get:       &target{Name: "GET /batches/{id}", Method: http.MethodGet, Header: gwAuth, Metrics: s.gw.Admin + "/metrics", proc: s.gw},
		list:      &target{Name: "GET /batches", Method: http.MethodGet, Header: gwAuth, Metrics: s.gw.Admin + "/metrics", proc: s.gw, URLs: []string{s.gw.URL + "/batches"}},
	}
	if s.pgDurable != nil {
		d.pgDurable = &target{Name: "durable floor", Method: http.MethodPost, Header: concur, Metrics: s.pgDurable.URL + proxyMetricsPath,
			proc: s.pgDurable, db: s.pg, dbApp: pgAppDurable}
		d.pgGateway = &target{Name: "gateway", Method: http.MethodPost, Header: gwAuth, Metrics: s.pgGateway.Admin + "/metrics",
			proc: s.pgGateway, db: s.pg, dbApp: pgAppGateway}
	}
	for _, b := range batches {
		u, err := url.Parse(b.URL)
		if err != nil {
			return nil, fmt.Errorf("batch %s: %w", b.ID, err)
		}
		id := url.PathEscape(b.ID)
		d.sim.URLs = append(d.sim.URLs, b.URL+"/close")
		d.floor.URLs = append(d.floor.URLs, s.proxy.URL+u.EscapedPath()+"/close")
		d.durable.URLs = append(d.durable.URLs, s.durable.URL+u.EscapedPath()+"/close")
		d.gw.URLs = append(d.gw.URLs, s.gw.URL+"/batches/"+id+"/close?regenerate=true")
		d.get.URLs = append(d.get.URLs, s.gw.URL+"/batches/"+id)
		if s.pgDurable != nil {
			d.pgDurable.URLs = append(d.pgDurable.URLs, s.pgDurable.URL+u.EscapedPath()+"/close")
			d.pgGateway.URLs = append(d.pgGateway.URLs, s.pgGateway.URL+"/batches/"+id+"/close?regenerate=true")
		}
	}
	return d, nil
}

// measured is the usage a phase charged to the process behind the target (hop), to its
// database's backends (db: PostgreSQL) and to the simulator behind it (upstream; for the
// direct target, the same process).
type measured struct {
	hop, upstream usage
	db            time.Duration
}

// measure runs a phase against t with the usage of its process, its database backends and
// the simulator read before and after, and fails when any request did not succeed.
func (s *stack) measure(ctx context.Context, t *target, p pace) (outcome, measured, error) {
	read := func() (hop, up usage, db map[int]time.Duration, err error) {
		if t.db != nil {
			if db, err = t.db.backends(ctx, t.dbApp); err != nil {
				return
			}
		}
		if hop, err = t.proc.usage(ctx, s.client, t.Metrics); err != nil || t.proc == s.sim {
			return hop, hop, db, err // the direct door: the simulator is the hop
		}
		up, err = s.sim.usage(ctx, s.client, s.sim.URL+"/_sim/metrics")
		return
	}
	hop0, up0, db0, err := read()
	if err != nil {
		return outcome{}, measured{}, err
	}
	o := attack(t, p)
	hop1, up1, db1, err := read()
	if err != nil {
		return outcome{}, measured{}, err
	}
	if o.OK != o.Requests || o.OK == 0 {
		return outcome{}, measured{}, fmt.Errorf("%s: %d of %d requests failed:%s", t.Name, o.Requests-o.OK, o.Requests, o.failureSummary())
	}
	return o, measured{hop: hop1.sub(hop0), upstream: up1.sub(up0), db: backendsCPU(db0, db1)}, nil
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
	Close             Group  // simulator, bare floor, durable floor, gateway: SQLite
	Postgres          *Group // durable floor, gateway: PostgreSQL; nil when skipped
	PostgresSkipped   string // why, when it was
	Get, List         Group  // bare floor, GET /batches/{id}; bare floor, GET /batches
	File              FileResult
	Micro             *Micro  // from the micro-benchmarks (loadbench report); nil before
	Verdicts          []Check // the targets and how the run fared, as written (Checks)
}

// Group is doors measured side by side, the latency phase at Rate: FixedShare of the
// saturation of the door judged (the gateway's).
type Group struct {
	Rate int
	Rows []Row
}

// Row is what the suite measured through one door.
type Row struct {
	Target             string
	Saturation         float64 // successful requests per second, Workers in flight
	SaturationRequests int

	FixedRequests  int
	P50, P99, P999 time.Duration // at the group's rate
	// CPUPerRequest is of the process behind the door and, in the PostgreSQL mode, of the
	// database backends serving it (DBCPUPerRequest, included), at the group's rate.
	CPUPerRequest, DBCPUPerRequest time.Duration
	AllocBytesPerRequest           float64 // the process's Go heap allocations
	AllocsPerRequest               float64
	// UpstreamCPUPerRequest is the simulator's share (for the simulator row, the same).
	UpstreamCPUPerRequest time.Duration
}
