package loadbench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// The targets of the suite, as ratios to the floor measured in the same run.
const (
	maxCPURatio     = 2.0              // gateway CPU per close, to the floor's per request
	maxAddedP99     = time.Millisecond // gateway p99 minus the floor's, at the fixed rate
	maxAllocPerCall = 32 << 10         // bytes the gateway allocates per close
	maxFileGrowth   = 16 << 20         // RSS over idle while streaming the file
)

// Check is one target and how the run fared against it.
type Check struct {
	Target   string
	Measured string
	Met      bool
	Margin   string // how far inside (or outside) the limit
}

// Checks evaluates the targets. Only meaningful for a full run (Smoke runs too briefly).
func (r *Result) Checks() []Check {
	floor, gw := r.Rows[floorRow], r.Rows[gatewayRow]
	cpu := ratio(gw.CPUPerRequest.Seconds(), floor.CPUPerRequest.Seconds())
	added := gw.P99 - floor.P99
	return []Check{
		{
			Target:   fmt.Sprintf("gateway CPU per close <= %.0fx the floor's", maxCPURatio),
			Measured: fmt.Sprintf("%.2fx (%s vs %s)", cpu, micros(gw.CPUPerRequest), micros(floor.CPUPerRequest)),
			Met:      cpu <= maxCPURatio, Margin: margin(cpu, maxCPURatio),
		},
		{
			Target:   fmt.Sprintf("p99 added over the floor at %d/s (%.0f%% of its saturation) <= %s", r.FixedRate, 100*r.Config.FixedShare, millis(maxAddedP99)),
			Measured: millis(added),
			Met:      added <= maxAddedP99, Margin: margin(max(added.Seconds(), 0), maxAddedP99.Seconds()),
		},
		{
			Target:   "gateway heap allocation per close <= 32 KiB",
			Measured: kib(gw.AllocBytesPerRequest),
			Met:      gw.AllocBytesPerRequest <= maxAllocPerCall, Margin: margin(gw.AllocBytesPerRequest, maxAllocPerCall),
		},
		{
			Target:   fmt.Sprintf("gateway RSS while streaming %d MiB within 16 MiB of idle", r.File.Bytes>>20),
			Measured: fmt.Sprintf("+%.1f MiB (idle %.1f, peak %.1f MiB)", mib(r.File.Growth()), mib(r.File.IdleRSS), mib(r.File.PeakRSS)),
			Met:      r.File.Growth() <= maxFileGrowth, Margin: margin(float64(r.File.Growth()), maxFileGrowth),
		},
	}
}

// margin says how far v is inside limit ("4.2x under") or past it ("1.3x over").
func margin(v, limit float64) string {
	switch {
	case v <= 0:
		return "no cost measured"
	case v <= limit:
		return fmt.Sprintf("%.1fx under the limit", limit/v)
	default:
		return fmt.Sprintf("%.2fx over the limit", v/limit)
	}
}

// WriteMarkdown writes the report: the machine, the three doors and the targets.
func (r *Result) WriteMarkdown(w io.Writer, smoke bool) error {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "Run %s on %s (%d cores, %.0f GiB), %s, %s, commit %s; took %s.\n\n",
		r.Started.Format("2006-01-02 15:04 MST"), m.CPU, m.Cores, m.MemoryGB, m.Kernel, m.Go, m.Commit,
		r.Finished.Sub(r.Started).Round(time.Second))
	if smoke {
		b.WriteString("**Smoke run** (`make bench-smoke`): too short to mean anything; it only proves the suite works.\n\n")
	}
	c := r.Config
	b.WriteString("#### One close, three ways\n\n")
	fmt.Fprintf(&b, "The same v1.1 close, against the simulator answering at once: straight to it, through a bare "+
		"`httputil.ReverseProxy` (the floor: one hop), and through the gateway (`POST /batches/{id}/close?regenerate=true`: "+
		"API key, validation, mapping, token, XML to JSON, SQLite audit record, access log). Saturation: %d requests in "+
		"flight for %s. Latency, CPU and allocations: %s at %d/s, %.0f%% of the floor's saturation. "+
		"CPU and allocations are the process behind each door (the simulator's share is the last column). "+
		"Closes rotate over %d batches.\n\n",
		c.Workers, c.Saturation, c.Fixed, r.FixedRate, 100*c.FixedShare, c.Batches)
	b.WriteString("| door | saturation | p50 | p99 | p99.9 | CPU / close | heap / close | allocs / close | simulator CPU / close |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	labels := []string{"simulator (Concur alone)", "floor (reverse proxy)", "gateway (full path)"}
	for i, row := range r.Rows {
		fmt.Fprintf(&b, "| %s | %.0f/s | %s | %s | %s | %s | %s | %.0f | %s |\n", labels[i], row.Saturation,
			millis(row.P50), millis(row.P99), millis(row.P999), micros(row.CPUPerRequest),
			kib(row.AllocBytesPerRequest), row.AllocsPerRequest, micros(row.UpstreamCPUPerRequest))
	}
	floor, gw := r.Rows[floorRow], r.Rows[gatewayRow]
	fmt.Fprintf(&b, "| **gateway / floor** | **%.2fx** | %.2fx | %.2fx | %.2fx | **%.2fx** | %.2fx | %.2fx | |\n\n",
		ratio(gw.Saturation, floor.Saturation),
		ratio(gw.P50.Seconds(), floor.P50.Seconds()), ratio(gw.P99.Seconds(), floor.P99.Seconds()),
		ratio(gw.P999.Seconds(), floor.P999.Seconds()), ratio(gw.CPUPerRequest.Seconds(), floor.CPUPerRequest.Seconds()),
		ratio(gw.AllocBytesPerRequest, floor.AllocBytesPerRequest), ratio(gw.AllocsPerRequest, floor.AllocsPerRequest))
	fl, g := floor.Carried, gw.Carried
	fmt.Fprintf(&b, "At %d/s, %.0f%% of the gateway's own saturation, a rate it can carry: floor p50/p99/p99.9 %s / %s / %s, "+
		"gateway %s / %s / %s; p99 added **%s**.\n\n", r.CarriedRate, 100*c.FixedShare,
		millis(fl[0]), millis(fl[1]), millis(fl[2]), millis(g[0]), millis(g[1]), millis(g[2]), millis(g[1]-fl[1]))
	f := r.File
	fmt.Fprintf(&b, "Payment file, %d MiB: straight from the simulator %.0f MiB/s; through the gateway's `/batches/{id}/file` "+
		"%.0f MiB/s (%.2fx); the gateway's RSS %.1f MiB idle, %.1f MiB at most (%d samples).\n\n",
		f.Bytes>>20, f.MiBps(f.Direct), f.MiBps(f.Gateway), ratio(f.Direct.Seconds(), f.Gateway.Seconds()),
		mib(f.IdleRSS), mib(f.PeakRSS), f.RSSSamples)
	b.WriteString("#### Targets, as ratios to the floor in the same run\n\n| target | measured | |\n|---|---|---|\n")
	for _, ch := range r.Checks() {
		verdict := "met, " + ch.Margin
		if !ch.Met {
			verdict = "**missed**, " + ch.Margin
		}
		if smoke {
			verdict = "(smoke run: not judged)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", ch.Target, ch.Measured, verdict)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func millis(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}
func micros(d time.Duration) string {
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}
func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }
func mib(b int64) float64  { return float64(b) / (1 << 20) }
