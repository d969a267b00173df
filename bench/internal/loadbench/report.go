package loadbench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// The targets of issue 16, as ratios to the floors measured in the same run.
const (
	maxCloseCPURatio   = 1.5                  // gateway CPU per close, to the durable floor's
	minCloseThroughput = 0.7                  // gateway saturation, to the durable floor's
	maxCloseAddedP99   = 2 * time.Millisecond // gateway p99 minus the durable floor's, at half the gateway's saturation
	maxAllocPerClose   = 32 << 10             // bytes the gateway allocates per close
	maxReadCPURatio    = 2.0                  // GET /batches/{id} CPU, to the bare floor's
	maxReadAddedP99    = time.Millisecond     // its p99 minus the floor's, at half its saturation
	maxListTime        = 300 * time.Millisecond
	maxListPeakMiB     = 64
	maxFileGrowth      = 16 << 20 // RSS over idle while streaming the file
)

// Check is one target and how the run fared against it.
type Check struct {
	Target   string
	Measured string
	Met      bool
	Judged   bool   // false: not measured in this run (the verdict says why)
	Margin   string // how far inside (or outside) the limit, or why it is not judged
}

// Checks evaluates the targets. Only meaningful for a full run (Smoke runs too briefly).
func (r *Result) Checks() []Check {
	var out []Check
	closes := func(mode string, g Group) {
		if len(g.Rows) < 2 {
			return
		}
		gw, floor := g.Rows[len(g.Rows)-1], g.Rows[len(g.Rows)-2] // the gateway, the durable floor before it
		cpu := ratio(gw.CPUPerRequest.Seconds(), floor.CPUPerRequest.Seconds())
		thr := ratio(gw.Saturation, floor.Saturation)
		added := gw.P99 - floor.P99
		out = append(out,
			Check{Target: fmt.Sprintf("%s: CPU per close <= %.1fx the durable floor's", mode, maxCloseCPURatio),
				Measured: fmt.Sprintf("%.2fx (%s vs %s)", cpu, micros(gw.CPUPerRequest), micros(floor.CPUPerRequest)),
				Met:      cpu <= maxCloseCPURatio, Judged: true, Margin: margin(cpu, maxCloseCPURatio)},
			Check{Target: fmt.Sprintf("%s: throughput >= %.1fx the durable floor's", mode, minCloseThroughput),
				Measured: fmt.Sprintf("%.2fx (%.0f/s vs %.0f/s)", thr, gw.Saturation, floor.Saturation),
				Met:      thr >= minCloseThroughput, Judged: true, Margin: marginAtLeast(thr, minCloseThroughput)},
			Check{Target: fmt.Sprintf("%s: p99 added over the durable floor at %d/s (%.0f%% of the gateway's saturation) <= %s",
				mode, g.Rate, 100*r.Config.FixedShare, millis(maxCloseAddedP99)),
				Measured: fmt.Sprintf("%s (%s vs %s)", millis(added), millis(gw.P99), millis(floor.P99)),
				Met:      added <= maxCloseAddedP99, Judged: true, Margin: margin(max(added.Seconds(), 0), maxCloseAddedP99.Seconds())},
			Check{Target: fmt.Sprintf("%s: gateway heap allocation per close <= 32 KiB", mode),
				Measured: kib(gw.AllocBytesPerRequest),
				Met:      gw.AllocBytesPerRequest <= maxAllocPerClose, Judged: true, Margin: margin(gw.AllocBytesPerRequest, maxAllocPerClose)},
		)
	}
	closes("close, SQLite", r.Close)
	if r.Postgres != nil {
		closes("close, PostgreSQL", *r.Postgres)
	} else {
		out = append(out, Check{Target: "close, PostgreSQL: the four targets above", Measured: "not measured",
			Margin: "skipped: " + r.PostgresSkipped})
	}
	if len(r.Get.Rows) == 2 {
		floor, get := r.Get.Rows[0], r.Get.Rows[1]
		cpu := ratio(get.CPUPerRequest.Seconds(), floor.CPUPerRequest.Seconds())
		added := get.P99 - floor.P99
		out = append(out,
			Check{Target: fmt.Sprintf("GET /batches/{id}: CPU <= %.0fx the bare floor's", maxReadCPURatio),
				Measured: fmt.Sprintf("%.2fx (%s vs %s)", cpu, micros(get.CPUPerRequest), micros(floor.CPUPerRequest)),
				Met:      cpu <= maxReadCPURatio, Judged: true, Margin: margin(cpu, maxReadCPURatio)},
			Check{Target: fmt.Sprintf("GET /batches/{id}: p99 added over the bare floor at %d/s (%.0f%% of its saturation) <= %s",
				r.Get.Rate, 100*r.Config.FixedShare, millis(maxReadAddedP99)),
				Measured: fmt.Sprintf("%s (%s vs %s)", millis(added), millis(get.P99), millis(floor.P99)),
				Met:      added <= maxReadAddedP99, Judged: true, Margin: margin(max(added.Seconds(), 0), maxReadAddedP99.Seconds())},
		)
	}
	if m := r.Micro; m != nil && m.ListRuns > 0 {
		out = append(out,
			Check{Target: fmt.Sprintf("batch list of 10,000 from Concur (encoding/xml) < %s", millis(maxListTime)),
				Measured: fmt.Sprintf("%s (median of %d)", millis(m.ListTime), m.ListRuns),
				Met:      m.ListTime < maxListTime, Judged: true, Margin: margin(m.ListTime.Seconds(), maxListTime.Seconds())},
			Check{Target: fmt.Sprintf("batch list of 10,000: peak heap < %d MiB", maxListPeakMiB),
				Measured: fmt.Sprintf("%.1f MiB (largest of %d)", m.ListPeakMiB, m.ListRuns),
				Met:      m.ListPeakMiB < maxListPeakMiB, Judged: true, Margin: margin(m.ListPeakMiB, maxListPeakMiB)},
		)
	} else {
		out = append(out, Check{Target: "batch list of 10,000 from Concur: < 300 ms, peak heap < 64 MiB", Measured: "not measured",
			Margin: "the micro-benchmarks did not run (`make bench` runs them, then `loadbench report`)"})
	}
	out = append(out, Check{Target: fmt.Sprintf("gateway RSS while streaming %d MiB within 16 MiB of idle", r.File.Bytes>>20),
		Measured: fmt.Sprintf("+%.1f MiB (idle %.1f, peak %.1f MiB)", mib(r.File.Growth()), mib(r.File.IdleRSS), mib(r.File.PeakRSS)),
		Met:      r.File.Growth() <= maxFileGrowth, Judged: true, Margin: margin(float64(r.File.Growth()), maxFileGrowth)})
	return out
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

// marginAtLeast is margin for a floor: v must reach limit.
func marginAtLeast(v, limit float64) string {
	if v >= limit {
		return fmt.Sprintf("%.2fx the minimum", v/limit)
	}
	return fmt.Sprintf("%.2fx short of the minimum", limit/max(v, 1e-9))
}

// WriteMarkdown writes the report: the machine, the targets, then what they rest on.
func (r *Result) WriteMarkdown(w io.Writer, smoke bool) error {
	var b strings.Builder
	m, c := r.Machine, r.Config
	fmt.Fprintf(&b, "Run %s on %s (%d cores, %.0f GiB), %s, %s, commit %s; took %s. Load average (1, 5, 15 min) %s at the start, %s at the end: "+
		"the machine is shared, so every figure is judged as a ratio to a floor measured in the same run.\n\n",
		r.Started.Format("2006-01-02 15:04 MST"), m.CPU, m.Cores, m.MemoryGB, m.Kernel, m.Go, m.Commit,
		r.Finished.Sub(r.Started).Round(time.Second), m.LoadBefore, m.LoadAfter)
	if smoke {
		b.WriteString("**Smoke run** (`make bench-smoke`): too short to mean anything; it only proves the suite works.\n\n")
	}
	b.WriteString("#### Targets\n\n| target | measured | verdict |\n|---|---|---|\n")
	for _, ch := range r.Checks() {
		verdict := "met, " + ch.Margin
		switch {
		case smoke:
			verdict = "(smoke run: not judged)"
		case !ch.Judged:
			verdict = "not judged: " + ch.Margin
		case !ch.Met:
			verdict = "**missed**, " + ch.Margin
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", ch.Target, ch.Measured, verdict)
	}

	fmt.Fprintf(&b, "\n#### The close, four ways (SQLite)\n\nThe same v1.1 close, against the simulator answering at once: straight to it; through a bare "+
		"`httputil.ReverseProxy` (the bare floor: one hop); through the durable floor (that proxy plus the two commits a close must make, one before "+
		"Concur is called and one after, into SQLite with `synchronous=FULL` and the gateway's schema: the physical cost of a durable close here); "+
		"and through the gateway (`POST /batches/{id}/close?regenerate=true`: API key, lookup, validation, lease, token, XML to JSON, the two "+
		"commits, access log). Saturation: %d requests in flight for %s. Latency, CPU and allocations: %s at %d/s, %.0f%% of the gateway's "+
		"saturation, for every door. CPU and allocations are the process behind each door (the simulator's share is the last column). "+
		"Closes rotate over %d batches.\n\n", c.Workers, c.Saturation, c.Fixed, r.Close.Rate, 100*c.FixedShare, c.Batches)
	writeDoors(&b, r.Close, closeLabels, "close", false)
	if len(r.Close.Rows) == 4 {
		gw := r.Close.Rows[3]
		writeRatio(&b, "**gateway / durable floor**", gw, r.Close.Rows[2])
		writeRatio(&b, "gateway / bare floor", gw, r.Close.Rows[1])
	}

	b.WriteString("\n#### The close in PostgreSQL mode\n\n")
	if p := r.Postgres; p != nil {
		fmt.Fprintf(&b, "The durable floor and the gateway on the local PostgreSQL server, each in a schema of its own; CPU counts the "+
			"database backends serving each (their `/proc` time, by `application_name`) with the process. Latency, CPU and allocations at "+
			"%d/s, %.0f%% of the gateway's saturation.\n\n", p.Rate, 100*c.FixedShare)
		writeDoors(&b, *p, []string{"durable floor (proxy + 2 commits)", "gateway (full path)"}, "close", true)
		if len(p.Rows) == 2 {
			writeRatio(&b, "**gateway / durable floor**", p.Rows[1], p.Rows[0])
		}
	} else {
		fmt.Fprintf(&b, "**Skipped**: %s.\n", r.PostgresSkipped)
	}

	fmt.Fprintf(&b, "\n#### Reads\n\nThrough the gateway, answered from its store (API key, validation, SQLite read, JSON, access log), against the "+
		"bare floor forwarding a GET to the simulator's health check (a hop and nothing else). Each pair at %.0f%% of the gateway "+
		"route's own saturation.\n\n", 100*c.FixedShare)
	b.WriteString("| door | saturation | rate | p50 | p99 | p99.9 | CPU / read | heap / read | allocs / read |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, g := range []Group{r.Get, r.List} {
		for i, row := range g.Rows {
			name := row.Target
			if i == 0 {
				name = "bare floor"
			}
			fmt.Fprintf(&b, "| %s | %.0f/s | %d/s | %s | %s | %s | %s | %s | %.0f |\n", name, row.Saturation, g.Rate,
				millis(row.P50), millis(row.P99), millis(row.P999), micros(row.CPUPerRequest), kib(row.AllocBytesPerRequest), row.AllocsPerRequest)
		}
	}

	b.WriteString("\n#### The tail: the fsyncs of a close's two commits\n\n")
	if mi := r.Micro; mi != nil && mi.TailRuns > 0 {
		fmt.Fprintf(&b, "internal/store's `BenchmarkCloseCommits`: a close's two commits (`Apply`, begun and ended) at half the store's "+
			"saturation, each close on its own goroutine, as the store makes them (`synchronous=FULL`) and, to show what the fsyncs "+
			"cost, without them (`synchronous=OFF`: not durable, never the store's). Medians of %d runs, µs; "+
			"`micro-benchstat.txt` has the benchstat. The last column is how long runnable goroutines waited for a CPU meanwhile "+
			"(p99): the share of the tail that is the Go scheduler's.\n\n"+
			"| commits | p50 | p99 | p99.9 | max | goroutines' wait, p99 |\n|---|--:|--:|--:|--:|--:|\n", mi.TailRuns)
		for i, row := range []struct {
			name string
			q    [4]float64
		}{{"fsynced (`synchronous=FULL`, the store's)", mi.Full}, {"not fsynced (`synchronous=OFF`)", mi.Off}} {
			fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.0f | %.0f | %.0f |\n", row.name, row.q[0], row.q[1], row.q[2], row.q[3], mi.Sched[i])
		}
	} else {
		b.WriteString("Not measured in this run (`make bench` runs the micro-benchmarks, then `loadbench report`).\n")
	}

	f := r.File
	fmt.Fprintf(&b, "\n#### Payment file\n\n%d MiB: straight from the simulator %.0f MiB/s; through the gateway's `/batches/{id}/file` "+
		"%.0f MiB/s (%.2fx); the gateway's RSS %.1f MiB idle, %.1f MiB at most (%d samples).\n",
		f.Bytes>>20, f.MiBps(f.Direct), f.MiBps(f.Gateway), ratio(f.Direct.Seconds(), f.Gateway.Seconds()),
		mib(f.IdleRSS), mib(f.PeakRSS), f.RSSSamples)
	_, err := io.WriteString(w, b.String())
	return err
}

func writeDoors(b *strings.Builder, g Group, labels []string, unit string, db bool) {
	fmt.Fprintf(b, "| door | saturation | p50 | p99 | p99.9 | CPU / %[1]s | heap / %[1]s | allocs / %[1]s | simulator CPU / %[1]s |\n", unit)
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for i, row := range g.Rows {
		label := row.Target
		if i < len(labels) {
			label = labels[i]
		}
		cpu := micros(row.CPUPerRequest)
		if db {
			cpu += fmt.Sprintf(" (database %s)", micros(row.DBCPUPerRequest))
		}
		fmt.Fprintf(b, "| %s | %.0f/s | %s | %s | %s | %s | %s | %.0f | %s |\n", label, row.Saturation,
			millis(row.P50), millis(row.P99), millis(row.P999), cpu,
			kib(row.AllocBytesPerRequest), row.AllocsPerRequest, micros(row.UpstreamCPUPerRequest))
	}
}

func writeRatio(b *strings.Builder, label string, gw, floor Row) {
	fmt.Fprintf(b, "| %s | %.2fx | %.2fx | %.2fx | %.2fx | %.2fx | %.2fx | %.2fx | |\n", label,
		ratio(gw.Saturation, floor.Saturation),
		ratio(gw.P50.Seconds(), floor.P50.Seconds()), ratio(gw.P99.Seconds(), floor.P99.Seconds()),
		ratio(gw.P999.Seconds(), floor.P999.Seconds()), ratio(gw.CPUPerRequest.Seconds(), floor.CPUPerRequest.Seconds()),
		ratio(gw.AllocBytesPerRequest, floor.AllocBytesPerRequest), ratio(gw.AllocsPerRequest, floor.AllocsPerRequest))
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
