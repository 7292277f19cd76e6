package cri

import (
	"maps"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/runtime/stage0"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// The request decoders: kubelet's (or anyone's) CRI requests are protobuf bytes the
// server maps onto pods and apps. Whatever the bytes, the mapping does not panic, refuses
// with a status that says what was wrong (never Unknown), and what it accepts is a pod or
// app the runtime's own checks accept, whose record reads back the same.

func seedConfigs() []*runtimeapi.ContainerConfig {
	return []*runtimeapi.ContainerConfig{
		containerCfg(),
		containerCfg(func(c *runtimeapi.ContainerConfig) {
			c.Command, c.Args = []string{"sh", "-c"}, []string{"echo hi"}
			c.Envs = []*runtimeapi.KeyValue{{Key: "A", Value: []byte("1")}}
			c.Mounts = []*runtimeapi.Mount{{HostPath: "/h", ContainerPath: "/c", Readonly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}}
			c.Devices = []*runtimeapi.Device{{HostPath: "/dev/null", ContainerPath: "/dev/n", Permissions: "rw"}}
			c.Tty, c.Stdin = true, true
			c.Labels = map[string]string{"io.kubernetes.pod.name": "p"}
		}),
		containerCfg(secCtx(func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"NET_RAW"}, AddAmbientCapabilities: []string{"NET_RAW"}}
			s.RunAsUser = &runtimeapi.Int64Value{Value: 1000}
			s.RunAsGroup = &runtimeapi.Int64Value{Value: 1000}
			s.NoNewPrivs, s.ReadonlyRootfs = true, true
			s.MaskedPaths = []string{"/proc/kcore"}
			s.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/profiles/deny-mkdir.json"}
		}), func(c *runtimeapi.ContainerConfig) {
			c.Linux.Resources = &runtimeapi.LinuxContainerResources{CpuShares: 2, CpuQuota: 1000, CpuPeriod: 100000, MemoryLimitInBytes: 1 << 20, OomScoreAdj: -998, CpusetCpus: "0-1"}
		}),
	}
}

func FuzzCreateContainer(f *testing.F) {
	for _, c := range seedConfigs() {
		b, err := proto.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	img := testImage(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var cfg runtimeapi.ContainerConfig
		if proto.Unmarshal(b, &cfg) != nil {
			return
		}
		sb := testSandbox()
		app := appName(cfg.GetMetadata(), map[string]bool{})
		if _, err := types.NewACName(app); err != nil {
			t.Fatalf("app name %q: %v", app, err)
		}
		a, c, err := containerConfig(&cfg, sb, img, "0123abcd", app, testEnv())
		if err != nil {
			if st, ok := status.FromError(err); !ok || st.Code() == codes.Unknown || st.Code() == codes.Internal {
				t.Fatalf("refused without a clear status: %v", err)
			}
			return
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("accepted an app stage0 refuses: %v", err)
		}
		if err := a.Linux.Validate(app); err != nil {
			t.Fatalf("accepted a container podapi refuses: %v", err)
		}
		vols := map[types.ACName]bool{}
		for _, v := range a.Volumes {
			vols[v.Name] = true
			if !path.IsAbs(v.Source) || strings.ContainsAny(v.Source, ":,") {
				t.Fatalf("volume source %q", v.Source)
			}
		}
		for _, m := range a.Mounts {
			if !vols[m.Volume] || !path.IsAbs(m.Path) {
				t.Fatalf("mount %+v without its volume", m)
			}
		}
		if a.LogPath != "" && !strings.HasPrefix(a.LogPath, sb.logDir+"/") {
			t.Fatalf("log path %q outside %q", a.LogPath, sb.logDir)
		}
		// The record kept in the pod manifest reads back as the container.
		ra := schema.RuntimeApp{Name: types.ACName(app), App: &types.App{UserLabels: a.UserLabels, UserAnnotations: a.UserAnnotations}}
		for _, k := range slices.Sorted(maps.Keys(a.Annotations)) {
			n, err := types.NewACIdentifier(k)
			if err != nil {
				t.Fatalf("annotation %q: %v", k, err)
			}
			ra.Annotations.Set(*n, a.Annotations[k])
		}
		back, ok := containerFromApp(sb.id, ra, img.ID)
		if !ok || back.id != c.id || back.meta.GetName() != c.meta.GetName() || back.meta.GetAttempt() != c.meta.GetAttempt() ||
			back.image != c.image || back.logPath != c.logPath || len(back.mounts) != len(c.mounts) || back.tty != c.tty || back.stdin != c.stdin {
			t.Fatalf("read back %+v, want %+v", back, c)
		}
		for i := range c.mounts {
			if !proto.Equal(back.mounts[i], c.mounts[i]) {
				t.Fatalf("mount %d read back %v, want %v", i, back.mounts[i], c.mounts[i])
			}
		}
		if !maps.Equal(back.labels, c.labels) && len(back.labels)+len(c.labels) > 0 {
			t.Fatalf("labels read back %v, want %v", back.labels, c.labels)
		}
	})
}

