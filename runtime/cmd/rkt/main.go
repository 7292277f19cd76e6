// Command rkt is Cairn's daemonless, rkt-compatible pod runtime.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cairn-os/cairn/runtime/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
