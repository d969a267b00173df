// Package heappeak measures the peak of the Go heap during a section of code, for the
// benchmarks that report "peak-heap-MiB" (the batch list's parse and refresh).
//
// Method: a full GC first, so the section starts from the live heap only, whose size is
// the baseline. Then "/memory/classes/heap/objects:bytes" of runtime/metrics (the bytes of
// heap objects, live or dead but not yet swept: what the heap really holds at that moment,
// garbage included) is sampled every 500µs by a goroutine, at points inside the section
// (Sample, e.g. every so many items a generating reader produces, so that a peak between
// two ticks on a busy machine is still seen), and once at its end. The peak is the largest
// sample minus the baseline: what the section added to the heap at its worst. Sampling can
// miss a short spike between samples, so the figure is a lower bound, tight when the heap
// grows smoothly.
package heappeak

import (
	"runtime"
	"runtime/metrics"
	"sync"
	"time"
)

const heapObjects = "/memory/classes/heap/objects:bytes"

// Sampler is one measurement, from Start to Stop.
type Sampler struct {
	base uint64
	mu   sync.Mutex
	max  uint64
	quit chan struct{}
	done chan struct{}
}

func read() uint64 {
	s := []metrics.Sample{{Name: heapObjects}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// Start collects the garbage, takes the baseline and starts sampling.
func Start() *Sampler {
	runtime.GC()
	h := &Sampler{base: read(), quit: make(chan struct{}), done: make(chan struct{})}
	h.max = h.base
	go func() {
		defer close(h.done)
		t := time.NewTicker(500 * time.Microsecond)
		defer t.Stop()
		for {
			select {
			case <-h.quit:
				return
			case <-t.C:
				h.Sample()
			}
		}
	}()
	return h
}

// Sample takes a sample now; safe from any goroutine.
func (h *Sampler) Sample() {
	v := read()
	h.mu.Lock()
	h.max = max(h.max, v)
	h.mu.Unlock()
}

// Stop takes a last sample, ends the sampling and returns the peak above the baseline, in
// bytes.
func (h *Sampler) Stop() uint64 {
	h.Sample()
	close(h.quit)
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.max - min(h.max, h.base)
}
