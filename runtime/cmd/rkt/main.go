// Command rkt is Cairn's daemonless, rkt-compatible pod runtime. It is built without what
// needs the network or OpenPGP (fetching images, trusting keys: package cli/remote), which
// most of all makes a Go program slow to start, and rkt starts twice for every app it runs
// (the command, then the container's init); for those it executes rkt-fetch, the full
// binary installed beside it, with the same arguments.
package main

import (
	"github.com/cairn-os/cairn/runtime/cli"
	"github.com/cairn-os/cairn/runtime/cli/rktmain"
)

func main() { rktmain.Main(cli.Options{Full: rktmain.FullName}) }
