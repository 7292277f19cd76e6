package earlyprime

import (
	"strings"
	"testing"
)

func TestStartsContainer(t *testing.T) {
	for args, want := range map[string]bool{
		"run docker://busybox":                          true,
		"--dir=/var/lib/rkt --debug run --net=none img": true,
		"run-prepared 1234":                             true,
		"app add 1234 img --name=a":                     true,
		"--insecure-options=image app sandbox":          true,
		"app start 1234 --app=a":                        false,
		"app":                                           false,
		"prepare img":                                   false,
		"list --format=json":                            false,
		"":                                              false,
		"--dir /x run img":                              false, // --dir's value read as the command
		"fetch run":                                     false,
		"-- run":                                        false,
	} {
		if got := startsContainer(strings.Fields(args)); got != want {
			t.Errorf("%q: %v, want %v", args, got, want)
		}
	}
}
