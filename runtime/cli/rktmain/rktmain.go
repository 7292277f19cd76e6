// Package rktmain is the main of both rkt binaries, cmd/rkt and cmd/rkt-fetch: libcontainer's
// init when the binary is executed again as a container's init, else the command line.
package rktmain

import (
	"context"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/opencontainers/runc/libcontainer"
	// nsenter's C constructor joins a container's namespaces when rkt is re-executed as a
	// container's init (libcontainer), before the Go runtime starts.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"

	"github.com/cairn-os/cairn/runtime/cli"
	// Starts the cgroup migration's wait for the commands that start a container, before the
	// packages that come after it are initialised.
	_ "github.com/cairn-os/cairn/runtime/cgprime/earlyprime"
)

// FullName is the full rkt binary (cmd/rkt-fetch), installed beside rkt.
const FullName = "rkt-fetch"

func init() {
	// The main goroutine keeps the main thread (the one /proc/self shows): libcontainer
	// lets threads it moved into a container's namespaces exit locked, and Go cannot end the
	// main thread, so it would stay in that container's namespaces for good. Every init runs
	// on the main goroutine, so main does too.
	runtime.LockOSThread()
	// libcontainer re-executes this binary as "rkt init" to set up each app's container.
	if len(os.Args) > 1 && os.Args[1] == "init" && os.Getenv("_LIBCONTAINER_SYNCPIPE") != "" {
		libcontainer.Init() // does not return
	}
}

// Main runs rkt's command line with opts on the process's arguments and exits with its status.
func Main(opts cli.Options) {
	ctx, cancel := context.WithCancel(context.Background())
	// SIGTERM and SIGINT cancel ctx: rkt run stops its pod. Installing the handler waits for a
	// thread that Go starts for it (0.3 ms here), so it goes on beside the command's start.
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		cancel()
	}()
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, opts)
	cancel()
	os.Exit(code)
}
