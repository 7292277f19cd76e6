package stage0

import (
	"bufio"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/runtime/network"
	"github.com/cairn-os/cairn/runtime/podapi"
	"github.com/cairn-os/cairn/runtime/stage1"
)

func TestParseSandboxPort(t *testing.T) {
	for in, want := range map[string]network.PortMapping{
		"http:tcp:8080:0.0.0.0:80":   {Name: "http", Protocol: "tcp", ContainerPort: 8080, HostPort: 80},
		"dns:udp:53:127.0.0.1:5353":  {Name: "dns", Protocol: "udp", ContainerPort: 53, HostPort: 5353, HostIP: "127.0.0.1"},
		"web:tcp:80:[::]:8080":       {Name: "web", Protocol: "tcp", ContainerPort: 80, HostPort: 8080},
		"web:tcp:80:[fd00::1]:8080":  {Name: "web", Protocol: "tcp", ContainerPort: 80, HostPort: 8080, HostIP: "fd00::1"},
		"web:tcp:80:192.0.2.7:65535": {Name: "web", Protocol: "tcp", ContainerPort: 80, HostPort: 65535, HostIP: "192.0.2.7"},
	} {
		got, err := ParseSandboxPort(in)
		if err != nil || got != want {
			t.Errorf("%s: %+v %v, want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"http:8080", "http:tcp:8080:80", "http:sctp:80:0.0.0.0:80", "HTTP:tcp:80:0.0.0.0:80",
		"http:tcp:0:0.0.0.0:80", "http:tcp:80:0.0.0.0:70000", "http:tcp:80:host:80", "http:tcp:x:0.0.0.0:80", ""} {
		if got, err := ParseSandboxPort(in); err == nil {
			t.Errorf("%q accepted: %+v", in, got)
		}
	}
	if _, err := sandboxPorts([]string{"a:tcp:80:0.0.0.0:8080", "b:tcp:81:127.0.0.1:8080"}); err == nil {
		t.Error("one host port forwarded twice")
	}
	if _, err := sandboxPorts([]string{"a:tcp:80:0.0.0.0:8080", "a:udp:80:0.0.0.0:8080"}); err == nil {
		t.Error("one name twice")
	}
	if _, err := sandboxPorts([]string{"a:tcp:80:0.0.0.0:8080", "b:udp:80:0.0.0.0:8080"}); err != nil {
		t.Errorf("tcp and udp of one port: %v", err)
	}
}

func TestParseAttachMode(t *testing.T) {
	for in, want := range map[string]AttachMode{
		"stdin,stdout": {Stdin: true, Stdout: true},
		"stderr":       {Stderr: true},
		"tty":          {TTYIn: true, TTYOut: true},
		"tty-out":      {TTYOut: true},
	} {
		got, auto, list, err := ParseAttachMode(in)
		if err != nil || got != want || auto || list {
			t.Errorf("%s: %+v %v %v %v", in, got, auto, list, err)
		}
	}
	if _, auto, _, err := ParseAttachMode("auto"); !auto || err != nil {
		t.Error("auto")
	}
	if _, _, list, err := ParseAttachMode("list"); !list || err != nil {
		t.Error("list")
	}
	for _, in := range []string{"tty,stdout", "stdin,bogus", "tty-in,stderr"} {
		if _, _, _, err := ParseAttachMode(in); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
	for stdin, want := range map[podapi.StdinMode][]string{
		podapi.StdinTTY: {"tty"}, podapi.StdinStream: {"stdin", "stdout", "stderr"}, podapi.StdinNull: {"stdout", "stderr"}, "": {"stdout", "stderr"},
	} {
		if got := Endpoints(stdin); !reflect.DeepEqual(got, want) {
			t.Errorf("endpoints of %q: %v", stdin, got)
		}
		if err := ModeFor(stdin).Check(stdin); err != nil {
			t.Errorf("auto mode of %q: %v", stdin, err)
		}
	}
	for _, c := range []struct {
		mode  string
		stdin podapi.StdinMode
	}{{"tty", podapi.StdinStream}, {"stdout", podapi.StdinTTY}, {"stdin", podapi.StdinNull}} {
		m, _, _, _ := ParseAttachMode(c.mode)
		if err := m.Check(c.stdin); err == nil {
			t.Errorf("--mode=%s on an app with stdin %s accepted", c.mode, c.stdin)
		}
	}
}

func TestSandboxConfigRefused(t *testing.T) {
	for name, cfg := range map[string]SandboxConfig{
		"bad port":         {Ports: []string{"x"}},
		"bad annotation":   {Annotations: map[string]string{"Not An Identifier": "x"}},
		"cgroup parent up": {CgroupParent: "/a/../../b"},
		"unknown --net":    {Network: Network{Net: []string{"host,none"}}},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	h := testHost(t)
	for name, cfg := range map[string]SandboxConfig{
		"host sysctl":              {Network: Network{Net: []string{"none"}}, Sysctls: map[string]string{"vm.swappiness": "1"}},
		"net sysctl on host net":   {Network: Network{Net: []string{"host"}}, Sysctls: map[string]string{"net.core.somaxconn": "1"}},
		"ipc sysctl with host ipc": {Network: Network{Net: []string{"none"}}, HostIPC: true, Sysctls: map[string]string{"kernel.shmmax": "1"}},
	} {
		if p, err := h.PrepareSandbox(context.Background(), &cfg); err == nil {
			p.Close()
			t.Errorf("%s accepted", name)
		}
	}
	for name, c := range map[string]AppConfig{
		"no image":       {},
		"stdin mode":     {App: App{Image: "sh"}, Stdin: "file"},
		"log path":       {App: App{Image: "sh"}, LogPath: "rel/x.log"},
		"host volume":    {App: App{Image: "sh"}, Volumes: []types.Volume{{Name: "v", Kind: "host", Source: "tmp"}}},
		"volume twice":   {App: App{Image: "sh"}, Volumes: []types.Volume{{Name: "v", Kind: "empty"}, {Name: "v", Kind: "empty"}}},
		"kind of volume": {App: App{Image: "sh"}, Volumes: []types.Volume{{Name: "v", Kind: "nfs"}}},
		"annotation":     {App: App{Image: "sh", Annotations: map[string]string{"Not An Identifier": "x"}}},
		"image id":       {App: App{Image: "sh", Annotations: map[string]string{stage1.AnnotationImageID: "x"}}},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("app %s accepted", name)
		}
	}
}

// A sandbox is a pod with no apps; AddApp prepares an app against its manifest and sends it
// to the supervisor (here a stand-in that records the request).
func TestPrepareSandboxAndAddApp(t *testing.T) {
	h := testHost(t)
	ctx := context.Background()
	p, err := h.PrepareSandbox(ctx, &SandboxConfig{
		Network: Network{Net: []string{"none"}}, Ports: nil,
		Annotations: map[string]string{"example.com/owner": "ci"}, UserLabels: map[string]string{"tier": "1"},
		CgroupParent: "/kubepods/pod1", HostIPC: true, Sysctls: map[string]string{"net.ipv4.ip_forward": "1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	man, err := p.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Apps) != 0 || man.UserLabels["tier"] != "1" {
		t.Fatalf("sandbox manifest %+v", man)
	}
	if v, _ := man.Annotations.Get("example.com/owner"); v != "ci" {
		t.Fatalf("annotations %v", man.Annotations)
	}
	opts, err := stage1.ReadOptions(p.Path())
	if err != nil || !opts.Sandbox || opts.CgroupParent != "/kubepods/pod1" || len(opts.Apps) != 0 ||
		!opts.HostIPC || opts.Sysctls["net.ipv4.ip_forward"] != "1" {
		t.Fatalf("options %+v %v", opts, err)
	}
	if _, err := h.AddApp(ctx, p.UUID, &AppConfig{App: App{Image: "sh"}}); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("add to a prepared sandbox: %v", err)
	}
	if err := p.MarkRunning(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.AddApp(ctx, p.UUID, &AppConfig{App: App{Image: "sh"}}); !errors.Is(err, podapi.ErrNoSupervisor) {
		t.Fatalf("add with no supervisor: %v", err)
	}
	got := make(chan *podapi.Request, 1)
	ln, err := podapi.Listen(p.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		defer conn.Close()
		req, err := podapi.ReadRequest(bufio.NewReader(conn))
		if err != nil {
			podapi.WriteReply(conn, podapi.ErrorReply(err))
			return
		}
		got <- req
		podapi.WriteReply(conn, &podapi.Reply{App: &podapi.AppStatus{Name: string(req.Add.App.Name), State: podapi.AppCreated}})
	}()
	st, err := h.AddApp(ctx, p.UUID[:8], &AppConfig{
		App: App{Image: "sh", Name: "web", Args: []string{"-c", "cat"}, Mounts: []schema.Mount{{Volume: "scratch", Path: "/scratch"}},
			Annotations: map[string]string{"example.com/container": "c1"}},
		Volumes: []types.Volume{{Name: "scratch", Kind: "empty"}},
		Stdin:   podapi.StdinStream, LogPath: "/var/log/pods/web.log",
		Linux: &podapi.Linux{HostPID: true},
	})
	if err != nil || st.Name != "web" || st.State != podapi.AppCreated {
		t.Fatalf("add: %+v %v", st, err)
	}
	req := <-got
	a := req.Add
	if !reflect.DeepEqual([]string(a.App.App.Exec), []string{"/bin/sh", "-c", "cat"}) || a.Stdin != podapi.StdinStream || a.LogPath != "/var/log/pods/web.log" {
		t.Fatalf("add request %+v", a)
	}
	if v, _ := a.App.Annotations.Get("example.com/container"); v != "c1" || a.Linux == nil || !a.Linux.HostPID {
		t.Fatalf("annotations %v, linux %+v", a.App.Annotations, a.Linux)
	}
	if len(a.Image.Layers) != 1 || a.Image.ImageID != "sha512-"+strings.Repeat("ab", 64) {
		t.Fatalf("image %+v", a.Image)
	}
	var vols []string
	for _, v := range a.Volumes {
		vols = append(vols, string(v.Name))
		if v.Kind == "empty" && v.Mode == nil {
			t.Errorf("volume %s without appc's defaults", v.Name)
		}
	}
	// The per-app volume, and the empty volume for the image's mount point /data.
	if !reflect.DeepEqual(vols, []string{"scratch", "web-data"}) {
		t.Fatalf("volumes %v", vols)
	}
	if !reflect.DeepEqual(a.App.Mounts, []schema.Mount{{Volume: "scratch", Path: "/scratch"}, {Volume: "web-data", Path: "/data"}}) {
		t.Fatalf("mounts %+v", a.App.Mounts)
	}
	// Checked before the supervisor is asked: a command that is not in the image.
	if _, err := h.AddApp(ctx, p.UUID, &AppConfig{App: App{Image: "sh", Exec: "/bin/nope"}}); err == nil || !strings.Contains(err.Error(), "/bin/nope") {
		t.Fatalf("add of a missing command: %v", err)
	}
}
