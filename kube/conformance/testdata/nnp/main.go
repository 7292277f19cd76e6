// Command nnp is the program of the nonewprivs test image's stand-in, built static at test
// time and installed setuid root: it says the effective uid it runs with, which is root's
// unless no_new_privs kept the setuid bit from taking effect.
package main

import (
	"fmt"
	"syscall"
)

func main() {
	fmt.Printf("Effective uid: %d\n", syscall.Geteuid())
}
