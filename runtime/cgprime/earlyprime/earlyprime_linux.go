//go:build linux && cgo

package earlyprime

/*
#include <stdlib.h>
int earlyprime_done_fd(void);
int earlyprime_starts_container(int argc, char **argv);
int earlyprime_procs_path(char *cgroup, int unified, char *out, size_t size);
int earlyprime_listed(const char *procs, const char *pid);
*/
import "C"

import (
	"io"
	"os"
	"unsafe"

	"github.com/cairn-os/cairn/runtime/cgprime"
)

func init() {
	fd := int(C.earlyprime_done_fd())
	if fd < 0 {
		return
	}
	done := os.NewFile(uintptr(fd), "earlyprime")
	cgprime.Started(func() {
		// The constructor's thread closes the pipe's other end once the move is over.
		_, _ = io.Copy(io.Discard, done)
		_ = done.Close()
	})
}

// The constructor's pieces, for the tests.

// constructorFD is the read end of the constructor's pipe, -1 when it started no move.
func constructorFD() int { return int(C.earlyprime_done_fd()) }

// startsContainer is the constructor's test of rkt's arguments (args without the program).
func startsContainer(args []string) bool {
	argv := make([]*C.char, 0, len(args)+1)
	for _, a := range append([]string{"rkt"}, args...) {
		s := C.CString(a)
		defer C.free(unsafe.Pointer(s))
		argv = append(argv, s)
	}
	return C.earlyprime_starts_container(C.int(len(argv)), &argv[0]) != 0
}

// procsPath is the cgroup.procs file the move writes to for the /proc/self/cgroup text
// cgroup ("" for none).
func procsPath(cgroup string, unified bool) string {
	in := C.CString(cgroup)
	defer C.free(unsafe.Pointer(in))
	var out [8300]C.char
	u := C.int(0)
	if unified {
		u = 1
	}
	if C.earlyprime_procs_path(in, u, &out[0], C.size_t(len(out))) == 0 {
		return ""
	}
	return C.GoString(&out[0])
}

// listed says whether the cgroup.procs text procs has the line pid.
func listed(procs, pid string) bool {
	p, q := C.CString(procs), C.CString(pid)
	defer C.free(unsafe.Pointer(p))
	defer C.free(unsafe.Pointer(q))
	return C.earlyprime_listed(p, q) != 0
}
