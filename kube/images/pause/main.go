// Command pause is the first process of a Kubernetes pod's sandbox, as the program of
// Kubernetes' pause image (build/pause/linux/pause.c) is: it holds the pod's namespaces by
// living, reaps the orphans it inherits as the pod's PID 1, and exits 0 on SIGINT or SIGTERM.
// -v prints its version.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is the pause image's tag, kube/images.PauseVersion.
const version = "3.10.2"

func main() {
	for _, a := range os.Args[1:] {
		if strings.EqualFold(a, "-v") {
			fmt.Printf("pause %s\n", version)
			return
		}
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	// Not an error: pause is also run outside of sandboxes. The warning comes once the
	// signals are handled, so a caller that sees it can stop pause with SIGTERM.
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}
	// Children that exited before the handler was installed sent their SIGCHLD to no one.
	reap()
	for s := range sigs {
		if s == syscall.SIGCHLD {
			reap()
			continue
		}
		fmt.Fprintf(os.Stderr, "Shutting down, got signal: %v\n", s)
		os.Exit(0)
	}
}

// reap collects every exited child: several exits may have been signalled as one SIGCHLD.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
	}
}
