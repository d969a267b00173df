// Command gateway is the payment-batch gateway: it closes SAP Concur payment batches with
// one JSON call. Configuration comes from the environment; see the README.
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
	// SIGHUP reloads GATEWAY_API_KEYS_FILE when there is one (callers.go); it must never
	// kill the gateway, which would abandon the closes in flight.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}
