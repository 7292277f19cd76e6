package cri

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/runtime/image"
	"github.com/cairn-os/cairn/runtime/podapi"
	"github.com/cairn-os/cairn/runtime/stage0"
)

// testImage is an OCI image with an entrypoint and a cmd, and a layer whose /etc/passwd
// knows "app" (1000:1001).
func testImage(t testing.TB) *image.Image {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc", "passwd"), []byte("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"), 0o644)
	return &image.Image{ID: "sha256:" + strings.Repeat("a", 64), Format: image.OCI, Name: "docker.io/library/web:1",
		Layers: []string{dir}, OCIConfig: &v1.ConfigFile{Config: v1.Config{Entrypoint: []string{"/entry"}, Cmd: []string{"serve", "--port=80"}}}}
}

func testSandbox() *sandbox {
	return &sandbox{id: "0c5d4f4e-2b1a-4c8e-9a55-000000000001", meta: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
		logDir: "/var/log/pods/ns_p_u", namespaces: &runtimeapi.NamespaceOption{}}
}

func testEnv() hostEnv {
	return hostEnv{readFile: func(p string) ([]byte, error) {
		if p == "/profiles/deny-mkdir.json" {
			return []byte(`{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"name":"mkdir","action":"SCMP_ACT_ERRNO"},{"names":["mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}`), nil
		}
		return nil, os.ErrNotExist
	}, oomFloor: 0}
}

func containerCfg(mods ...func(*runtimeapi.ContainerConfig)) *runtimeapi.ContainerConfig {
	c := &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "web", Attempt: 2}, Image: &runtimeapi.ImageSpec{Image: "web:1"},
		LogPath: "web/2.log"}
	for _, m := range mods {
		m(c)
	}
	return c
}

func secCtx(f func(*runtimeapi.LinuxContainerSecurityContext)) func(*runtimeapi.ContainerConfig) {
	return func(c *runtimeapi.ContainerConfig) {
		if c.Linux == nil {
			c.Linux = &runtimeapi.LinuxContainerConfig{}
		}
		if c.Linux.SecurityContext == nil {
			c.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{}
		}
		f(c.Linux.SecurityContext)
	}
}

