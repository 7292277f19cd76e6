// Command rkt-fetch is rkt with fetching and key trust (package cli/remote): the whole of
// rkt's command line. rkt executes it, with the same arguments, for rkt fetch, trust and
// config, and for a run, prepare or app add whose image must be fetched.
package main

import (
	"github.com/cairn-os/cairn/runtime/cli"
	"github.com/cairn-os/cairn/runtime/cli/remote"
	"github.com/cairn-os/cairn/runtime/cli/rktmain"
)

func main() { rktmain.Main(cli.Options{Remote: remote.Remote{}}) }
