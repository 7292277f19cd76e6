// Command cairn-init is the /init of Cairn's initramfs (see image/initramfs).
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/cairn-os/cairn/image/initramfs"
)

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "cairn-init is the initramfs's /init; it runs as PID 1 only")
		os.Exit(2)
	}
	i := &initramfs.Init{Log: os.Stdout, Sysroot: "/sysroot", Wait: 60 * time.Second}
	i.Fail(i.Run(context.Background()))
}
