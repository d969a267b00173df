// Command loadbench is the gateway's load-test suite (`make bench`, `make bench-smoke`): it
// starts the simulator, a bare reverse proxy and the gateway, loads each with the same
// close, and writes the results as markdown, JSON and a PNG chart. `loadbench proxy` is
// that reverse proxy, started by the suite itself. make builds it from the bench module
// into bin/loadbench and runs it from the repository's root, to which its default paths
// (bin/gateway, bin/concursim, bench/results) are relative.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}
