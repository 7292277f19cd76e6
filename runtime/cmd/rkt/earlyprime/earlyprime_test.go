//go:build linux && cgo

package earlyprime

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/cgprime"
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
		"--dir /x run img":                              false, // --dir's value is read as the command
		"fetch run":                                     false,
		"-- run":                                        false,
		"init":                                          false, // libcontainer's re-execution
	} {
		if got := startsContainer(strings.Fields(args)); got != want {
			t.Errorf("%q: %v, want %v", args, got, want)
		}
	}
}

// The test binary has the constructor too: run with "run" among its arguments, it starts the
// move before the Go runtime and hands it to cgprime, whose Wait waits for it, and the process
// ends up where it was.
func TestConstructor(t *testing.T) {
	testenv.RequireRoot(t)
	out, err := exec.Command(os.Args[0], "-test.run=^TestConstructorInner$", "-test.v", "run").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestConstructorInner") {
		t.Fatalf("%v\n%s", err, out)
	}
}

func TestConstructorInner(t *testing.T) {
	if !slices.Contains(os.Args[1:], "run") {
		t.Skip("run by TestConstructor")
	}
	fd := constructorFD()
	if fd < 0 {
		t.Fatal("the constructor started no move")
	}
	before, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	cgprime.Wait()
	after, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Errorf("the process moved:\n%s\nnow:\n%s", before, after)
	}
	// cgprime's Wait returned once the move's pipe was read to its end and closed.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
		t.Errorf("the move's pipe (fd %d) is still open after cgprime.Wait: %v", fd, err)
	}
}
