// Command concursim serves the SAP Concur Payment Batch API simulator over HTTP, for
// `make run`, docker-compose and end-to-end tests. It is configured with CONCURSIM_*
// environment variables; see config.go.
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
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "concursim:", err)
		os.Exit(1)
	}
}