func FuzzRunPodSandbox(f *testing.F) {
	for _, c := range []*runtimeapi.PodSandboxConfig{
		{Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "u1", Attempt: 1}, Hostname: "web",
			LogDirectory: "/var/log/pods/x", Labels: map[string]string{"app": "web"},
			PortMappings: []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 8080}},
			DnsConfig:    &runtimeapi.DNSConfig{Servers: []string{"10.0.0.10"}, Searches: []string{"svc.local"}, Options: []string{"ndots:5"}},
			Linux: &runtimeapi.LinuxPodSandboxConfig{CgroupParent: "/kubepods/pod1", Sysctls: map[string]string{"net.ipv4.ip_forward": "1"},
				SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Ipc: runtimeapi.NamespaceMode_NODE}}}},
		{Metadata: &runtimeapi.PodSandboxMetadata{Name: "h", Namespace: "kube-system", Uid: "u2"},
			Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{Privileged: true,
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_NODE}}}},
	} {
		b, err := proto.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "")
	}
	f.Fuzz(func(t *testing.T, b []byte, handler string) {
		var cfg runtimeapi.PodSandboxConfig
		if proto.Unmarshal(b, &cfg) != nil {
			return
		}
		out, sb, err := sandboxConfig(&cfg, handler, sandboxChoice{network: "crinet"})
		if err != nil {
			if st, ok := status.FromError(err); !ok || st.Code() == codes.Unknown || st.Code() == codes.Internal {
				t.Fatalf("refused without a clear status: %v", err)
			}
			return
		}
		if err := out.Validate(); err != nil {
			t.Fatalf("accepted a sandbox stage0 refuses: %v", err)
		}
		opts := stage1.Options{Net: strings.Join(out.Net, ","), Hostname: out.Hostname, DNS: out.DNS, HostIPC: out.HostIPC,
			Sysctls: out.Sysctls, CgroupParent: out.CgroupParent}
		if err := opts.Validate(); err != nil {
			t.Fatalf("accepted a sandbox stage1 refuses: %v", err)
		}
		for _, p := range out.Ports {
			if _, err := stage0.ParseSandboxPort(p); err != nil {
				t.Fatalf("port %q: %v", p, err)
			}
		}
		m := schema.BlankPodManifest()
		for _, k := range slices.Sorted(maps.Keys(out.Annotations)) {
			n, err := types.NewACIdentifier(k)
			if err != nil {
				t.Fatalf("annotation %q: %v", k, err)
			}
			m.Annotations.Set(*n, out.Annotations[k])
		}
		back, ok := sandboxFromManifest("0c5d4f4e-2b1a-4c8e-9a55-000000000001", m, sb.createdAt)
		if !ok || back.fullName() != sb.fullName() || back.logDir != sb.logDir || back.privileged != sb.privileged ||
			back.namespaces.String() != sb.namespaces.String() {
			t.Fatalf("read back %+v, want %+v", back, sb)
		}
	})
}

// FuzzSeccompProfile: a Localhost profile is a file anyone with access to the node's
// profile directory writes; what is accepted is an OCI seccomp config that decodes again.
func FuzzSeccompProfile(f *testing.F) {
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}`))
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ERRNO","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}],"syscalls":[{"name":"read","action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := SeccompProfile(b)
		if err != nil {
			return
		}
		again, err := SeccompProfile(out)
		if err != nil || string(again) != string(out) {
			t.Fatalf("not stable: %s -> %s (%v)", out, again, err)
		}
	})
}
