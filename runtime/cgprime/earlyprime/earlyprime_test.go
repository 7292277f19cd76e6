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
		"--dir /x run img":                              true, // a global flag's value given apart
		"--dir /x --local-config /y app add 1234 img":   true,
		"app start 1234 --app=a":                        false,
		"app":                                           false,
		"prepare img":                                   false,
		"list --format=json":                            false,
		"":                                              false,
		"-- run":                                        false,
		"init":                                          false, // libcontainer's re-execution
		"fetch run":                                     true,  // an image named run: the move is made for nothing
	} {
		if got := startsContainer(strings.Fields(args)); got != want {
			t.Errorf("%q: %v, want %v", args, got, want)
		}
	}
}

func TestProcsPath(t *testing.T) {
	for _, c := range []struct {
		name, procCgroup string
		unified          bool
		want             string
	}{
		{"v1", "9:pids:/user.slice\n1:name=systemd:/user.slice/session-1.scope\n", false, "/sys/fs/cgroup/pids/user.slice/cgroup.procs"},
		{"hybrid", "8:pids:/\n4:memory:/a/b\n0::/\n", false, "/sys/fs/cgroup/pids/cgroup.procs"},
		{"hybrid without pids", "4:memory:/a/b\n0::/system.slice/pod.service\n", false, ""},
		{"v2", "0::/system.slice/pod.service\n", true, "/sys/fs/cgroup/system.slice/pod.service/cgroup.procs"},
		{"v2 path with a colon", "0::/a:b\n", true, "/sys/fs/cgroup/a:b/cgroup.procs"},
		{"merged controllers are not pids", "3:pids,cpu:/x\n", false, ""},
		{"garbage", "no cgroups here\n::\n", true, ""},
	} {
		if got := procsPath(c.procCgroup, c.unified); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestListed(t *testing.T) {
	for _, c := range []struct {
		procs, pid string
		want       bool
	}{
		{"1\n42\n", "42", true},
		{"1\n142\n", "42", false},
		{"1\n421\n", "42", false},
		{"42", "42", true},
		{"", "42", false},
	} {
		if got := listed(c.procs, c.pid); got != c.want {
			t.Errorf("%q in %q: %v, want %v", c.pid, c.procs, got, c.want)
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
