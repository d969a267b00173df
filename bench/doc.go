// Package bench holds the gateway's benchmarks that need more than the service does: the
// load suite (cmd/loadbench, internal/loadbench: vegeta, gonum/plot) and the peak-heap
// benchmarks beside this file (the batch list through the Concur client, the refresh of
// the directory), which measure with internal/heappeak. It is a module of its own so that
// none of these tools reach the service's go.mod; `make bench` runs it and writes
// results/, `make bench-smoke` (part of `make test`) keeps it working.
package bench
