package loadbench

import (
	"bytes"
	"image/png"
	"strings"
	"testing"
	"time"

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
	return &Result{
		Started: at, Finished: at.Add(3 * time.Minute), Config: Defaults(), FixedRate: 5000, CarriedRate: 2500,
		Machine: Machine{CPU: "Test CPU", Cores: 2, MemoryGB: 24, Kernel: "Linux 6", Go: "go1.26", Commit: "abc"},
		Rows: []Row{
			{Target: "simulator", Saturation: 40000, P50: 100 * time.Microsecond, P99: time.Millisecond, P999: 2 * time.Millisecond, CPUPerRequest: 30 * time.Microsecond, AllocBytesPerRequest: 4096},
			{Target: "floor", Saturation: 10000, P50: 300 * time.Microsecond, P99: 2 * time.Millisecond, P999: 4 * time.Millisecond, CPUPerRequest: 100 * time.Microsecond, AllocBytesPerRequest: 40 << 10,
				Carried: [3]time.Duration{200 * time.Microsecond, time.Millisecond, 3 * time.Millisecond}},
			{Target: "gateway", Saturation: 5000, P50: 500 * time.Microsecond, P99: 2500 * time.Microsecond, P999: 5 * time.Millisecond, CPUPerRequest: 300 * time.Microsecond, AllocBytesPerRequest: 20 << 10,
				Carried: [3]time.Duration{400 * time.Microsecond, 1500 * time.Microsecond, 4 * time.Millisecond}},
		},
		File: FileResult{Bytes: 1 << 30, Direct: time.Second, Gateway: 2 * time.Second, IdleRSS: 40 << 20, PeakRSS: 60 << 20},
	}
}

func TestChecks(t *testing.T) {
	t.Parallel()
	got := map[string]bool{}
	for _, c := range sample().Checks() {
		got[strings.Fields(c.Target)[1]] = c.Met
	}
	// CPU 3x the floor: missed; p99 +0.5 ms: met; 20 KiB: met; RSS +20 MiB: missed.
	want := map[string]bool{"CPU": false, "added": true, "heap": true, "RSS": false}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s met = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	if m := margin(1, 2); m != "2.0x under the limit" {
		t.Errorf("margin(1,2) = %q", m)
	}
	if m := margin(3, 2); m != "1.50x over the limit" {
		t.Errorf("margin(3,2) = %q", m)
	}
}

func TestReport(t *testing.T) {
	t.Parallel()
	r := sample()
	var md bytes.Buffer
	if err := r.WriteMarkdown(&md, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Test CPU (2 cores, 24 GiB)", "| gateway (full path) | 5000/s |",
		"| **gateway / floor** | **0.50x** |", "**3.00x**", "**missed**, 1.50x over the limit", "met, 2.0x under the limit",
		"At 2500/s, 50% of the gateway's own saturation", "p99 added **0.50 ms**"} {
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