// ContainerConfig -> app: what each CRI setting becomes.
func TestContainerConfig(t *testing.T) {
	img := testImage(t)
	for _, tc := range []struct {
		name  string
		cfg   *runtimeapi.ContainerConfig
		check func(t *testing.T, a *stage0.AppConfig, c *container)
	}{
		{"the image's entrypoint and cmd", containerCfg(), func(t *testing.T, a *stage0.AppConfig, c *container) {
			if argv := append([]string{a.Exec}, a.Args...); !slices.Equal(argv, []string{"/entry", "serve", "--port=80"}) {
				t.Errorf("argv %q", argv)
			}
			if a.LogPath != "/var/log/pods/ns_p_u/web/2.log" || a.Stdin != podapi.StdinNull || a.Name != "web-2" || a.Image != img.ID {
				t.Errorf("app %+v", a)
			}
			l := a.Linux
			if l.Seccomp != podapi.SeccompUnconfined || *l.NoNewPrivileges || !slices.Equal(*l.Capabilities, DefaultCapabilities) || l.HostPID {
				t.Errorf("defaults %+v", l)
			}
			if c.id != "id1" || c.app != "web-2" || c.imageRef != img.ID || c.image != "web:1" || c.meta.Attempt != 2 {
				t.Errorf("container %+v", c)
			}
		}},
		{"args replace the cmd", containerCfg(func(c *runtimeapi.ContainerConfig) { c.Args = []string{"check"} }), func(t *testing.T, a *stage0.AppConfig, _ *container) {
			if argv := append([]string{a.Exec}, a.Args...); !slices.Equal(argv, []string{"/entry", "check"}) {
				t.Errorf("argv %q", argv)
			}
		}},
		{"a command replaces both", containerCfg(func(c *runtimeapi.ContainerConfig) { c.Command = []string{"sh", "-c"} }), func(t *testing.T, a *stage0.AppConfig, _ *container) {
			if argv := append([]string{a.Exec}, a.Args...); !slices.Equal(argv, []string{"sh", "-c"}) {
				t.Errorf("argv %q", argv)
			}
		}},
		{"command and args", containerCfg(func(c *runtimeapi.ContainerConfig) { c.Command, c.Args = []string{"sh"}, []string{"-c", "x"} }), func(t *testing.T, a *stage0.AppConfig, _ *container) {
			if argv := append([]string{a.Exec}, a.Args...); !slices.Equal(argv, []string{"sh", "-c", "x"}) {
				t.Errorf("argv %q", argv)
			}
		}},
		{"env, working dir, stdio", containerCfg(func(c *runtimeapi.ContainerConfig) {
			c.Envs = []*runtimeapi.KeyValue{{Key: "A", Value: []byte("1")}, {Key: "B", Value: []byte("x=y")}}
			c.WorkingDir = "/srv/../data"
			c.Stdin, c.StdinOnce = true, true
		}), func(t *testing.T, a *stage0.AppConfig, c *container) {
			if !slices.Equal(a.Env, []string{"A=1", "B=x=y"}) || a.WorkingDir != "/data" || a.Stdin != podapi.StdinStream || !c.stdinOnce {
				t.Errorf("app %+v", a.App)
			}
		}},
		{"env names appc cannot hold", containerCfg(func(c *runtimeapi.ContainerConfig) {
			c.Envs = []*runtimeapi.KeyValue{{Key: "A.b-c", Value: []byte("1")}, {Key: "1-data-1", Value: []byte("x")},
				{Key: "$_-data", Value: []byte("y")}, {Key: "#@!data-3", Value: []byte("z=w")}}
		}), func(t *testing.T, a *stage0.AppConfig, c *container) {
			relaxed := []string{"1-data-1=x", "$_-data=y", "#@!data-3=z=w"}
			if !slices.Equal(a.Env, []string{"A.b-c=1"}) || !slices.Equal(a.Linux.Env, relaxed) || !slices.Equal(c.env, relaxed) ||
				a.Annotations[annEnv] != `["1-data-1=x","$_-data=y","#@!data-3=z=w"]` {
				t.Errorf("app env %q, linux env %q, container env %q, annotation %q", a.Env, a.Linux.Env, c.env, a.Annotations[annEnv])
			}
		}},
		{"a tty", containerCfg(func(c *runtimeapi.ContainerConfig) { c.Tty, c.Stdin = true, true }), func(t *testing.T, a *stage0.AppConfig, _ *container) {
			if a.Stdin != podapi.StdinTTY {
				t.Errorf("stdin %s", a.Stdin)
			}
		}},
		{"mounts", containerCfg(func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{
				{HostPath: "/var/lib/kubelet/pods/u/volumes/x", ContainerPath: "/data", Readonly: true},
				{HostPath: "/mnt/shared/", ContainerPath: "/shared", Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL},
				{HostPath: "/mnt/in", ContainerPath: "/in", Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER, SelinuxRelabel: true},
			}
		}), func(t *testing.T, a *stage0.AppConfig, c *container) {
			wantVols := []string{"web-2-mount-0:/var/lib/kubelet/pods/u/volumes/x:true", "web-2-mount-1:/mnt/shared:false", "web-2-mount-2:/mnt/in:false"}
			var vols []string
			for _, v := range a.Volumes {
				vols = append(vols, string(v.Name)+":"+v.Source+":"+map[bool]string{true: "true", false: "false"}[*v.ReadOnly])
			}
			if !slices.Equal(vols, wantVols) || !reflect.DeepEqual(a.Mounts, []schema.Mount{{Volume: "web-2-mount-0", Path: "/data"}, {Volume: "web-2-mount-1", Path: "/shared"}, {Volume: "web-2-mount-2", Path: "/in"}}) {
				t.Errorf("volumes %v, mounts %v", vols, a.Mounts)
			}
			if !reflect.DeepEqual(a.Linux.Propagation, map[string]string{"/shared": "rshared", "/in": "rslave"}) || len(c.mounts) != 3 {
				t.Errorf("propagation %v", a.Linux.Propagation)
			}
		}},
		{"devices", containerCfg(func(c *runtimeapi.ContainerConfig) {
			c.Devices = []*runtimeapi.Device{{HostPath: "/dev/fuse", ContainerPath: "/dev/fuse", Permissions: "rwm"}}
		}), func(t *testing.T, a *stage0.AppConfig, _ *container) {
			if !reflect.DeepEqual(a.Linux.Devices, []podapi.Device{{HostPath: "/dev/fuse", Path: "/dev/fuse", Permissions: "rwm"}}) {
				t.Errorf("devices %+v", a.Linux.Devices)
			}
		}},
		{"user by number takes its group from passwd", containerCfg(secCtx(func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.RunAsUser = &runtimeapi.Int64Value{Value: 1000}
			s.SupplementalGroups = []int64{5, 6}
		})), func(t *testing.T, a *stage0.AppConfig, _ *container) {
			if a.User != "1000" || a.Group != "1001" || !slices.Equal(a.SupplementaryGIDs, []int{5, 6}) {
				t.Errorf("user %s group %s groups %v", a.User, a.Group, a.SupplementaryGIDs)
			}
		}},
		{"a user passwd does not know is in root's group", containerCfg(secCtx(func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.RunAsUser = &runtimeapi.Int64Value{Value: 4242}
		})), func(t *testing.T, a *stage0.AppConfig, _ *container) {
			if a.User != "4242" || a.Group != "0" {
				t.Errorf("user %s group %s", a.User, a.Group)
			}
		}},
		{"user by name, group given", containerCfg(secCtx(func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.RunAsUsername = "app"
			s.RunAsGroup = &runtimeapi.Int64Value{Value: 7}
		})), func(t *testing.T, a *stage0.AppConfig, _ *container) {
			if a.User != "app" || a.Group != "7" {
				t.Errorf("user %s group %s", a.User, a.Group)
			}
		}},
		{"capabilities", containerCfg(secCtx(func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"sys_admin", "CAP_NET_ADMIN"}, DropCapabilities: []string{"MKNOD", "chown"},
				AddAmbientCapabilities: []string{"NET_ADMIN"}}
		})), func(t *testing.T, a *stage0.AppConfig, _ *container) {
			caps := *a.Linux.Capabilities
			if !slices.Contains(caps, "CAP_SYS_ADMIN") || !slices.Contains(caps, "CAP_NET_ADMIN") || slices.Contains(caps, "CAP_MKNOD") ||
				slices.Contains(caps, "CAP_CHOWN") || !slices.Contains(caps, "CAP_KILL") || !slices.Equal(a.Linux.AmbientCapabilities, []string{"CAP_NET_ADMIN"}) {
				t.Errorf("capabilities %v ambient %v", caps, a.Linux.AmbientCapabilities)
			}
		}},
		{"drop ALL, add one", containerCfg(secCtx(func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"NET_BIND_SERVICE"}}
		})), func(t *testing.T, a *stage0.AppConfig, _ *container) {
			if !slices.Equal(*a.Linux.Capabilities, []string{"CAP_NET_BIND_SERVICE"}) {
				t.Errorf("capabilities %v", *a.Linux.Capabilities)
			}
		}},
		{"drop ALL", containerCfg(secCtx(func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"all"}}
		})), func(t *testing.T, a *stage0.AppConfig, _ *container) {
			if caps := *a.Linux.Capabilities; caps == nil || len(caps) != 0 {
				t.Errorf("capabilities %#v, want none (not nil)", caps)
			}
		}},
		{"hardening", containerCfg(secCtx(func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.NoNewPrivs, s.ReadonlyRootfs = true, true
			s.MaskedPaths, s.ReadonlyPaths = []string{"/proc/kcore"}, []string{"/proc/sys"}
			s.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
			s.NamespaceOptions = &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_NODE}
		})), func(t *testing.T, a *stage0.AppConfig, _ *container) {
			l := a.Linux
			if !*l.NoNewPrivileges || !*a.ReadOnlyRootFS || !slices.Equal(*l.MaskedPaths, []string{"/proc/kcore"}) || !slices.Equal(*l.ReadonlyPaths, []string{"/proc/sys"}) ||
				l.Seccomp != podapi.SeccompDefault || !l.HostPID {
				t.Errorf("linux %+v", l)
			}
		}},
		{"localhost seccomp", containerCfg(secCtx(func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/profiles/deny-mkdir.json"}
		})), func(t *testing.T, a *stage0.AppConfig, _ *container) {
			var sc specs.LinuxSeccomp
			if a.Linux.Seccomp != podapi.SeccompProfile || json.Unmarshal(a.Linux.SeccompProfile, &sc) != nil ||
				len(sc.Syscalls) != 2 || sc.Syscalls[0].Names[0] != "mkdir" || *sc.Syscalls[1].ErrnoRet != 1 {
				t.Errorf("seccomp %s %s", a.Linux.Seccomp, a.Linux.SeccompProfile)
			}
		}},
		{"resources", containerCfg(func(c *runtimeapi.ContainerConfig) {
			c.Linux = &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{CpuShares: 102, CpuQuota: 20000, CpuPeriod: 100000,
				MemoryLimitInBytes: 128 << 20, OomScoreAdj: -997, CpusetCpus: "0", HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 1}},
				Unified: map[string]string{"memory.high": "1"}, MemorySwapLimitInBytes: 128 << 20}}
		}), func(t *testing.T, a *stage0.AppConfig, _ *container) {
			r := a.Linux.Resources
			want := podapi.Resources{CPUShares: 102, CPUQuota: 20000, CPUPeriod: 100000, MemoryLimit: 128 << 20, CPUSetCPUs: "0"}
			if !reflect.DeepEqual(*r, want) {
				t.Errorf("resources %+v (unified and swap only where the host has them)", *r)
			}
			if *a.Linux.OOMScoreAdj != 0 {
				t.Errorf("OOM score %d, want -997 clamped to the floor 0", *a.Linux.OOMScoreAdj)
			}
		}},
		{"labels and annotations", containerCfg(func(c *runtimeapi.ContainerConfig) {
			c.Labels = map[string]string{"io.kubernetes.container.name": "web"}
			c.Annotations = map[string]string{"io.kubernetes.container.hash": "abc"}
		}), func(t *testing.T, a *stage0.AppConfig, c *container) {
			if a.UserLabels["io.kubernetes.container.name"] != "web" || a.UserAnnotations["io.kubernetes.container.hash"] != "abc" || a.Annotations[annID] != "id1" {
				t.Errorf("labels %v annotations %v %v", a.UserLabels, a.UserAnnotations, a.Annotations)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, c, err := containerConfig(tc.cfg, testSandbox(), img, "id1", "web-2", testEnv())
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, a, c)
		})
	}
}

