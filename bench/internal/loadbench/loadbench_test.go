package loadbench

import (
	"bytes"
	"image/png"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

func TestParseStatCPU(t *testing.T) {
	t.Parallel()
	// A command name with spaces and parentheses; utime 250, stime 50 ticks.
	stat := "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 1000000 500"
	got, err := parseStatCPU(stat)
	if err != nil || got != 3*time.Second {
		t.Errorf("parseStatCPU = %v, %v; want 3s", got, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 x 0"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q) accepted", bad)
		}
	}
}

func TestParseRSS(t *testing.T) {
	t.Parallel()
	got, err := parseRSS("Name:\tgateway\nVmPeak:\t  999 kB\nVmRSS:\t   51712 kB\nThreads: 9\n")
	if err != nil || got != 51712<<10 {
		t.Errorf("parseRSS = %d, %v", got, err)
	}
	if _, err := parseRSS("Name: x\n"); err == nil {
		t.Error("parseRSS without VmRSS accepted")
	}
}

func TestQuantileNearestRank(t *testing.T) {
	t.Parallel()
	o := outcome{}
	for i := 1; i <= 1000; i++ {
		o.Latencies = append(o.Latencies, time.Duration(i)*time.Microsecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 500 * time.Microsecond, 0.99: 990 * time.Microsecond,
		0.999: 999 * time.Microsecond, 1: time.Millisecond, 0: time.Microsecond} {
		if got := o.Quantile(q); got != want {
			t.Errorf("Quantile(%v) = %v, want %v", q, got, want)
		}
	}
	if (outcome{}).Quantile(0.99) != 0 {
		t.Error("Quantile of nothing is not 0")
	}
	o.OK, o.Elapsed = 1000, 2*time.Second
	if o.Throughput() != 500 {
		t.Errorf("Throughput = %v", o.Throughput())
	}
}

// Closes of one batch never overlap: the targeter takes every URL once before any twice.
func TestTargeterRoundRobin(t *testing.T) {
	t.Parallel()
	tg := &target{Method: "POST", URLs: []string{"a", "b", "c"}}
	next := tg.targeter()
	var got []string
	for range 7 {
		var v vegeta.Target
		if err := next(&v); err != nil || v.Method != "POST" {
			t.Fatal(err, v.Method)
		}
		got = append(got, v.URL)
	}
	if strings.Join(got, "") != "abcabca" {
		t.Errorf("order %v", got)
	}
}

func sample() *Result {
	at := time.Date(2026, 11, 24, 16, 0, 0, 0, time.UTC)
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	us := func(n int) time.Duration { return time.Duration(n) * time.Microsecond }
	return &Result{
		Started: at, Finished: at.Add(3 * time.Minute), Config: Defaults(),
		Machine: Machine{CPU: "Test CPU", Cores: 2, MemoryGB: 24, Kernel: "Linux 6", Go: "go1.26", Commit: "abc",
			LoadBefore: "1.00 0.50 0.25", LoadAfter: "2.00 1.00 0.50"},
		Close: Group{Rate: 1000, Rows: []Row{
			{Target: "simulator", Saturation: 40000, P50: ms(0.1), P99: ms(1), P999: ms(2), CPUPerRequest: us(30), AllocBytesPerRequest: 4096},
			{Target: "floor", Saturation: 10000, P50: ms(0.3), P99: ms(2), P999: ms(4), CPUPerRequest: us(100), AllocBytesPerRequest: 40 << 10},
			// The durable floor: 2400/s, 200 µs a close, p99 3 ms.
			{Target: "durable floor", Saturation: 2400, P50: ms(0.8), P99: ms(3), P999: ms(6), CPUPerRequest: us(200), AllocBytesPerRequest: 42 << 10},
			// The gateway: 2000/s (0.83x: met), 400 µs (2x: missed), p99 +1.5 ms (met), 20 KiB (met).
			{Target: "gateway", Saturation: 2000, P50: ms(1), P99: ms(4.5), P999: ms(8), CPUPerRequest: us(400), AllocBytesPerRequest: 20 << 10},
		}},
		Get: Group{Rate: 3000, Rows: []Row{
			{Target: "floor", Saturation: 12000, P50: ms(0.2), P99: ms(1), P999: ms(2), CPUPerRequest: us(80)},
			// CPU 1.5x (met), p99 +2 ms (missed).
			{Target: "GET /batches/{id}", Saturation: 6000, P50: ms(0.4), P99: ms(3), P999: ms(5), CPUPerRequest: us(120)},
		}},
		List: Group{Rate: 1000, Rows: []Row{
			{Target: "floor", Saturation: 12000, CPUPerRequest: us(80)},
			{Target: "GET /batches", Saturation: 2000, CPUPerRequest: us(500)},
		}},
		PostgresSkipped: "PostgreSQL did not answer: dial tcp: refused",
		File:            FileResult{Bytes: 1 << 30, Direct: time.Second, Gateway: 2 * time.Second, IdleRSS: 40 << 20, PeakRSS: 60 << 20},
	}
}

func TestChecks(t *testing.T) {
	t.Parallel()
	got := map[string]string{}
	for _, c := range sample().Checks() {
		v := "missed"
		switch {
		case !c.Judged:
			v = "not judged"
		case c.Met:
			v = "met"
		}
		got[c.Target] = v
	}
	want := map[string]string{
		"close, SQLite: CPU per close <= 1.5x the durable floor's":                                               "missed",
		"close, SQLite: throughput >= 0.7x the durable floor's":                                                  "met",
		"close, SQLite: p99 added over the durable floor at 1000/s (50% of the gateway's saturation) <= 2.00 ms": "met",
		"close, SQLite: gateway heap allocation per close <= 32 KiB":                                             "met",
		"close, PostgreSQL: the four targets above":                                                              "not judged",
		"GET /batches/{id}: CPU <= 2x the bare floor's":                                                          "met",
		"GET /batches/{id}: p99 added over the bare floor at 3000/s (50% of its saturation) <= 1.00 ms":          "missed",
		"batch list of 10,000 from Concur: < 300 ms, peak heap < 64 MiB":                                         "not judged",
		"gateway RSS while streaming 1024 MiB within 16 MiB of idle":                                             "missed",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
	if m := margin(1, 2); m != "2.0x under the limit" {
		t.Errorf("margin(1,2) = %q", m)
	}
	if m := margin(3, 2); m != "1.50x over the limit" {
		t.Errorf("margin(3,2) = %q", m)
	}
	if m := marginAtLeast(0.35, 0.7); m != "2.00x short of the minimum" {
		t.Errorf("marginAtLeast = %q", m)
	}
}

// With the micro-benchmarks' figures, the batch list is judged too; with the PostgreSQL
// mode, its four targets.
func TestChecksWithMicroAndPostgres(t *testing.T) {
	t.Parallel()
	r := sample()
	r.Micro = &Micro{ListRuns: 6, ListTime: 250 * time.Millisecond, ListPeakMiB: 80}
	pg := r.Close
	pg.Rows = pg.Rows[2:]
	r.Postgres = &pg
	verdicts := map[string]bool{}
	for _, c := range r.Checks() {
		if !c.Judged {
			t.Errorf("%s: not judged (%s)", c.Target, c.Margin)
		}
		verdicts[c.Target] = c.Met
	}
	if !verdicts["batch list of 10,000 from Concur (encoding/xml) < 300.00 ms"] || verdicts["batch list of 10,000: peak heap < 64 MiB"] {
		t.Errorf("list verdicts: %v", verdicts)
	}
	if verdicts["close, PostgreSQL: CPU per close <= 1.5x the durable floor's"] || !verdicts["close, PostgreSQL: throughput >= 0.7x the durable floor's"] {
		t.Errorf("PostgreSQL verdicts: %v", verdicts)
	}
}

func TestReport(t *testing.T) {
	t.Parallel()
	r := sample()
	var md bytes.Buffer
	if err := r.WriteMarkdown(&md, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Test CPU (2 cores, 24 GiB)", "1.00 0.50 0.25 at the start", "| gateway (full path) | 2000/s |",
		"| **gateway / durable floor** | 0.83x |", "| 2.00x |",
		"**missed**, 1.33x over the limit", "met, 1.3x under the limit", "**Skipped**: PostgreSQL did not answer",
		"| GET /batches/{id} | 6000/s | 3000/s |", "not judged: the micro-benchmarks did not run"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	md.Reset()
	if err := r.WriteMarkdown(&md, true); err != nil || strings.Contains(md.String(), "missed") {
		t.Errorf("a smoke run judges targets:\n%s", md.String())
	}
	var img bytes.Buffer
	if err := r.WritePNG(&img); err != nil {
		t.Fatal(err)
	}
	if p, err := png.Decode(&img); err != nil || p.Bounds().Dx() < 600 {
		t.Errorf("chart: %v", err)
	}
}

func TestParseMicro(t *testing.T) {
	t.Parallel()
	const out = `goos: linux
pkg: github.com/finplat/payment-batch-gateway/internal/store
BenchmarkCloseCommits/sync=full-2         	    2000	   1714870 ns/op	       584.5 closes/s	      6477 max-µs	       642.4 p50-µs	      3007 p99-µs	      5885 p99.9-µs	 300 sched-p99-µs
BenchmarkCloseCommits/sync=full-2         	    2000	   1714870 ns/op	       584.5 closes/s	      8000 max-µs	       700 p50-µs	      5000 p99-µs	      7000 p99.9-µs	 400 sched-p99-µs
BenchmarkCloseCommits/sync=off-2     	    2000	   1715517 ns/op	       584.5 closes/s	      5694 max-µs	       685.6 p50-µs	      2132 p99-µs	      5451 p99.9-µs
pkg: github.com/finplat/payment-batch-gateway/bench
BenchmarkListBatches/n=1000-2    	      10	   9000000 ns/op	 1.0 peak-heap-MiB
BenchmarkListBatches/n=10000-2   	      10	 200000000 ns/op	 3.0 peak-heap-MiB
BenchmarkListBatches/n=10000-2   	      10	 300000000 ns/op	 2.5 peak-heap-MiB
BenchmarkListBatches/n=10000-2   	      10	 250000000 ns/op	 2.0 peak-heap-MiB
`
	m, err := ParseMicro(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want := &Micro{ListRuns: 3, ListTime: 250 * time.Millisecond, ListPeakMiB: 3, TailRuns: 1,
		Full: [4]float64{671.2, 4003.5, 6442.5, 7238.5}, Off: [4]float64{685.6, 2132, 5451, 5694}, Sched: [4]float64{350, 0}}
	if diff := cmp.Diff(want, m, cmpopts.EquateApprox(0, 0.01)); diff != "" {
		t.Errorf("ParseMicro (-want +got):\n%s", diff)
	}
}

func TestNumbered(t *testing.T) {
	t.Parallel()
	if got := numbered("a = ? AND b IN (?, ?)"); got != "a = $1 AND b IN ($2, $3)" {
		t.Errorf("numbered = %q", got)
	}
}

// A backend new since the first reading counts from its start; one gone is left out.
func TestBackendsCPU(t *testing.T) {
	t.Parallel()
	before := map[int]time.Duration{1: time.Second, 2: 2 * time.Second}
	after := map[int]time.Duration{1: 3 * time.Second, 3: time.Second}
	if got := backendsCPU(before, after); got != 3*time.Second {
		t.Errorf("backendsCPU = %v, want 3s", got)
	}
}
