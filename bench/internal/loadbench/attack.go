package loadbench

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// target is one of the three things the suite loads: the same close, through three doors.
type target struct {
	Name    string
	Method  string
	URLs    []string    // taken in turn, one request each
	Header  http.Header // sent with every request
	Metrics string      // URL of the Prometheus endpoint of the process measured
	proc    *process    // the process whose CPU and allocations are charged to it
	db      *pgServer   // PostgreSQL mode: the server whose backends (named dbApp) serve it
	dbApp   string
}

// targeter hands out t's URLs round robin. Closes of one batch never overlap as long as
// len(URLs) exceeds the requests in flight, which is what the gateway's one-close-per-batch
// rule needs.
func (t *target) targeter() vegeta.Targeter {
	var n atomic.Uint64
	return func(v *vegeta.Target) error {
		i := n.Add(1) - 1
		v.Method = t.Method
		v.URL = t.URLs[i%uint64(len(t.URLs))]
		v.Header = t.Header
		return nil
	}
}

// pace is how a phase sends requests.
type pace struct {
	Rate     int // requests per second; 0: as fast as Workers can (saturation)
	Workers  int // requests in flight at most
	Duration time.Duration
}

// outcome is what one phase against one target measured.
type outcome struct {
	Requests  int
	OK        int
	Failures  map[string]int  // by status or error, for the report
	Elapsed   time.Duration   // first request sent to last answer received
	Latencies []time.Duration // of every request, sorted
}

// Throughput is the rate of successful answers.
func (o outcome) Throughput() float64 {
	if o.Elapsed <= 0 {
		return 0
	}
	return float64(o.OK) / o.Elapsed.Seconds()
}

// Quantile is the exact q-quantile of the latencies (nearest rank); 0 without any.
func (o outcome) Quantile(q float64) time.Duration {
	n := len(o.Latencies)
	if n == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(n))) - 1
	return o.Latencies[min(max(i, 0), n-1)]
}

// attack runs one phase against t and collects every result. A request counts as OK only
// with a 200: the suite measures closes that happened, not fast refusals.
func attack(t *target, p pace) outcome {
	workers := uint64(max(p.Workers, 1)) // #nosec G115 -- positive, and small
	a := vegeta.NewAttacker(
		vegeta.Workers(workers),
		vegeta.MaxWorkers(workers),
		vegeta.Connections(p.Workers),
		vegeta.MaxBody(1<<20),
		vegeta.Redirects(vegeta.NoFollow),
		vegeta.Timeout(30*time.Second),
		vegeta.KeepAlive(true),
	)
	rate := vegeta.Rate{Freq: p.Rate, Per: time.Second}
	o := outcome{Failures: map[string]int{}}
	var first, last time.Time
	for r := range a.Attack(t.targeter(), rate, p.Duration, t.Name) {
		o.Requests++
		o.Latencies = append(o.Latencies, r.Latency)
		if first.IsZero() || r.Timestamp.Before(first) {
			first = r.Timestamp
		}
		if end := r.End(); end.After(last) {
			last = end
		}
		if r.Code == http.StatusOK && r.Error == "" {
			o.OK++
			continue
		}
		key := strconv.Itoa(int(r.Code))
		if r.Code == 0 {
			key = r.Error
		} else if len(r.Body) > 0 {
			key += " " + firstBytes(r.Body, 160)
		}
		o.Failures[key]++
	}
	o.Elapsed = last.Sub(first)
	slices.Sort(o.Latencies)
	return o
}

func firstBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// failureSummary is the most common failures, for an error message.
func (o outcome) failureSummary() string {
	type kv struct {
		k string
		n int
	}
	var all []kv
	for k, n := range o.Failures {
		all = append(all, kv{k, n})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n })
	s := ""
	for i, f := range all {
		if i == 3 {
			break
		}
		s += fmt.Sprintf("\n  %d x %s", f.n, f.k)
	}
	return s
}