func TestContainerConfigRefused(t *testing.T) {
	img := testImage(t)
	noCmd := *img
	noCmd.OCIConfig = &v1.ConfigFile{}
	for name, cfg := range map[string]*runtimeapi.ContainerConfig{
		"no name":              containerCfg(func(c *runtimeapi.ContainerConfig) { c.Metadata.Name = "" }),
		"env name with =":      containerCfg(func(c *runtimeapi.ContainerConfig) { c.Envs = []*runtimeapi.KeyValue{{Key: "A=B"}} }),
		"relative working dir": containerCfg(func(c *runtimeapi.ContainerConfig) { c.WorkingDir = "srv" }),
		"relative mount": containerCfg(func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{HostPath: "x", ContainerPath: "/x"}}
		}),
		"two mounts at one path": containerCfg(func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{HostPath: "/a", ContainerPath: "/x"}, {HostPath: "/b", ContainerPath: "/x/"}}
		}),
		"host path with a colon": containerCfg(func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{HostPath: "/a:b", ContainerPath: "/x"}}
		}),
		"relative device": containerCfg(func(c *runtimeapi.ContainerConfig) {
			c.Devices = []*runtimeapi.Device{{HostPath: "dev/fuse", ContainerPath: "/dev/fuse"}}
		}),
		"device permissions": containerCfg(func(c *runtimeapi.ContainerConfig) {
			c.Devices = []*runtimeapi.Device{{HostPath: "/dev/fuse", ContainerPath: "/dev/fuse", Permissions: "x"}}
		}),
		"log path out of the log directory": containerCfg(func(c *runtimeapi.ContainerConfig) { c.LogPath = "../../../etc/passwd" }),
		"privileged":                        containerCfg(secCtx(func(s *runtimeapi.LinuxContainerSecurityContext) { s.Privileged = true })),
		"unknown capability": containerCfg(secCtx(func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"FLY"}}
		})),
		"ambient not in the set": containerCfg(secCtx(func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.Capabilities = &runtimeapi.Capability{AddAmbientCapabilities: []string{"SYS_ADMIN"}}
		})),
		"group without user": containerCfg(secCtx(func(s *runtimeapi.LinuxContainerSecurityContext) { s.RunAsGroup = &runtimeapi.Int64Value{Value: 1} })),
		"negative user":      containerCfg(secCtx(func(s *runtimeapi.LinuxContainerSecurityContext) { s.RunAsUser = &runtimeapi.Int64Value{Value: -1} })),
		"masked path":        containerCfg(secCtx(func(s *runtimeapi.LinuxContainerSecurityContext) { s.MaskedPaths = []string{"proc"} })),
		"profile not found": containerCfg(secCtx(func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/profiles/none.json"}
		})),
		"relative profile": containerCfg(secCtx(func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "deny-mkdir.json"}
		})),
		"pid mode": containerCfg(secCtx(func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.NamespaceOptions = &runtimeapi.NamespaceOption{Pid: 9}
		})),
		"negative shares": containerCfg(func(c *runtimeapi.ContainerConfig) {
			c.Linux = &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{CpuShares: -1}}
		}),
		"cpu period": containerCfg(func(c *runtimeapi.ContainerConfig) {
			c.Linux = &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{CpuPeriod: 10}}
		}),
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := containerConfig(cfg, testSandbox(), img, "id1", "web", testEnv())
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("%v, want InvalidArgument", err)
			}
		})
	}
	if _, _, err := containerConfig(containerCfg(), testSandbox(), &noCmd, "id1", "web", testEnv()); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("nothing to run: %v", err)
	}
	// CreateContainer renders image volumes into host paths first; one left is refused.
	imageVolume := containerCfg(func(c *runtimeapi.ContainerConfig) {
		c.Mounts = []*runtimeapi.Mount{{ContainerPath: "/x", Image: &runtimeapi.ImageSpec{Image: "i"}}}
	})
	if _, _, err := containerConfig(imageVolume, testSandbox(), img, "id1", "web", testEnv()); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("image volume: %v, want InvalidArgument", err)
	}
}

