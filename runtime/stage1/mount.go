package stage1

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/cairn-os/cairn/internal/mount"
)

// Pod directory layout used by the stage1.
const (
	appsDir         = "apps"         // apps/<name>/{rootfs,upper,work}
	nsDir           = "ns"           // ns/{net,ipc,uts}: the sandbox's namespaces, bind-mounted
	hostNetnsFile   = "host-netns"   // the network namespace rkt run joined the networks from, bind-mounted
	volumesDir      = "volumes"      // volumes/<name>: kind=empty volumes
	etcDir          = "etc"          // etc/{hosts,resolv.conf}
	libcontainerDir = "libcontainer" // libcontainer's state root, one dir per app
	CgroupsFile     = "cgroups.json" // the pod cgroup's path in every hierarchy
)

// AppRootfs is the host path of an app's root.
func AppRootfs(podDir, app string) string { return filepath.Join(podDir, appsDir, app, "rootfs") }

// OverlayMount is the overlayfs that makes an app's root: the image's read-only trees (lowest
// first; overlayfs lists the top one first) as lower dirs under a per-pod upper dir, so nothing
// is copied.
//
// The root is volatile (overlayfs skips every sync to the upper dir's filesystem): without it,
// unmounting the root at teardown syncs the whole filesystem that holds the pod directory, as
// long as the host has dirty data there (1-44 ms here, over a second on a busy host). A host
// crash ends the pod, and nothing mounts an app's upper and work dirs again (export reads the
// upper dir as a lower one; gc removes them; overlayfs refuses to mount them again anyway), so
// a sync protects nothing rkt could use afterwards; what must survive a crash belongs on a
// volume, which is not part of the overlay.
func OverlayMount(layers []string, podDir, app string) mount.Mount {
	m := durableOverlayMount(layers, podDir, app)
	m.Data += ",volatile"
	return m
}

// volatileRefused is set once the kernel refused a volatile root and mounted the same root
// without the option (a kernel before 5.10), so that later roots are mounted durable at once
// rather than each after a failed mount(2).
var volatileRefused atomic.Bool

// mountOverlay mounts an app's root with apply: volatile, or durable once refused says the
// kernel lacks the option. Only an EINVAL whose durable retry succeeds sets refused: overlayfs
// gives EINVAL for faults of the layers or dirs too, which the retry then fails on as well.
func mountOverlay(layers []string, podDir, app string, refused *atomic.Bool, apply func(mount.Mount) error) error {
	durable := durableOverlayMount(layers, podDir, app)
	if refused.Load() {
		return apply(durable)
	}
	err := apply(OverlayMount(layers, podDir, app))
	if !errors.Is(err, syscall.EINVAL) {
		return err
	}
	if err := apply(durable); err != nil {
		return err
	}
	refused.Store(true)
	return nil
}

// durableOverlayMount is OverlayMount without volatile, for a kernel older than 5.10 that
// refuses the option.
func durableOverlayMount(layers []string, podDir, app string) mount.Mount {
	lower := slices.Clone(layers)
	slices.Reverse(lower)
	base := filepath.Join(podDir, appsDir, app)
	return mount.Mount{
		Source: "overlay",
		Target: filepath.Join(base, "rootfs"),
		FSType: "overlay",
		Data: "lowerdir=" + strings.Join(lower, ":") +
			",upperdir=" + filepath.Join(base, "upper") +
			",workdir=" + filepath.Join(base, "work"),
	}
}
