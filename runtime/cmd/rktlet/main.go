// Command rktlet serves Kubernetes' Container Runtime Interface on Cairn's runtime. It is
// also its sandboxes' supervisor (rktlet supervise) and their containers' init.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/opencontainers/runc/libcontainer"
	// nsenter's C constructor joins a container's namespaces when rktlet is re-executed as
	// a container's init (libcontainer), before the Go runtime starts.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"

	"github.com/cairn-os/cairn/runtime/cri"
)

func init() {
	// The main goroutine keeps the main thread: libcontainer lets threads it moved into a
	// container's namespaces exit locked, and Go cannot end the main thread.
	runtime.LockOSThread()
	// libcontainer re-executes this binary as "rktlet init" to set up each container.
	if len(os.Args) > 1 && os.Args[1] == "init" && os.Getenv("_LIBCONTAINER_SYNCPIPE") != "" {
		libcontainer.Init() // does not return
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cri.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