// An ACI's exec is its entrypoint: args are appended, a command replaces it.
func TestCommandLineACI(t *testing.T) {
	name, _ := types.NewACIdentifier("example.com/etcd")
	img := &image.Image{ACIManifest: &schema.ImageManifest{Name: *name, App: &types.App{Exec: types.Exec{"/etcd", "--name=x"}}}}
	for _, tc := range []struct {
		command, args, want []string
	}{
		{nil, nil, []string{"/etcd", "--name=x"}},
		{nil, []string{"--debug"}, []string{"/etcd", "--name=x", "--debug"}},
		{[]string{"/bin/sh"}, nil, []string{"/bin/sh"}},
	} {
		got, err := commandLine(&runtimeapi.ContainerConfig{Command: tc.command, Args: tc.args}, img)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("command %q args %q: %q %v, want %q", tc.command, tc.args, got, err, tc.want)
		}
	}
}

func TestAppName(t *testing.T) {
	for _, tc := range []struct {
		name    string
		attempt uint32
		taken   []string
		want    string
	}{
		{"web", 0, nil, "web"},
		{"web", 3, nil, "web-3"},
		{"Web_Server.1", 0, nil, "web-server-1"},
		{"web", 0, []string{"web"}, "web-2"},
		{"web", 0, []string{"web", "web-2"}, "web-3"},
		{"___", 0, nil, "container"},
	} {
		taken := map[string]bool{}
		for _, n := range tc.taken {
			taken[n] = true
		}
		got := appName(&runtimeapi.ContainerMetadata{Name: tc.name, Attempt: tc.attempt}, taken)
		if got != tc.want {
			t.Errorf("%s attempt %d: %s, want %s", tc.name, tc.attempt, got, tc.want)
		}
		if _, err := types.NewACName(got); err != nil {
			t.Errorf("%s: %v", got, err)
		}
	}
}

