// Command cairn-install writes Cairn to a disk, with its first-boot config.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cairn-os/cairn/installer/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
