package stage1

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// ErrSysctl says a sysctl is not one a pod may set: not namespaced, or in a namespace the
// pod shares with the host.
var ErrSysctl = errors.New("not a sysctl of the pod's own namespaces")

var sysctlName = regexp.MustCompile(`^[a-z0-9_]+([./][a-zA-Z0-9_\-@:]+)+$`)

// SysctlPath is where a sysctl is in /proc/sys: its dots are slashes, unless the name is
// written with slashes already (net/ipv4/conf/eth0.100/forwarding, whose interface has a dot).
func SysctlPath(name string) string {
	if !strings.Contains(name, "/") {
		name = strings.ReplaceAll(name, ".", "/")
	}
	return filepath.Join("/proc/sys", name)
}

// CheckSysctl accepts a sysctl that belongs to a namespace the pod has of its own, as
// Kubernetes defines the namespaced ones: net.* (its network namespace), kernel.shm*,
// kernel.msg*, kernel.sem and fs.mqueue.* (its IPC namespace).
func CheckSysctl(name, value string, privateNet, privateIPC bool) error {
	if !sysctlName.MatchString(name) || strings.Contains(name, "..") || strings.ContainsAny(value, "\n\x00") {
		return fmt.Errorf("sysctl %q: %w", name, ErrSysctl)
	}
	dotted := strings.ReplaceAll(name, "/", ".")
	switch {
	case strings.HasPrefix(dotted, "net."):
		if !privateNet {
			return fmt.Errorf("sysctl %s: %w: the pod is on the host's network", name, ErrSysctl)
		}
	case strings.HasPrefix(dotted, "kernel.shm"), strings.HasPrefix(dotted, "kernel.msg"),
		dotted == "kernel.sem", strings.HasPrefix(dotted, "fs.mqueue."):
		if !privateIPC {
			return fmt.Errorf("sysctl %s: %w: the pod shares the host's IPC namespace", name, ErrSysctl)
		}
	default:
		return fmt.Errorf("sysctl %s: %w: it is the whole host's", name, ErrSysctl)
	}
	return nil
}
