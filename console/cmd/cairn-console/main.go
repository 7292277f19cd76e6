// Command cairn-console is Cairn's fleet console: the Omaha update service machines check in
// at, with rollouts per group that stop themselves, and the JSON API and metrics operators
// use.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // update windows name time zones; a host without tzdata still has them

	"github.com/cairn-os/cairn/console/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