func TestClampOOM(t *testing.T) {
	for _, tc := range []struct {
		v     int64
		floor int
		want  int
	}{{-998, 0, 0}, {-998, -1000, -998}, {500, 0, 500}, {-5000, -1000, -1000}, {5000, 0, 1000}, {-10, -20, -10}} {
		if got := clampOOM(tc.v, tc.floor); got != tc.want {
			t.Errorf("clampOOM(%d, %d) = %d, want %d", tc.v, tc.floor, got, tc.want)
		}
	}
}

func TestSeccompProfile(t *testing.T) {
	got, err := SeccompProfile([]byte(`{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
		"archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"]}],
		"syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"},{"name":"personality","action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var sc specs.LinuxSeccomp
	if err := json.Unmarshal(got, &sc); err != nil {
		t.Fatal(err)
	}
	if sc.DefaultAction != specs.ActErrno || *sc.DefaultErrnoRet != 38 || !slices.Equal(sc.Architectures, []specs.Arch{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}) ||
		len(sc.Syscalls) != 2 || sc.Syscalls[1].Names[0] != "personality" || len(sc.Syscalls[1].Args) != 1 {
		t.Fatalf("profile %+v", sc)
	}
	for name, p := range map[string]string{
		"not json":       `{`,
		"no action":      `{}`,
		"unknown action": `{"defaultAction":"SCMP_ACT_MAYBE"}`,
		"rule action":    `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["x"],"action":"nope"}]}`,
		"no names":       `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"action":"SCMP_ACT_ERRNO"}]}`,
		"a bad name":     `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a b"],"action":"SCMP_ACT_ERRNO"}]}`,
		"too large":      `{"defaultAction":"SCMP_ACT_ALLOW","x":"` + strings.Repeat("a", maxProfile) + `"}`,
	} {
		if _, err := SeccompProfile([]byte(p)); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

// PodSandboxConfig -> sandbox pod.
func TestSandboxConfig(t *testing.T) {
	base := func(mods ...func(*runtimeapi.PodSandboxConfig)) *runtimeapi.PodSandboxConfig {
		c := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "u1", Attempt: 1},
			Hostname: "web-0", LogDirectory: "/var/log/pods/default_web_u1", Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"a": "b"},
			Linux: &runtimeapi.LinuxPodSandboxConfig{CgroupParent: "/kubepods/pod-u1", Sysctls: map[string]string{"net.ipv4.ip_forward": "1"},
				SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{}}}}
		for _, m := range mods {
			m(c)
		}
		return c
	}
	cfg, sb, err := sandboxConfig(base(func(c *runtimeapi.PodSandboxConfig) {
		c.PortMappings = []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 8080}, {Protocol: runtimeapi.Protocol_UDP, ContainerPort: 53, HostPort: 5353, HostIp: "127.0.0.1"},
			{ContainerPort: 81}, {ContainerPort: 82, HostPort: 8082, HostIp: "::1"}}
		c.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"default.svc.cluster.local"}, Options: []string{"ndots:5"}}
	}), "", sandboxChoice{network: "cbr0"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"cbr0:K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_UID=u1"}
	if !slices.Equal(cfg.Net, want) || cfg.Hostname != "web-0" || cfg.CgroupParent != "/kubepods/pod-u1" || cfg.HostIPC ||
		!slices.Equal(cfg.Ports, []string{"p0:tcp:80:0.0.0.0:8080", "p1:udp:53:127.0.0.1:5353", "p3:tcp:82:[::1]:8082"}) ||
		!slices.Equal(cfg.DNS, []string{"10.96.0.10"}) || !slices.Equal(cfg.DNSSearch, []string{"default.svc.cluster.local"}) || !slices.Equal(cfg.DNSOpt, []string{"ndots:5"}) ||
		cfg.Sysctls["net.ipv4.ip_forward"] != "1" || cfg.UserLabels["app"] != "web" || cfg.UserAnnotations["a"] != "b" || !cfg.SharedPID {
		t.Fatalf("sandbox config %+v", cfg)
	}
	if cfg.Annotations[annName] != "web" || cfg.Annotations[annAttempt] != "1" || cfg.Annotations["cairn-os.org/owner"] != Owner || sb.fullName() != "web_default_u1_1" {
		t.Fatalf("annotations %v, name %s", cfg.Annotations, sb.fullName())
	}
	host, _, err := sandboxConfig(base(func(c *runtimeapi.PodSandboxConfig) {
		c.Linux.Sysctls = nil
		c.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_NODE}
		c.PortMappings = []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 8080}}
	}), "", sandboxChoice{})
	if err != nil || !slices.Equal(host.Net, []string{"host"}) || !host.HostIPC || host.SharedPID || host.Ports != nil || !slices.Equal(host.DNS, []string{"host"}) {
		t.Fatalf("host sandbox %+v %v", host, err)
	}
	for name, tc := range map[string]struct {
		cfg     *runtimeapi.PodSandboxConfig
		handler string
		net     string
		code    codes.Code
	}{
		"no metadata":     {&runtimeapi.PodSandboxConfig{}, "", "n", codes.InvalidArgument},
		"no uid":          {base(func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Uid = "" }), "", "n", codes.InvalidArgument},
		"runtime handler": {base(), "runc", "n", codes.InvalidArgument},
		"no network":      {base(), "", "", codes.FailedPrecondition},
		"sctp": {base(func(c *runtimeapi.PodSandboxConfig) {
			c.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_SCTP, HostPort: 1}}
		}), "", "n", codes.InvalidArgument},
		"host port twice": {base(func(c *runtimeapi.PodSandboxConfig) {
			c.PortMappings = []*runtimeapi.PortMapping{{ContainerPort: 1, HostPort: 1}, {ContainerPort: 2, HostPort: 1}}
		}), "", "n", codes.InvalidArgument},
		"host IP": {base(func(c *runtimeapi.PodSandboxConfig) {
			c.PortMappings = []*runtimeapi.PortMapping{{ContainerPort: 1, HostPort: 1, HostIp: "x"}}
		}), "", "n", codes.InvalidArgument},
		"host sysctl": {base(func(c *runtimeapi.PodSandboxConfig) { c.Linux.Sysctls = map[string]string{"vm.swappiness": "1"} }), "", "n", codes.InvalidArgument},
		"dns server": {base(func(c *runtimeapi.PodSandboxConfig) {
			c.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"dns.local"}}
		}), "", "n", codes.InvalidArgument},
		"dns option":    {base(func(c *runtimeapi.PodSandboxConfig) { c.DnsConfig = &runtimeapi.DNSConfig{Options: []string{"a b"}} }), "", "n", codes.InvalidArgument},
		"host name":     {base(func(c *runtimeapi.PodSandboxConfig) { c.Hostname = "a/b" }), "", "n", codes.InvalidArgument},
		"cgroup parent": {base(func(c *runtimeapi.PodSandboxConfig) { c.Linux.CgroupParent = "/a/../../b" }), "", "n", codes.InvalidArgument},
		"log directory": {base(func(c *runtimeapi.PodSandboxConfig) { c.LogDirectory = "logs" }), "", "n", codes.InvalidArgument},
		"network mode": {base(func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_CONTAINER
		}), "", "n", codes.InvalidArgument},
		"pid mode": {base(func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_TARGET
		}), "", "n", codes.InvalidArgument},
		"user namespace": {base(func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD}
		}), "", "n", codes.InvalidArgument},
	} {
		_, _, err := sandboxConfig(tc.cfg, tc.handler, sandboxChoice{network: tc.net})
		if status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
}

