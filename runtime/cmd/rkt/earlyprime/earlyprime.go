// Package earlyprime starts cgprime as rkt starts, for the commands that start a container,
// before most of rkt's packages are initialised (about 2 ms of a start of rkt): rkt's main
// imports it for that effect alone, as it imports libcontainer's nsenter for its constructor.
// The commands call cgprime.Start themselves too, which does nothing the second time; this
// only starts it sooner.
package earlyprime

import (
	"os"
	"strings"

	"github.com/cairn-os/cairn/runtime/cgprime"
)

func init() {
	if startsContainer(os.Args[1:]) {
		cgprime.Start()
	}
}

// startsContainer says whether rkt's arguments name a command that starts a container: run,
// run-prepared, app add or app sandbox. Global flags before the command count only as
// --flag=value (--dir /x run is seen as no such command, which leaves the start to the
// command).
func startsContainer(args []string) bool {
	var words []string
	for _, a := range args {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			words = append(words, a)
			if len(words) == 2 {
				break
			}
		}
	}
	switch {
	case len(words) == 0:
		return false
	case words[0] == "run", words[0] == "run-prepared":
		return true
	case words[0] == "app" && len(words) == 2:
		return words[1] == "add" || words[1] == "sandbox"
	}
	return false
}
