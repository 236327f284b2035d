// Command kpipe tracks ClaimX tasks from Kafka into a Delta Lake table.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"kpipe/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal cancels ctx and starts a drain; restoring the default
	// handlers lets a second signal end the process at once.
	go func() { <-ctx.Done(); stop() }()
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
