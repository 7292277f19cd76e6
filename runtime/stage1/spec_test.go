package stage1

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cairn-os/cairn/internal/mount"
	"github.com/cairn-os/cairn/runtime/network"
)

func testPod() *PodPlan {
	return &PodPlan{
		UUID: "0c5d4f4e-2b1a-4c8e-9a55-000000000001", Dir: "/var/lib/rkt/pods/run/x", Hostname: "h",
		NetNS: "/p/ns/net", IPCNS: "/p/ns/ipc", UTSNS: "/p/ns/uts",
		EtcHosts: "/p/etc/hosts",
	}
}

func testApp(exec ...string) *AppPlan {
	return &AppPlan{
		App:    schema.RuntimeApp{Name: "web", App: &types.App{Exec: exec, User: "0", Group: "0"}},
		Rootfs: "/p/apps/web/rootfs", UID: 1000, GID: 1000,
	}
}

func TestSpecDefaults(t *testing.T) {
	s, err := Spec(testPod(), testApp("/bin/httpd", "-f"))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Process.NoNewPrivileges {
		t.Error("no-new-privileges is off")
	}
	if !reflect.DeepEqual(s.Process.Capabilities.Bounding, []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}) {
		t.Errorf("default capabilities %v", s.Process.Capabilities.Bounding)
	}
	if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
		t.Error("runc's masked/read-only paths missing")
	}
	wantNS := []specs.LinuxNamespace{{Type: "mount"}, {Type: "pid"}, {Type: "ipc", Path: "/p/ns/ipc"}, {Type: "uts", Path: "/p/ns/uts"}, {Type: "network", Path: "/p/ns/net"}}
	if !reflect.DeepEqual(s.Linux.Namespaces, wantNS) {
		t.Errorf("namespaces %+v", s.Linux.Namespaces)
	}
	if s.Linux.CgroupsPath != "rkt-0c5d4f4e-2b1a-4c8e-9a55-000000000001/web" {
		t.Errorf("cgroups path %q: must be relative (nested under the caller's cgroup)", s.Linux.CgroupsPath)
	}
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActAllow ||
		!slices.Contains(s.Linux.Seccomp.Syscalls[0].Names, "mount") || *s.Linux.Seccomp.Syscalls[0].ErrnoRet != 1 {
		t.Errorf("default seccomp %+v", s.Linux.Seccomp)
	}
	if s.Process.User.UID != 1000 || s.Process.Cwd != "/" || !slices.Contains(s.Process.Env, "AC_APP_NAME=web") {
		t.Errorf("process %+v", s.Process)
	}
	if s.Root.Path != "/p/apps/web/rootfs" {
		t.Errorf("root %q", s.Root.Path)
	}
	var dests []string
	for _, m := range s.Mounts {
		dests = append(dests, m.Destination)
	}
	if !reflect.DeepEqual(dests, []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup", "/etc/hosts"}) {
		t.Errorf("mounts %v", dests)
	}
}

func TestSpecHostNetwork(t *testing.T) {
	p := testPod()
	p.NetNS = ""
	s, err := Spec(p, testApp("/bin/true"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			t.Fatal("--net=host pod got a network namespace")
		}
	}
}

func TestSpecIsolators(t *testing.T) {
	a := testApp("/bin/true")
	mem, err := types.NewResourceMemoryIsolator("64M", "64M")
	if err != nil {
		t.Fatal(err)
	}
	cpu, err := types.NewResourceCPUIsolator("500m", "500m")
	if err != nil {
		t.Fatal(err)
	}
	remove, err := types.NewLinuxCapabilitiesRevokeSet("CAP_NET_BIND_SERVICE", "CAP_KILL")
	if err != nil {
		t.Fatal(err)
	}
	retain, err := types.NewLinuxSeccompRetainSet("ENOSYS", "read", "write", "exit_group")
	if err != nil {
		t.Fatal(err)
	}
	a.App.App.Isolators = types.Isolators{mem.AsIsolator(), cpu.AsIsolator(), isolator(t, remove), isolator(t, retain)}
	s, err := Spec(testPod(), a)
	if err != nil {
		t.Fatal(err)
	}
	if *s.Linux.Resources.Memory.Limit != 64_000_000 {
		t.Errorf("memory limit %d", *s.Linux.Resources.Memory.Limit)
	}
	if *s.Linux.Resources.CPU.Quota != 50000 || *s.Linux.Resources.CPU.Period != 100000 {
		t.Errorf("cpu %+v", s.Linux.Resources.CPU)
	}
	if !reflect.DeepEqual(s.Process.Capabilities.Bounding, []string{"CAP_AUDIT_WRITE"}) {
		t.Errorf("caps after remove %v", s.Process.Capabilities.Bounding)
	}
	sc := s.Linux.Seccomp
	if sc.DefaultAction != specs.ActErrno || *sc.DefaultErrnoRet != 38 || !reflect.DeepEqual(sc.Syscalls[0].Names, []string{"execve", "exit_group", "read", "write"}) {
		t.Errorf("retain seccomp %+v", sc)
	}
	keep, err := types.NewLinuxCapabilitiesRetainSet("CAP_CHOWN", "CAP_SYS_ADMIN")
	if err != nil {
		t.Fatal(err)
	}
	a.App.App.Isolators.ReplaceIsolatorsByName(isolator(t, keep), []types.ACIdentifier{types.LinuxCapabilitiesRevokeSetName})
	isos, _ := decodedIsolators(a.App.App.Isolators)
	caps, _ := Capabilities(isos)
	if !reflect.DeepEqual(caps, []string{"CAP_CHOWN", "CAP_SYS_ADMIN"}) {
		t.Errorf("retain caps %v", caps)
	}
}

