package testenv

import (
	"os/exec"
	"syscall"
)

// killWithParent makes the kernel kill cmd when the test binary dies without cleaning up
// (a test timeout panics past t.Cleanup), so no etcd outlives its test.
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
