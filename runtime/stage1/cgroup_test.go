package stage1

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

func TestParseProcCgroup(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       ProcCgroup
	}{
		{"v2 service", "0::/system.slice/hello.service\n", ProcCgroup{Unified: "/system.slice/hello.service"}},
		{"v2 root", "0::/\n", ProcCgroup{Unified: "/"}},
		{"v2 path with colon", "0::/machine.slice/a:b.scope\n", ProcCgroup{Unified: "/machine.slice/a:b.scope"}},
		{"hybrid", "9:name=systemd:/system.slice/hello.service\n4:memory:/system.slice/hello.service\n2:cpu,cpuacct:/\n0::/system.slice/hello.service\n",
			ProcCgroup{Unified: "/system.slice/hello.service", V1: map[string]string{
				"name=systemd": "/system.slice/hello.service", "memory": "/system.slice/hello.service", "cpu,cpuacct": "/"}}},
		{"legacy", "3:pids:/user.slice\n1:name=systemd:/user.slice/session-1.scope", ProcCgroup{V1: map[string]string{
			"pids": "/user.slice", "name=systemd": "/user.slice/session-1.scope"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseProcCgroup(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "\n", "0:/x\n", "0::relative\n", ":cpu:/\n", "garbage"} {
		if _, err := ParseProcCgroup(bad); !errors.Is(err, ErrBadProcCgroup) {
			t.Errorf("%q: err %v, want ErrBadProcCgroup", bad, err)
		}
	}
}

func TestPlanCgroups(t *testing.T) {
	const id = "2f8f5c4c-1c2d-4a6e-9d57-0c7a3e0b9f11"
	for _, tc := range []struct {
		name string
		mode CgroupMode
		own  string
		want CgroupPlan
	}{
		// v1: relative, under the caller's cgroup in every hierarchy; nothing moves.
		{"v1", CgroupV1, "", CgroupPlan{Mode: CgroupV1, Parent: "rkt-" + id}},
		{"v1 ignores own", CgroupV1, "/system.slice/hello.service", CgroupPlan{Mode: CgroupV1, Parent: "rkt-" + id}},
		// v2 in a unit: rkt run moves to a leaf, the pod goes beside it, both in the unit.
		{"v2 unit", CgroupV2, "/system.slice/hello.service", CgroupPlan{Mode: CgroupV2,
			Parent:   "/system.slice/hello.service/rkt-" + id,
			Stage1:   "/system.slice/hello.service/rkt-" + id + "-stage1",
			Fallback: "/system.slice/rkt-" + id}},
		{"v2 delegate subgroup", CgroupV2, "/system.slice/hello.service/supervisor", CgroupPlan{Mode: CgroupV2,
			Parent:   "/system.slice/hello.service/supervisor/rkt-" + id,
			Stage1:   "/system.slice/hello.service/supervisor/rkt-" + id + "-stage1",
			Fallback: "/system.slice/hello.service/rkt-" + id}},
		{"v2 top level", CgroupV2, "/init.scope", CgroupPlan{Mode: CgroupV2,
			Parent: "/init.scope/rkt-" + id, Stage1: "/init.scope/rkt-" + id + "-stage1", Fallback: "/rkt-" + id}},
		// The root (or a cgroup namespace's root): where libcontainer puts it, nothing moves.
		{"v2 root", CgroupV2, "/", CgroupPlan{Mode: CgroupV2, Parent: "/rkt-" + id, Fallback: "/rkt-" + id}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PlanCgroups(tc.mode, tc.own, id)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "system.slice", "/system.slice/../x", "/a/"} {
		if _, err := PlanCgroups(CgroupV2, bad, id); !errors.Is(err, ErrBadProcCgroup) {
			t.Errorf("own %q: err %v, want ErrBadProcCgroup", bad, err)
		}
	}
}

func TestCgroupRecord(t *testing.T) {
	plan, _ := PlanCgroups(CgroupV2, "/system.slice/hello.service", "u1")
	rec := plan.unifiedRecord("/sys/fs/cgroup")
	want := cgroupRecord{
		"":           "/sys/fs/cgroup/system.slice/hello.service/rkt-u1",
		recordStage1: "/sys/fs/cgroup/system.slice/hello.service/rkt-u1-stage1",
	}
	if !reflect.DeepEqual(rec, want) {
		t.Errorf("record %v, want %v", rec, want)
	}
	// rkt run's own leaf is never among the cgroups whose processes are killed.
	if got := rec.podCgroups(); !slices.Equal(got, []string{"/sys/fs/cgroup/system.slice/hello.service/rkt-u1"}) {
		t.Errorf("pod cgroups %v", got)
	}
	fb := plan.fallBack()
	if fb.Stage1 != "" || fb.Parent != "/system.slice/rkt-u1" {
		t.Errorf("fallback %+v", fb)
	}
	if rec := fb.unifiedRecord("/sys/fs/cgroup"); !reflect.DeepEqual(rec, cgroupRecord{"": "/sys/fs/cgroup/system.slice/rkt-u1"}) {
		t.Errorf("fallback record %v", rec)
	}
	// Hybrid records keep the nested unified cgroup among the pod's.
	hy := cgroupRecord{"memory": "/sys/fs/cgroup/memory/rkt-u1", recordNested: "/sys/fs/cgroup/unified/x/rkt-u1"}
	got := hy.podCgroups()
	slices.Sort(got)
	if !slices.Equal(got, []string{"/sys/fs/cgroup/memory/rkt-u1", "/sys/fs/cgroup/unified/x/rkt-u1"}) {
		t.Errorf("hybrid pod cgroups %v", got)
	}
}

func TestCgroupRecordNested(t *testing.T) {
	const root = "/sys/fs/cgroup/unified/rkt-u1"
	for _, c := range []struct {
		name, own, parent string
		want              string // "" for no nested record
	}{
		{"caller in a unit", "/sys/fs/cgroup/unified/system.slice/pod.service", "rkt-u1", "/sys/fs/cgroup/unified/system.slice/pod.service/rkt-u1"},
		{"relative parent", "/sys/fs/cgroup/unified/user.slice", "kubepods/rkt-u1", "/sys/fs/cgroup/unified/user.slice/kubepods/rkt-u1"},
		{"caller at the root", "/sys/fs/cgroup/unified", "rkt-u1", ""},
		{"caller at the root, trailing slash", "/sys/fs/cgroup/unified/", "rkt-u1", ""},
		{"absolute parent", "/sys/fs/cgroup/unified/system.slice/pod.service", "/kubepods/rkt-u1", ""},
	} {
		rec := cgroupRecord{"": root, "memory": "/sys/fs/cgroup/memory/rkt-u1"}
		rec.addNested(c.own, c.parent)
		got, ok := rec[recordNested]
		if c.want == "" && ok || c.want != "" && got != c.want {
			t.Errorf("%s: nested %q (recorded %v), want %q", c.name, got, ok, c.want)
		}
		if rec[""] != root || len(rec) > 3 {
			t.Errorf("%s: record %v", c.name, rec)
		}
	}
}

func TestControllersToEnable(t *testing.T) {
	for in, want := range map[string]string{
		"":                            "",
		"\n":                          "",
		"cpuset cpu io memory pids\n": "+cpuset +cpu +io +memory +pids",
		"hugetlb":                     "+hugetlb",
	} {
		if got := controllersToEnable(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func TestSpecCgroupsPath(t *testing.T) {
	ra := schema.RuntimeApp{Name: "hello", App: &types.App{Exec: types.Exec{"/bin/hello"}}}
	for _, tc := range []struct{ parent, want string }{
		{"", "rkt-u1/hello"}, // v1: relative, libcontainer nests it under the caller's cgroups
		{"/system.slice/hello.service/rkt-u1", "/system.slice/hello.service/rkt-u1/hello"},
	} {
		s, err := Spec(&PodPlan{UUID: "u1", CgroupParent: tc.parent}, &AppPlan{App: ra, Rootfs: "/r"})
		if err != nil {
			t.Fatal(err)
		}
		if s.Linux.CgroupsPath != tc.want {
			t.Errorf("parent %q: CgroupsPath %q, want %q", tc.parent, s.Linux.CgroupsPath, tc.want)
		}
	}
}

func TestCheckCgroupFS(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fsType int64
		exists bool
		ok     bool
		found  string
	}{
		{"cgroup v2", fsCgroup2, true, true, ""},
		{"v1 or hybrid tmpfs", fsTmpfs, true, true, ""},
		{"one v1 hierarchy", fsCgroup1, true, true, ""},
		{"ip netns exec's sysfs", fsSysfs, true, false, "an empty sysfs directory"},
		{"something else", 0xef53, true, false, "type 0xef53"},
		{"missing", 0, false, false, "no such directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkCgroupFS(tc.fsType, tc.exists)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrNoCgroupFS) {
				t.Fatalf("err %v, want ErrNoCgroupFS", err)
			}
			for _, want := range []string{tc.found, "ip netns exec", "nsenter --net=/var/run/netns/NAME"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// A sandbox's cgroup parent (the CRI's CgroupParent): absolute from each hierarchy's root,
// relative from the caller's cgroup, as libcontainer takes a relative path.
func TestPlanCgroupsIn(t *testing.T) {
	for _, tc := range []struct {
		mode           CgroupMode
		own, parent    string
		want           CgroupPlan
		wantErrContain string
	}{
		{mode: CgroupV1, parent: "/kubepods/pod1", want: CgroupPlan{Mode: CgroupV1, Parent: "/kubepods/pod1/rkt-u1", Fallback: "/kubepods/pod1/rkt-u1"}},
		{mode: CgroupV2, own: "/system.slice/cri.service", parent: "/kubepods/pod1",
			want: CgroupPlan{Mode: CgroupV2, Parent: "/kubepods/pod1/rkt-u1", Fallback: "/kubepods/pod1/rkt-u1"}},
		{mode: CgroupV1, parent: "pods", want: CgroupPlan{Mode: CgroupV1, Parent: "pods/rkt-u1"}},
		{mode: CgroupV2, own: "/system.slice/cri.service", parent: "pods", want: CgroupPlan{Mode: CgroupV2,
			Parent: "/system.slice/cri.service/pods/rkt-u1", Stage1: "/system.slice/cri.service/rkt-u1-stage1", Fallback: "/system.slice/pods/rkt-u1"}},
		{mode: CgroupV2, own: "/", parent: "pods", want: CgroupPlan{Mode: CgroupV2, Parent: "/pods/rkt-u1", Fallback: "/pods/rkt-u1"}},
		{mode: CgroupV2, own: "/system.slice/x.service", want: CgroupPlan{Mode: CgroupV2,
			Parent: "/system.slice/x.service/rkt-u1", Stage1: "/system.slice/x.service/rkt-u1-stage1", Fallback: "/system.slice/rkt-u1"}},
		{mode: CgroupV1, parent: "/a/../b", wantErrContain: "clean path"},
		{mode: CgroupV1, parent: "../up", wantErrContain: "clean path"},
		{mode: CgroupV1, parent: "/a//b", wantErrContain: "clean path"},
		{mode: CgroupV1, parent: "/", wantErrContain: "clean path"},
		{mode: CgroupV1, parent: "a/", wantErrContain: "clean path"},
	} {
		got, err := PlanCgroupsIn(tc.mode, tc.own, "u1", tc.parent)
		if tc.wantErrContain != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErrContain) {
				t.Errorf("%s %q: %+v %v, want an error", tc.mode, tc.parent, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s own %q parent %q: %+v %v, want %+v", tc.mode, tc.own, tc.parent, got, err, tc.want)
		}
	}
}
