//go:build linux && cgo

package earlyprime

/*
int earlyprime_done_fd(void);
int earlyprime_starts_container(int argc, char **argv);
#include <stdlib.h>
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
