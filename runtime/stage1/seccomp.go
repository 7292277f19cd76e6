package stage1

import (
	"fmt"
	"sort"

	"github.com/appc/spec/schema/types"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultDenied is the default filter's deny list, the syscalls that rkt's and Docker's default
// profiles refuse to an unprivileged container: kernel modules, clocks, keyrings, mounts and
// namespaces, tracing, kexec/reboot, swap, obsolete and NUMA-policy calls. Unknown names on an
// architecture are skipped by the filter compiler.
var defaultDenied = []string{
	"_sysctl", "acct", "add_key", "adjtimex", "bpf", "clock_adjtime", "clock_settime",
	"create_module", "delete_module", "fanotify_init", "finit_module", "fsconfig", "fsmount",
	"fsopen", "fspick", "get_kernel_syms", "get_mempolicy", "init_module", "ioperm", "iopl",
	"kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mbind", "mount",
	"mount_setattr", "move_mount", "move_pages", "name_to_handle_at", "nfsservctl",
	"open_by_handle_at", "open_tree", "perf_event_open", "pivot_root", "process_vm_readv",
	"process_vm_writev", "ptrace", "query_module", "quotactl", "reboot", "request_key",
	"set_mempolicy", "setns", "settimeofday", "stime", "swapoff", "swapon", "sysfs", "umount",
	"umount2", "unshare", "uselib", "userfaultfd", "ustat", "vm86", "vm86old",
}

// Named sets accepted by --seccomp and the seccomp isolators.
var seccompSets = map[string][]string{
	"@rkt/default-blacklist":    defaultDenied,
	"@docker/default-blacklist": defaultDenied,
	"@appc.io/empty":            nil,
}

// SeccompSetNames lists the named sets that --seccomp and the seccomp isolators accept.
func SeccompSetNames() []string {
	var n []string
	for k := range seccompSets {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// IsSeccompSet says whether name is one of the named sets.
func IsSeccompSet(name string) bool {
	_, ok := seccompSets[name]
	return ok
}

// KnownErrno says whether name is an errno a seccomp filter can return (ENOSYS, EPERM...).
func KnownErrno(name string) bool {
	_, err := errnoValue(name)
	return err == nil
}

func errnoValue(name string) (uint, error) {
	for e := unix.Errno(1); e < 4096; e++ {
		if unix.ErrnoName(e) == name {
			return uint(e), nil
		}
	}
	return 0, fmt.Errorf("unknown errno %q", name)
}

func expandSet(entries []types.LinuxSeccompEntry) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range entries {
		names := []string{string(e)}
		if set, ok := seccompSets[string(e)]; ok {
			names = set
		}
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	sort.Strings(out)
	return out
}

// SeccompSpec is the filter an app gets: the isolator's set if the app has one, else the
// default deny list, failing with EPERM.
func SeccompSpec(isos types.Isolators) (*specs.LinuxSeccomp, error) {
	errno := uint(unix.EPERM)
	for _, iso := range isos {
		switch v := iso.Value().(type) {
		case *types.LinuxSeccompRemoveSet:
			if e := string(v.Errno()); e != "" {
				n, err := errnoValue(e)
				if err != nil {
					return nil, err
				}
				errno = n
			}
			return &specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				Syscalls:      []specs.LinuxSyscall{{Names: expandSet(v.Set()), Action: specs.ActErrno, ErrnoRet: &errno}},
			}, nil
		case *types.LinuxSeccompRetainSet:
			if e := string(v.Errno()); e != "" {
				n, err := errnoValue(e)
				if err != nil {
					return nil, err
				}
				errno = n
			}
			names := expandSet(append(v.Set(), "execve"))
			return &specs.LinuxSeccomp{
				DefaultAction:   specs.ActErrno,
				DefaultErrnoRet: &errno,
				Syscalls:        []specs.LinuxSyscall{{Names: names, Action: specs.ActAllow}},
			}, nil
		}
	}
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: append([]string(nil), defaultDenied...), Action: specs.ActErrno, ErrnoRet: &errno}},
	}, nil
}
