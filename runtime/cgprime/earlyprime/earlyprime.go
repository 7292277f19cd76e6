// Package earlyprime starts runtime/cgprime's move as rkt starts, for the commands that start
// a container (run, run-prepared, app add, app sandbox): a constructor (earlyprime.c) starts
// it on a thread of its own before the Go runtime and rkt's packages are initialised, which
// takes about 3 ms of a start of rkt, and this package's init hands it to cgprime, whose Wait
// waits for it. rkt's main (cli/rktmain) imports the package for that effect alone, as it imports
// libcontainer's nsenter for its constructor.
package earlyprime
