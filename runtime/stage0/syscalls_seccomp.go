//go:build linux && cgo && seccomp

package stage0

import libseccomp "github.com/seccomp/libseccomp-golang"

// knownSyscall resolves a syscall name with libseccomp, as libcontainer's filter compiler
// does; names of other architectures' syscalls resolve too.
func knownSyscall(name string) (known, checked bool) {
	_, err := libseccomp.GetSyscallFromName(name)
	return err == nil, true
}