// What the index writes into the pod manifest reads back the same.
func TestIndexRecords(t *testing.T) {
	sb := &sandbox{id: "0c5d4f4e-2b1a-4c8e-9a55-000000000001", meta: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "u1", Attempt: 3},
		labels: map[string]string{"app": "web"}, annotations: map[string]string{"Note": "x"}, logDir: "/var/log/pods/x", runtimeHandler: "",
		namespaces: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_NODE},
		privileged: true}
	m := schema.BlankPodManifest()
	for k, v := range sandboxAnnotations(sb) {
		m.Annotations.Set(types.ACIdentifier(k), v)
	}
	m.UserLabels, m.UserAnnotations = sb.labels, sb.annotations
	got, ok := sandboxFromManifest(sb.id, m, sb.createdAt)
	if !ok || got.fullName() != sb.fullName() || !reflect.DeepEqual(got.labels, sb.labels) || !reflect.DeepEqual(got.annotations, sb.annotations) ||
		got.logDir != sb.logDir || !got.privileged || got.namespaces.String() != sb.namespaces.String() {
		t.Fatalf("sandbox read back %+v, wrote %+v", got, sb)
	}
	if _, ok := sandboxFromManifest(sb.id, schema.BlankPodManifest(), sb.createdAt); ok {
		t.Fatal("a pod that is not rktlet's read as a sandbox")
	}
	c := &container{id: "abc", sandboxID: sb.id, app: "web-3", meta: &runtimeapi.ContainerMetadata{Name: "web", Attempt: 3}, image: "web:1",
		labels: map[string]string{"l": "1"}, annotations: map[string]string{"a": "2"}, logPath: "web/3.log", stdin: true, tty: true,
		env:    []string{"1-data=x"},
		mounts: []*runtimeapi.Mount{{ContainerPath: "/d", HostPath: "/h", Readonly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}}}
	anns, err := containerAnnotations(c)
	if err != nil {
		t.Fatal(err)
	}
	ra := schema.RuntimeApp{Name: "web-3", App: &types.App{UserLabels: c.labels, UserAnnotations: c.annotations}}
	for k, v := range anns {
		ra.Annotations.Set(types.ACIdentifier(k), v)
	}
	gotC, ok := containerFromApp(sb.id, ra, "sha256:x")
	c.imageRef = "sha256:x"
	if !ok || !reflect.DeepEqual(gotC, c) {
		t.Fatalf("container read back %+v, wrote %+v", gotC, c)
	}
	if _, ok := containerFromApp(sb.id, schema.RuntimeApp{Name: "x"}, ""); ok {
		t.Fatal("an app that is not a CRI container read as one")
	}
}

