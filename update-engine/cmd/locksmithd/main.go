// Command locksmithd reboots a machine after an update, within its reboot window and under
// the cluster's reboot lock (see update-engine/README.md).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cairn-os/cairn/update-engine/locksmithcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := locksmithcli.RunDaemon(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
