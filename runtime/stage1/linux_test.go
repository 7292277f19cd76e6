package stage1

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cairn-os/cairn/runtime/podapi"
)

// linuxApp is testApp with a volume mounted at /data, and l.
func linuxApp(l *podapi.Linux, devs ...specs.LinuxDevice) (*PodPlan, *AppPlan) {
	pod := testPod()
	pod.Volumes = append(pod.Volumes, types.Volume{Name: "data", Kind: "host", Source: "/host/data"})
	app := testApp("/bin/sh")
	app.App.Mounts = []schema.Mount{{Volume: "data", Path: "/data"}}
	app.Linux, app.Devices = l, devs
	return pod, app
}

func mountAt(s *specs.Spec, dest string) specs.Mount {
	for _, m := range s.Mounts {
		if m.Destination == dest {
			return m
		}
	}
	return specs.Mount{}
}

// Each podapi.Linux setting and what it does to the spec.
func TestSpecLinux(t *testing.T) {
	null := specs.LinuxDevice{Path: "/dev/xnull", Type: "c", Major: 1, Minor: 3}
	for _, tc := range []struct {
		name  string
		l     *podapi.Linux
		devs  []specs.LinuxDevice
		check func(t *testing.T, s *specs.Spec)
	}{
		{"nil leaves the defaults", nil, nil, func(t *testing.T, s *specs.Spec) {
			if !s.Process.NoNewPrivileges || s.Linux.Seccomp == nil || len(s.Linux.MaskedPaths) == 0 ||
				!slices.Equal(s.Process.Capabilities.Bounding, DefaultCapabilities) {
				t.Errorf("defaults changed: %+v", s.Process)
			}
		}},
		{"capabilities replace the set", &podapi.Linux{Capabilities: &[]string{"CAP_SYS_ADMIN", "CAP_CHOWN", "CAP_CHOWN"}}, nil, func(t *testing.T, s *specs.Spec) {
			c := s.Process.Capabilities
			want := []string{"CAP_CHOWN", "CAP_SYS_ADMIN"}
			if !slices.Equal(c.Bounding, want) || !slices.Equal(c.Effective, want) || !slices.Equal(c.Permitted, want) {
				t.Errorf("capabilities %+v", c)
			}
		}},
		{"env names appc cannot hold, over the app's", &podapi.Linux{Env: []string{"1-data=x", "$_-data=y=z", "PATH=/opt"}}, nil, func(t *testing.T, s *specs.Spec) {
			for _, want := range []string{"1-data=x", "$_-data=y=z", "PATH=/opt"} {
				if !slices.Contains(s.Process.Env, want) {
					t.Errorf("env %q, want %s", s.Process.Env, want)
				}
			}
			if slices.ContainsFunc(s.Process.Env, func(kv string) bool { return strings.HasPrefix(kv, "PATH=") && kv != "PATH=/opt" }) {
				t.Errorf("env %q: PATH twice", s.Process.Env)
			}
		}},
		{"no capabilities at all", &podapi.Linux{Capabilities: &[]string{}}, nil, func(t *testing.T, s *specs.Spec) {
			if len(s.Process.Capabilities.Bounding) != 0 {
				t.Errorf("capabilities %v, want none", s.Process.Capabilities.Bounding)
			}
		}},
		{"ambient", &podapi.Linux{Capabilities: &[]string{"CAP_NET_RAW"}, AmbientCapabilities: []string{"CAP_NET_RAW"}}, nil, func(t *testing.T, s *specs.Spec) {
			c := s.Process.Capabilities
			if !slices.Equal(c.Ambient, []string{"CAP_NET_RAW"}) || !slices.Equal(c.Inheritable, []string{"CAP_NET_RAW"}) {
				t.Errorf("ambient %+v", c)
			}
		}},
		{"no-new-privileges off", &podapi.Linux{NoNewPrivileges: new(false)}, nil, func(t *testing.T, s *specs.Spec) {
			if s.Process.NoNewPrivileges {
				t.Error("no-new-privileges on")
			}
		}},
		{"unconfined", &podapi.Linux{Seccomp: podapi.SeccompUnconfined}, nil, func(t *testing.T, s *specs.Spec) {
			if s.Linux.Seccomp != nil {
				t.Error("a seccomp filter")
			}
		}},
		{"profile", &podapi.Linux{Seccomp: podapi.SeccompProfile, SeccompProfile: []byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`)}, nil, func(t *testing.T, s *specs.Spec) {
			sc := s.Linux.Seccomp
			if sc == nil || sc.DefaultAction != specs.ActErrno || len(sc.Syscalls) != 1 || sc.Syscalls[0].Names[0] != "read" {
				t.Errorf("seccomp %+v", sc)
			}
		}},
		{"masked and read-only paths", &podapi.Linux{MaskedPaths: &[]string{}, ReadonlyPaths: &[]string{"/proc/bus"}}, nil, func(t *testing.T, s *specs.Spec) {
			if len(s.Linux.MaskedPaths) != 0 || !slices.Equal(s.Linux.ReadonlyPaths, []string{"/proc/bus"}) {
				t.Errorf("masked %v read-only %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
			}
		}},
		{"host pid", &podapi.Linux{HostPID: true}, nil, func(t *testing.T, s *specs.Spec) {
			for _, ns := range s.Linux.Namespaces {
				if ns.Type == specs.PIDNamespace {
					t.Error("a PID namespace of its own")
				}
			}
		}},
		{"oom score", &podapi.Linux{OOMScoreAdj: new(-5)}, nil, func(t *testing.T, s *specs.Spec) {
			if s.Process.OOMScoreAdj == nil || *s.Process.OOMScoreAdj != -5 {
				t.Errorf("oom score %v", s.Process.OOMScoreAdj)
			}
		}},
		{"rshared mount", &podapi.Linux{Propagation: map[string]string{"/data": podapi.PropagationShared}}, nil, func(t *testing.T, s *specs.Spec) {
			if m := mountAt(s, "/data"); !slices.Equal(m.Options, []string{"rbind", "rshared"}) || s.Linux.RootfsPropagation != "rshared" {
				t.Errorf("mount %+v, root %q", m, s.Linux.RootfsPropagation)
			}
		}},
		{"rslave mount", &podapi.Linux{Propagation: map[string]string{"/data": podapi.PropagationSlave}}, nil, func(t *testing.T, s *specs.Spec) {
			if m := mountAt(s, "/data"); !slices.Equal(m.Options, []string{"rbind", "rslave"}) || s.Linux.RootfsPropagation != "rslave" {
				t.Errorf("mount %+v, root %q", m, s.Linux.RootfsPropagation)
			}
		}},
		{"rprivate mount", &podapi.Linux{Propagation: map[string]string{"/data": podapi.PropagationPrivate}}, nil, func(t *testing.T, s *specs.Spec) {
			if m := mountAt(s, "/data"); !slices.Equal(m.Options, []string{"rbind", "rprivate"}) || s.Linux.RootfsPropagation != "" {
				t.Errorf("mount %+v, root %q", m, s.Linux.RootfsPropagation)
			}
		}},
		{"device", &podapi.Linux{Devices: []podapi.Device{{HostPath: "/dev/null", Path: "/dev/xnull", Permissions: "rw"}}}, []specs.LinuxDevice{null}, func(t *testing.T, s *specs.Spec) {
			if !slices.ContainsFunc(s.Linux.Devices, func(d specs.LinuxDevice) bool { return d.Path == "/dev/xnull" }) {
				t.Errorf("devices %+v", s.Linux.Devices)
			}
			last := s.Linux.Resources.Devices[len(s.Linux.Resources.Devices)-1]
			if !last.Allow || last.Type != "c" || *last.Major != 1 || *last.Minor != 3 || last.Access != "rw" {
				t.Errorf("device rule %+v", last)
			}
		}},
		{"privileged", &podapi.Linux{Privileged: true, Capabilities: &[]string{}}, []specs.LinuxDevice{null}, func(t *testing.T, s *specs.Spec) {
			if !slices.Equal(s.Process.Capabilities.Bounding, AllCapabilities()) || !slices.Contains(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN") {
				t.Errorf("capabilities %v", s.Process.Capabilities.Bounding)
			}
			if s.Linux.Seccomp != nil || s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil {
				t.Error("confinement left on")
			}
			if slices.Contains(mountAt(s, "/sys").Options, "ro") || slices.Contains(mountAt(s, "/sys/fs/cgroup").Options, "ro") {
				t.Error("read-only /sys or cgroups")
			}
			last := s.Linux.Resources.Devices[len(s.Linux.Resources.Devices)-1]
			if !last.Allow || last.Access != "rwm" || last.Major != nil {
				t.Errorf("last device rule %+v, want every device allowed", last)
			}
		}},
		{"resources", &podapi.Linux{Resources: &podapi.Resources{CPUShares: 512, CPUQuota: 50000, CPUPeriod: 100000, MemoryLimit: 64 << 20, CPUSetCPUs: "0", PidsLimit: 10}}, nil, func(t *testing.T, s *specs.Spec) {
			r := s.Linux.Resources
			if *r.CPU.Shares != 512 || *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 || *r.Memory.Limit != 64<<20 || r.CPU.Cpus != "0" || *r.Pids.Limit != 10 {
				t.Errorf("resources %+v %+v", r.CPU, r.Memory)
			}
			if r.Memory.Swap != nil {
				t.Error("a swap limit nobody asked for")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod, app := linuxApp(tc.l, tc.devs...)
			s, err := Spec(pod, app)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
			// libcontainer takes what the spec says.
			if _, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: "web", Spec: s}); err != nil {
				t.Fatalf("libcontainer config: %v", err)
			}
		})
	}
}

func TestSpecLinuxRefused(t *testing.T) {
	for name, l := range map[string]*podapi.Linux{
		"ambient not permitted":      {Capabilities: &[]string{"CAP_CHOWN"}, AmbientCapabilities: []string{"CAP_NET_RAW"}},
		"propagation of no mount":    {Propagation: map[string]string{"/elsewhere": podapi.PropagationShared}},
		"profile that is no profile": {Seccomp: podapi.SeccompProfile, SeccompProfile: []byte(`"x"`)},
	} {
		t.Run(name, func(t *testing.T) {
			pod, app := linuxApp(l)
			if _, err := Spec(pod, app); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestSpecHostIPC(t *testing.T) {
	pod := testPod()
	pod.IPCNS, pod.HostIPC = "", true
	s, err := Spec(pod, testApp("/bin/sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.IPCNamespace {
			t.Fatalf("an IPC namespace with the host's: %+v", s.Linux.Namespaces)
		}
	}
}

func TestCheckSysctl(t *testing.T) {
	for _, tc := range []struct {
		name             string
		privNet, privIPC bool
		ok               bool
	}{
		{"net.ipv4.ip_forward", true, true, true},
		{"net/ipv4/conf/eth0.100/forwarding", true, true, true},
		{"net.core.somaxconn", false, true, false},
		{"kernel.shm_rmid_forced", true, true, true},
		{"kernel.msgmax", true, true, true},
		{"kernel.sem", true, false, false},
		{"fs.mqueue.msg_max", true, true, true},
		{"kernel.pid_max", true, true, false},
		{"vm.swappiness", true, true, false},
		{"net.ipv4/../../../etc", true, true, false},
		{"net", true, true, false},
		{"", true, true, false},
	} {
		err := CheckSysctl(tc.name, "1", tc.privNet, tc.privIPC)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrSysctl)) {
			t.Errorf("%s (net %v, ipc %v): %v, want ok=%v", tc.name, tc.privNet, tc.privIPC, err, tc.ok)
		}
	}
	for in, want := range map[string]string{
		"net.ipv4.ip_forward":               "/proc/sys/net/ipv4/ip_forward",
		"net/ipv4/conf/eth0.100/forwarding": "/proc/sys/net/ipv4/conf/eth0.100/forwarding",
	} {
		if got := SysctlPath(in); got != want {
			t.Errorf("SysctlPath(%s) = %s, want %s", in, got, want)
		}
	}
}

// A sandbox's shared PID namespace: every app joins it, unless it has the host's.
func TestSpecSharedPID(t *testing.T) {
	pod := testPod()
	pod.PIDNS = "/proc/42/ns/pid"
	s, err := Spec(pod, testApp("/bin/sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: "/proc/42/ns/pid"}) {
		t.Fatalf("namespaces %+v", s.Linux.Namespaces)
	}
	app := testApp("/bin/sh")
	app.Linux = &podapi.Linux{HostPID: true}
	if s, err = Spec(pod, app); err != nil || slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.PIDNamespace }) {
		t.Fatalf("host PID: %+v %v", s.Linux.Namespaces, err)
	}
}
