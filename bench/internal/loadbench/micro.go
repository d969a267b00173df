package loadbench

import (
	"io"
	"slices"
	"strings"
	"time"

	"golang.org/x/perf/benchfmt"
)

// Micro is what the report takes from the micro-benchmarks of `make bench` (micro.txt):
// the batch list of 10,000 through the Concur client (bench's BenchmarkListBatches) and
// the two commits of a close as the store makes them (fsynced) and without their fsyncs
// (internal/store's BenchmarkCloseCommits), medians over the runs.
type Micro struct {
	ListRuns    int
	ListTime    time.Duration // median time to read the list of 10,000
	ListPeakMiB float64       // the largest peak heap of any run

	TailRuns int
	// Full and Off: a close's two commits with synchronous=FULL (the store's) and OFF (no
	// fsync: not durable), p50, p99, p99.9 and max latency at half the store's saturation,
	// in µs (medians over the runs); Sched: the p99 of goroutines' wait for a CPU meanwhile.
	Full, Off, Sched [4]float64
}

// ParseMicro reads `go test -bench` output for the figures of Micro; a benchmark that
// is not there leaves its figures zero.
func ParseMicro(r io.Reader) (*Micro, error) {
	var (
		list, peak []float64
		tail       = map[string][5][]float64{}
	)
	br := benchfmt.NewReader(r, "micro.txt")
	for br.Scan() {
		res, ok := br.Result().(*benchfmt.Result)
		if !ok {
			continue
		}
		name := string(res.Name.Full())
		switch {
		case strings.HasPrefix(name, "ListBatches/n=10000"):
			if v, ok := res.Value("sec/op"); ok {
				list = append(list, v)
			}
			if v, ok := res.Value("peak-heap-MiB"); ok {
				peak = append(peak, v)
			}
		case strings.HasPrefix(name, "CloseCommits/sync="):
			mode := strings.TrimPrefix(name, "CloseCommits/sync=")
			mode, _, _ = strings.Cut(mode, "-")
			q := tail[mode]
			for i, unit := range []string{"p50-µs", "p99-µs", "p99.9-µs", "max-µs", "sched-p99-µs"} {
				if v, ok := res.Value(unit); ok {
					q[i] = append(q[i], v)
				}
			}
			tail[mode] = q
		}
	}
	if err := br.Err(); err != nil {
		return nil, err
	}
	m := &Micro{ListRuns: len(list), ListTime: time.Duration(median(list) * float64(time.Second))}
	if len(peak) > 0 {
		m.ListPeakMiB = slices.Max(peak)
	}
	for i := range 4 {
		m.Full[i], m.Off[i] = median(tail["full"][i]), median(tail["off"][i])
	}
	m.Sched = [4]float64{median(tail["full"][4]), median(tail["off"][4])}
	m.TailRuns = min(len(tail["full"][1]), len(tail["off"][1]))
	return m, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
