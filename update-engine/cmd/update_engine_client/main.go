// Command update_engine_client talks to update_engine, with Container Linux's verbs.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cairn-os/cairn/update-engine/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := client.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
