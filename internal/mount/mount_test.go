package mount

import (
	"reflect"
	"testing"

	"github.com/moby/sys/mountinfo"
)

func TestInside(t *testing.T) {
	for _, tc := range []struct {
		dir, mountpoint string
		keep            bool
	}{
		{"/var/lib/rkt/pods/run/a", "/var/lib/rkt/pods/run/a/apps/x/rootfs", true},
		{"/var/lib/rkt/pods/run/a", "/var/lib/rkt/pods/run/a/ns/net", true},
		{"/var/lib/rkt/pods/run/a", "/var/lib/rkt/pods/run/a", false},  // dir itself
		{"/var/lib/rkt/pods/run/a", "/var/lib/rkt/pods/run/ab", false}, // shares the prefix only
		{"/var/lib/rkt/pods/run/a", "/var/lib/rkt/pods/run", false},
		{"/var/lib/rkt/pods/run/a", "/", false},
		{"/", "/proc", true},
		{"/", "/", false},
		{"/run/a b", "/run/a b/c", true}, // mountinfo's \040, already undone
	} {
		skip, stop := Inside(tc.dir)(&mountinfo.Info{Mountpoint: tc.mountpoint})
		if skip == tc.keep || stop {
			t.Errorf("Inside(%q) on %q: skip %v stop %v, want keep %v", tc.dir, tc.mountpoint, skip, stop, tc.keep)
		}
	}
}

func TestUnmountOrder(t *testing.T) {
	for _, tc := range []struct {
		table []string
		want  []string
	}{
		{nil, []string{}},
		{[]string{"/p/a"}, []string{"/p/a"}},
		// an app root, then the namespaces pinned later, then a mount on top of the root
		{[]string{"/p/apps/x/rootfs", "/p/ns/net", "/p/apps/x/rootfs/proc"}, []string{"/p/apps/x/rootfs/proc", "/p/ns/net", "/p/apps/x/rootfs"}},
	} {
		var table []*mountinfo.Info
		for _, mp := range tc.table {
			table = append(table, &mountinfo.Info{Mountpoint: mp})
		}
		if got := unmountOrder(table); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("unmountOrder(%q) = %q, want %q", tc.table, got, tc.want)
		}
	}
}

// TestInsideLastFirst is what UnmountBeneath sees of a pod's table: only the pod's own mounts,
// last mounted first.
func TestInsideLastFirst(t *testing.T) {
	var table []*mountinfo.Info
	filter := Inside("/var/lib/rkt/pods/run/a")
	for _, mp := range []string{"/", "/var/lib/rkt/pods/run/a/apps/x/rootfs", "/var/lib/rkt/pods/run/ab", "/var/lib/rkt/pods/run/a/ns/net", "/var/lib/rkt/pods/run/a"} {
		m := &mountinfo.Info{Mountpoint: mp}
		if skip, _ := filter(m); !skip {
			table = append(table, m)
		}
	}
	got := unmountOrder(table)
	want := []string{"/var/lib/rkt/pods/run/a/ns/net", "/var/lib/rkt/pods/run/a/apps/x/rootfs"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v want %v", got, want)
	}
}
