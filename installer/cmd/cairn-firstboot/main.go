// Command cairn-firstboot applies the first-boot config once. Early boot runs it as
// /usr/lib/cairn/first-boot --root=/sysroot, before switching root to systemd.
package main

import (
	"context"
	"os"

	"github.com/cairn-os/cairn/installer/firstboot"
)

func main() {
	os.Exit(firstboot.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