func TestIndexNames(t *testing.T) {
	x := newIndex()
	if err := x.reserveSandbox("a_b_c_0", "id1"); err != nil {
		t.Fatal(err)
	}
	if err := x.reserveSandbox("a_b_c_0", "id2"); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("a name twice: %v", err)
	}
	x.releaseSandboxName("a_b_c_0", "id2") // not its own: kept
	if err := x.reserveSandbox("a_b_c_0", "id3"); err == nil {
		t.Fatal("a name freed by another ID")
	}
	sb := &sandbox{id: "abcdef", meta: &runtimeapi.PodSandboxMetadata{Name: "a", Namespace: "b", Uid: "c"}}
	x.addSandbox(sb)
	x.addSandbox(&sandbox{id: "abcxyz", meta: &runtimeapi.PodSandboxMetadata{Name: "d", Namespace: "b", Uid: "c"}})
	if got, err := x.sandbox("abcd"); err != nil || got != sb {
		t.Fatalf("by prefix: %v %v", got, err)
	}
	if _, err := x.sandbox("abc"); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("an ambiguous prefix: %v", err)
	}
	if _, err := x.sandbox("zzz"); status.Code(err) != codes.NotFound {
		t.Fatalf("an unknown ID: %v", err)
	}
	x.addContainer(&container{id: "c1", sandboxID: sb.id, meta: &runtimeapi.ContainerMetadata{Name: "w"}})
	x.removeSandbox(sb.id)
	if _, err := x.container("c1"); status.Code(err) != codes.NotFound || len(x.listSandboxes()) != 1 {
		t.Fatalf("a removed sandbox's container: %v", err)
	}
	if err := x.reserveSandbox("a_b_c_0", "id4"); err != nil {
		t.Fatalf("the name of a removed sandbox: %v", err)
	}
}

func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{podapi.ErrNotFound, codes.NotFound},
		{errors.Join(errors.New("app x"), podapi.ErrState), codes.FailedPrecondition},
		{podapi.ErrExists, codes.AlreadyExists},
		{podapi.ErrInvalid, codes.InvalidArgument},
		{podapi.ErrNoSupervisor, codes.FailedPrecondition},
		{errors.New("disk on fire"), codes.Unknown},
		{invalidf("x"), codes.InvalidArgument},
	} {
		if got := status.Code(statusOf(tc.err)); got != tc.code {
			t.Errorf("%v: %s, want %s", tc.err, got, tc.code)
		}
	}
	// A status wrapped with context keeps its code and the whole message.
	err := statusOf(errors.Join(errors.New("create container x"), notFoundf("image y")))
	if status.Code(err) != codes.NotFound || !strings.Contains(status.Convert(err).Message(), "create container x") {
		t.Fatalf("wrapped status: %v", err)
	}
}
