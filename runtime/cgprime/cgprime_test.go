package cgprime

import "testing"

func TestListed(t *testing.T) {
	for _, c := range []struct {
		procs, pid string
		want       bool
	}{
		{"1\n42\n", "42", true},
		{"1\n142\n", "42", false},
		{"42", "42", true},
		{"", "42", false},
	} {
		if got := listed(c.procs, c.pid); got != c.want {
			t.Errorf("%q in %q: %v, want %v", c.pid, c.procs, got, c.want)
		}
	}
}

func TestDir(t *testing.T) {
	for _, c := range []struct {
		name, procCgroup string
		unified          bool
		want             string
	}{
		{"v1", "9:pids:/user.slice\n1:name=systemd:/user.slice/session-1.scope\n", false, "/sys/fs/cgroup/pids/user.slice"},
		{"hybrid", "8:pids:/\n4:memory:/a/b\n0::/\n", false, "/sys/fs/cgroup/pids"},
		{"hybrid without pids", "4:memory:/a/b\n0::/system.slice/pod.service\n", false, ""},
		{"v2", "0::/system.slice/pod.service\n", true, "/sys/fs/cgroup/system.slice/pod.service"},
		{"v2 path with a colon", "0::/a:b\n", true, "/sys/fs/cgroup/a:b"},
		{"merged controllers are not pids", "3:pids,cpu:/x\n", false, ""},
		{"garbage", "no cgroups here\n::\n", true, ""},
	} {
		if got := dir(c.procCgroup, c.unified); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