func isolator(t *testing.T, v interface {
	AsIsolator() (*types.Isolator, error)
}) types.Isolator {
	t.Helper()
	i, err := v.AsIsolator()
	if err != nil {
		t.Fatal(err)
	}
	return *i
}

func TestSpecVolumes(t *testing.T) {
	p := testPod()
	ro := true
	p.Volumes = []types.Volume{{Name: "data", Kind: "host", Source: "/srv/data", ReadOnly: &ro}, {Name: "scratch", Kind: "empty", Source: "/p/volumes/scratch"}}
	a := testApp("/bin/true")
	a.App.Mounts = []schema.Mount{{Volume: "scratch", Path: "/tmp/s"}}
	a.App.App.MountPoints = []types.MountPoint{{Name: "data", Path: "/data"}, {Name: "unfilled", Path: "/x"}}
	s, err := Spec(p, a)
	if err != nil {
		t.Fatal(err)
	}
	got := s.Mounts[len(s.Mounts)-2:]
	want := []specs.Mount{
		{Destination: "/tmp/s", Type: "bind", Source: "/p/volumes/scratch", Options: []string{"rbind"}},
		{Destination: "/data", Type: "bind", Source: "/srv/data", Options: []string{"rbind", "ro"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("volume mounts\n got %+v\nwant %+v", got, want)
	}
	// rkt's rule: a mount point is filled once, by a mount at its path or by its volume; a
	// mount of a read-only mount point's volume is read-only.
	a.App.App.MountPoints = []types.MountPoint{{Name: "scratch", Path: "/s", ReadOnly: true}, {Name: "data", Path: "/tmp/s"}}
	s, err = Spec(p, a)
	if err != nil {
		t.Fatal(err)
	}
	got = s.Mounts[len(s.Mounts)-2:]
	want = []specs.Mount{
		{Destination: "/tmp/s", Type: "bind", Source: "/p/volumes/scratch", Options: []string{"rbind", "ro"}},
		{Destination: "/s", Type: "bind", Source: "/p/volumes/scratch", Options: []string{"rbind", "ro"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mount points\n got %+v\nwant %+v", got, want)
	}
	a.App.Mounts = []schema.Mount{{Volume: "nope", Path: "/n"}}
	if _, err := Spec(p, a); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("mount of a missing volume: %v", err)
	}
}

func TestOverlayMount(t *testing.T) {
	m := OverlayMount([]string{"/cas/tree/base", "/cas/tree/top"}, "/pods/run/u", "web")
	want := mount.Mount{Source: "overlay", Target: "/pods/run/u/apps/web/rootfs", FSType: "overlay",
		Data: "lowerdir=/cas/tree/top:/cas/tree/base,upperdir=/pods/run/u/apps/web/upper,workdir=/pods/run/u/apps/web/work,volatile"}
	if m != want {
		t.Errorf("overlay\n got %+v\nwant %+v", m, want)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, ok := range []Options{
		{Net: "none", DNS: []string{"10.0.0.1", "::1"}, Apps: []AppImage{{Name: "a", Layers: []string{"/t"}}}},
		// Named networks are checked against net.d when the pod starts, not here.
		{Net: "default,mynet:IP=10.1.1.7", Ports: []network.PortMapping{{Name: "http", HostPort: 80, ContainerPort: 8080, Protocol: "tcp"}}},
		{HostsEntries: []string{"10.0.0.2=db"}, DNSOpt: []string{"rotate"}, DNSDomain: "example.org"},
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	for _, o := range []Options{
		{Net: "host,default"},
		{Net: "mynet:IP"},
		{Net: "none", Ports: []network.PortMapping{{Name: "http", HostPort: 80, ContainerPort: 8080, Protocol: "tcp"}}},
		{HostsEntries: []string{"host", "10.0.0.2=db"}},
		{HostsEntries: []string{"db"}},
		{HostsEntries: []string{"10.0.0.2=db,10.0.0.3=web"}},
		{DNS: []string{"host", "1.1.1.1"}},
		{DNS: []string{"not-an-ip"}},
		{Hostname: "a b"},
		{Apps: []AppImage{{Name: "a"}}},
		{Apps: []AppImage{{Name: "a", Layers: []string{"/t:x"}}}},
		{Apps: []AppImage{{Name: "a", Layers: []string{"rel"}}}},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

func TestImagesInUse(t *testing.T) {
	dir := t.TempDir()
	for i, ph := range []string{"run", "exited-garbage", "prepared"} {
		d := filepath.Join(dir, ph, "p"+strconv.Itoa(i))
		os.MkdirAll(d, 0o755)
		o := Options{Apps: []AppImage{{Name: "a", ImageID: "sha512-aa", Layers: []string{"/t"}}, {Name: "b", ImageID: "sha256:" + strconv.Itoa(i), Layers: []string{"/t"}}}}
		if err := o.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(dir, "embryo", "e"), 0o755)
	ids, err := ImagesInUse(dir)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	if !reflect.DeepEqual(ids, []string{"sha256:0", "sha256:1", "sha256:2", "sha512-aa"}) {
		t.Errorf("in use: %v", ids)
	}
}

// The libcontainer config made from the spec keeps the hardening and the device rules.
func TestLibcontainerConfig(t *testing.T) {
	s, err := Spec(testPod(), testApp("/bin/true"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: "web", Spec: s})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.NoNewPrivileges || cfg.Seccomp == nil || cfg.Seccomp.DefaultAction != configs.Allow {
		t.Errorf("hardening lost: nnp %v seccomp %+v", cfg.NoNewPrivileges, cfg.Seccomp)
	}
	if cfg.Cgroups.Path != "rkt-0c5d4f4e-2b1a-4c8e-9a55-000000000001/web" {
		t.Errorf("cgroup path %q", cfg.Cgroups.Path)
	}
	rules := cfg.Cgroups.Resources.Devices
	if len(rules) == 0 || rules[0].Allow {
		t.Fatalf("device rules must start with deny-all: %+v", rules)
	}
	allowed := map[string]bool{}
	for _, r := range rules {
		if r.Allow {
			allowed[fmt.Sprintf("%c %d:%d", r.Type, r.Major, r.Minor)] = true
		}
	}
	for _, d := range specconv.AllowedDevices {
		if k := fmt.Sprintf("%c %d:%d", d.Type, d.Major, d.Minor); !allowed[k] {
			t.Errorf("device %s (%s) not allowed", k, d.Path)
		}
	}
	if !cfg.Namespaces.Contains(configs.NEWNET) || cfg.Namespaces.PathOf(configs.NEWNET) != "/p/ns/net" || !cfg.Namespaces.IsPrivate(configs.NEWPID) {
		t.Errorf("namespaces %+v", cfg.Namespaces)
	}
}

func TestResolvConfPrecedence(t *testing.T) {
	flags := &Options{DNS: []string{"8.8.8.8", "4.2.2.2"}, DNSSearch: []string{"example.com"}, DNSOpt: []string{"debug", "rotate"}, DNSDomain: "example.org"}
	want := "# Generated by rkt run\n\nsearch example.com\nnameserver 8.8.8.8\nnameserver 4.2.2.2\noptions debug rotate\ndomain example.org\n"
	cni := &cnitypes.DNS{Nameservers: []string{"10.0.0.53"}, Search: []string{"cluster.local"}}
	if got := string(ResolvConf(flags, cni)); got != want {
		t.Errorf("--dns flags over CNI:\n%s\nwant\n%s", got, want)
	}
	if got := string(ResolvConf(&Options{}, cni)); got != "# Generated by rkt run\n\nsearch cluster.local\nnameserver 10.0.0.53\n" {
		t.Errorf("CNI DNS: %q", got)
	}
	for _, o := range []*Options{{DNS: []string{"none"}}, {DNS: []string{"host"}}, {}} {
		if got := ResolvConf(o, nil); got != nil {
			t.Errorf("%+v: generated %q, want the image's own", o, got)
		}
	}
	if got := ResolvConf(&Options{DNS: []string{"none"}}, cni); got != nil {
		t.Errorf("--dns=none still used the network's DNS: %q", got)
	}
	if got := string(HostsFile("pod", []string{"10.0.0.2=db"})); !strings.Contains(got, "10.0.0.2\tdb\n") || !strings.Contains(got, "localhost.localdomain pod\n") {
		t.Errorf("hosts: %q", got)
	}
	// rkt's documented example: --hosts-entry 198.51.100.0=host1,198.51.100.1=host2 --hosts-entry 198.51.100.0=host3
	got := string(HostsFile("pod", []string{"198.51.100.0=host1", "198.51.100.1=host2", "198.51.100.0=host3"}))
	if !strings.HasSuffix(got, "\n198.51.100.0\thost1 host3\n198.51.100.1\thost2\n") {
		t.Errorf("hosts entries grouped by address: %q", got)
	}
}
