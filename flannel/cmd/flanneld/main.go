// Command flanneld runs the flannel overlay daemon. See flannel/README.md.
package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/cairn-os/cairn/flannel/flanneld"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := flanneld.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flanneld.ErrUsage):
		os.Exit(2)
	case err != nil:
		os.Exit(1)
	}
}
