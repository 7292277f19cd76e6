package cri

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/sys/capability"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/cli"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
	"github.com/cairn-os/cairn/runtime/store"
)

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if status.Code(err) != want {
		t.Errorf("%s: %v, want %s", what, err, want)
	}
}

// statusNoNetwork: before any CNI config exists the network is not ready, and a pod on
// the pod network cannot start; Version and RuntimeConfig say what rktlet is.
func statusNoNetwork(t *testing.T, e *criEnv) {
	st, err := e.rt.Status(e.ctx(), &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	conds := map[string]*runtimeapi.RuntimeCondition{}
	for _, c := range st.Status.Conditions {
		conds[c.Type] = c
	}
	if !conds[runtimeapi.RuntimeReady].GetStatus() || conds[runtimeapi.NetworkReady].GetStatus() || conds[runtimeapi.NetworkReady].GetReason() != "NetworkPluginNotReady" {
		t.Fatalf("status without a network config: %v", st.Status)
	}
	_, err = e.rt.RunPodSandbox(e.ctx(), &runtimeapi.RunPodSandboxRequest{Config: e.podConfig("nonet")})
	wantCode(t, "a pod-network sandbox without a network", err, codes.FailedPrecondition)
	v, err := e.rt.Version(e.ctx(), &runtimeapi.VersionRequest{})
	if err != nil || v.RuntimeName != "rktlet" || v.RuntimeApiVersion != "v1" || v.RuntimeVersion == "" {
		t.Fatalf("version %v %v", v, err)
	}
	rc, err := e.rt.RuntimeConfig(e.ctx(), &runtimeapi.RuntimeConfigRequest{})
	if err != nil || rc.Linux.CgroupDriver != runtimeapi.CgroupDriver_CGROUPFS {
		t.Fatalf("runtime config %v %v", rc, err)
	}
	e.writeNetConf("10-crinet.conflist", ptpConf("crinet", "10.88.0.0/24"))
	e.writeNetConf("20-other.conflist", ptpConf("other", "10.89.0.0/24"))
	st, err = e.rt.Status(e.ctx(), &runtimeapi.StatusRequest{})
	if err != nil || !st.Status.Conditions[1].Status {
		t.Fatalf("status with a network config: %v %v", st, err)
	}
}

// badInput: each mistake is a status with the right code and nothing is left.
func badInput(t *testing.T, e *criEnv) {
	ctx := e.ctx()
	_, err := e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{})
	wantCode(t, "a sandbox without a config", err, codes.InvalidArgument)
	_, err = e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: e.podConfig("bad", func(c *runtimeapi.PodSandboxConfig) {
		c.Linux.Sysctls = map[string]string{"kernel.pid_max": "100"}
	})})
	wantCode(t, "a host-wide sysctl", err, codes.InvalidArgument)
	_, err = e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: e.podConfig("bad", func(c *runtimeapi.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
		c.Linux.Sysctls = map[string]string{"net.core.somaxconn": "100"}
	})})
	wantCode(t, "a network sysctl on the host's network", err, codes.InvalidArgument)
	_, err = e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: e.podConfig("bad"), RuntimeHandler: "kata"})
	wantCode(t, "an unknown runtime handler", err, codes.InvalidArgument)
	_, err = e.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: "nope", Config: ctrConfig("c", "true")})
	wantCode(t, "a container in no sandbox", err, codes.NotFound)
	for _, id := range []string{"nope", ""} {
		_, err = e.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
		if id == "" {
			wantCode(t, "status of no container", err, codes.InvalidArgument)
		} else {
			wantCode(t, "status of an unknown container", err, codes.NotFound)
		}
	}
	_, err = e.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: "nope"})
	wantCode(t, "status of an unknown sandbox", err, codes.NotFound)
	_, err = e.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: "nope"})
	wantCode(t, "removal of an unknown sandbox", err, codes.OK)
	_, err = e.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: "nope"})
	wantCode(t, "removal of an unknown container", err, codes.OK)

	pcfg := e.podConfig("dup")
	sb := e.runPod(pcfg)
	_, err = e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pcfg})
	wantCode(t, "a sandbox name twice", err, codes.AlreadyExists)
	for name, cfg := range map[string]*runtimeapi.ContainerConfig{
		"unknown image":    ctrConfig("c", "true", func(c *runtimeapi.ContainerConfig) { c.Image.Image = "example.com/nothing:1" }),
		"relative workdir": ctrConfig("c", "true", func(c *runtimeapi.ContainerConfig) { c.WorkingDir = "tmp" }),
		"privileged in an unprivileged sandbox": ctrConfig("c", "true", func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.Privileged = true
		}),
		"unknown capability": ctrConfig("c", "true", func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"FLY"}}
		}),
		"missing seccomp profile": ctrConfig("c", "true", func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/nonexistent.json"}
		}),
		"relative mount": ctrConfig("c", "true", func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{HostPath: "tmp", ContainerPath: "/x"}}
		}),
	} {
		_, err := e.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: cfg, SandboxConfig: pcfg})
		want := codes.InvalidArgument
		if name == "unknown image" {
			want = codes.NotFound
		}
		wantCode(t, name, err, want)
	}
	done := e.run(sb, pcfg, ctrConfig("once", "true"))
	e.waitExited(done)
	_, err = e.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: done})
	wantCode(t, "start of an exited container", err, codes.FailedPrecondition)
	_, err = e.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: ctrConfig("once", "true"), SandboxConfig: pcfg})
	wantCode(t, "a container name twice", err, codes.AlreadyExists)
	_, err = e.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: done, Cmd: []string{"true"}})
	wantCode(t, "exec in an exited container", err, codes.FailedPrecondition)
	_, err = e.rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: done, Cmd: []string{"sh"}, Stdout: true})
	wantCode(t, "streaming exec in an exited container", err, codes.FailedPrecondition)
	_, err = e.rt.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: done})
	wantCode(t, "log reopen of an exited container", err, codes.FailedPrecondition)
	if _, err := e.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatal(err)
	}
	// Stops and removals of what is gone succeed: kubelet retries them.
	if _, err := e.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatalf("stop of a removed sandbox: %v", err)
	}
	if _, err := e.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: done}); err != nil {
		t.Fatalf("stop of a removed container: %v", err)
	}
	if left := e.leftovers(); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// lifecycle: a sandbox on the host's network, containers created, started, stopped and
// removed, their states, exit codes, reasons and times, their logs and their log's
// rotation, exec, and listing with filters.
func lifecycle(t *testing.T, e *criEnv) {
	pcfg := e.podConfig("life", func(c *runtimeapi.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	})
	sb := e.runPod(pcfg)
	st, err := e.rt.PodSandboxStatus(e.ctx(), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb, Verbose: true})
	if err != nil || st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY || st.Status.Metadata.Name != "life" ||
		st.Status.Labels["app"] != "life" || st.Status.Annotations["example.com/Note"] != "a pod" || st.Info["info"] == "" ||
		st.Status.Linux.Namespaces.Options.Network != runtimeapi.NamespaceMode_NODE {
		t.Fatalf("sandbox status %v %v", st, err)
	}
	// rkt sees the sandbox as a pod, with the CRI's metadata.
	p, err := pod.NewStore(e.dir).Get(sb)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := p.Manifest(); err != nil || m.UserLabels["app"] != "life" || p.Owner() != Owner {
		t.Fatalf("pod manifest %v %v, owner %q", m, err, p.Owner())
	}
	ok := e.run(sb, pcfg, ctrConfig("ok", "echo hello; echo oops >&2"))
	bad := e.run(sb, pcfg, ctrConfig("bad", "exit 3"))
	// rkt list shows the sandbox, its containers as apps, the CRI labels.
	if out, code := e.rkt("list", "--full", "--format=json"); code != 0 || !strings.Contains(out, sb) || !strings.Contains(out, `"app":"life"`) ||
		!strings.Contains(out, `"name":"ok"`) || !strings.Contains(out, `"name":"bad"`) {
		t.Fatalf("rkt list: %d %s", code, out)
	}
	if s := e.waitExited(ok); s.ExitCode != 0 || s.Reason != "Completed" || s.FinishedAt < s.StartedAt || s.StartedAt < s.CreatedAt || s.CreatedAt == 0 {
		t.Fatalf("container that exits 0: %v", s)
	}
	if s := e.waitExited(bad); s.ExitCode != 3 || s.Reason != "Error" {
		t.Fatalf("container that exits 3: %v", s)
	}
	logPath := filepath.Join(e.logs, "life", "ok.log")
	l := waitLog(t, logPath, "oops")
	if !strings.Contains(l, " stdout F hello\n") || !strings.Contains(l, " stderr F oops\n") {
		t.Fatalf("log %q", l)
	}
	if s := e.status(ok); s.LogPath != logPath || s.ImageRef != e.imageID || s.Image.Image != "busybox" || s.Labels["container"] != "ok" {
		t.Fatalf("status %v", s)
	}
	created := e.create(sb, pcfg, ctrConfig("later", "echo later"))
	if s := e.status(created); s.State != runtimeapi.ContainerState_CONTAINER_CREATED || s.StartedAt != 0 {
		t.Fatalf("created container %v", s)
	}
	sleeper := e.run(sb, pcfg, ctrConfig("sleeper", "trap 'exit 7' TERM; i=0; while true; do echo line $i; i=$((i+1)); sleep 0.05; done"))
	if s := e.status(sleeper); s.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("sleeper %v", s)
	}
	// Filters.
	list := func(f *runtimeapi.ContainerFilter) []string {
		r, err := e.rt.ListContainers(e.ctx(), &runtimeapi.ListContainersRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range r.Containers {
			names = append(names, c.Metadata.Name)
		}
		slices.Sort(names)
		return names
	}
	for what, tc := range map[string]struct {
		f    *runtimeapi.ContainerFilter
		want []string
	}{
		"all":     {nil, []string{"bad", "later", "ok", "sleeper"}},
		"running": {&runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}, []string{"sleeper"}},
		"created": {&runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_CREATED}}, []string{"later"}},
		"label":   {&runtimeapi.ContainerFilter{LabelSelector: map[string]string{"container": "bad"}}, []string{"bad"}},
		"id":      {&runtimeapi.ContainerFilter{Id: ok[:12]}, []string{"ok"}},
		"sandbox": {&runtimeapi.ContainerFilter{PodSandboxId: sb[:8]}, []string{"bad", "later", "ok", "sleeper"}},
		"other":   {&runtimeapi.ContainerFilter{PodSandboxId: "ffff"}, nil},
	} {
		if got := list(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("list %s: %v, want %v", what, got, tc.want)
		}
	}
	stream, err := e.rt.StreamContainers(e.ctx(), &runtimeapi.StreamContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || len(r.Containers) != 4 {
		t.Fatalf("streamed list %v %v", r, err)
	}
	ls, err := e.rt.ListPodSandbox(e.ctx(), &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"app": "life"},
		State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}}})
	if err != nil || len(ls.Items) != 1 || ls.Items[0].Id != sb {
		t.Fatalf("list sandboxes: %v %v", ls, err)
	}
	// Exec: output, exit code, timeout.
	if out := e.exec(sleeper, "sh", "-c", "echo from exec; echo $0"); out != "from exec\nsh\n" {
		t.Fatalf("exec %q", out)
	}
	r, err := e.rt.ExecSync(e.ctx(), &runtimeapi.ExecSyncRequest{ContainerId: sleeper, Cmd: []string{"sh", "-c", "echo err >&2; exit 5"}})
	if err != nil || r.ExitCode != 5 || string(r.Stderr) != "err\n" {
		t.Fatalf("exec exit 5: %v %v", r, err)
	}
	start := time.Now()
	_, err = e.rt.ExecSync(e.ctx(), &runtimeapi.ExecSyncRequest{ContainerId: sleeper, Cmd: []string{"sh", "-c", "trap '' TERM; sleep 30"}, Timeout: 1})
	if status.Code(err) != codes.DeadlineExceeded || time.Since(start) > 10*time.Second {
		t.Fatalf("exec past its timeout: %v after %s", err, time.Since(start))
	}
	// Log rotation, as kubelet does it: move the file, reopen.
	sleeperLog := filepath.Join(e.logs, "life", "sleeper.log")
	waitLog(t, sleeperLog, "line 3")
	if err := os.Rename(sleeperLog, sleeperLog+".1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.ReopenContainerLog(e.ctx(), &runtimeapi.ReopenContainerLogRequest{ContainerId: sleeper}); err != nil {
		t.Fatal(err)
	}
	waitLog(t, sleeperLog, "line")
	time.Sleep(200 * time.Millisecond) // its trap is set
	if _, err := e.rt.StopContainer(e.ctx(), &runtimeapi.StopContainerRequest{ContainerId: sleeper, Timeout: 10}); err != nil {
		t.Fatal(err)
	}
	if s := e.status(sleeper); s.State != runtimeapi.ContainerState_CONTAINER_EXITED || s.ExitCode != 7 {
		t.Fatalf("stopped sleeper %v", s)
	}
	if _, err := e.rt.StopContainer(e.ctx(), &runtimeapi.StopContainerRequest{ContainerId: sleeper}); err != nil {
		t.Fatalf("stop of a stopped container: %v", err)
	}
	for _, id := range []string{ok, bad, sleeper, created} {
		if _, err := e.rt.RemoveContainer(e.ctx(), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Fatal(err)
		}
	}
	if got := list(nil); len(got) != 0 {
		t.Fatalf("containers after removal: %v", got)
	}
	if _, err := os.Stat(logPath); err != nil {
		t.Fatalf("the log of a removed container: %v (kubelet removes it, not the runtime)", err)
	}
	for range 2 { // stop is idempotent
		if _, err := e.rt.StopPodSandbox(e.ctx(), &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb}); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := e.rt.PodSandboxStatus(e.ctx(), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb}); st.Status.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("stopped sandbox %v", st.Status)
	}
	if _, err := e.rt.RemovePodSandbox(e.ctx(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatal(err)
	}
	if left := e.leftovers(); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// podNetwork: a sandbox on the CNI network with a port mapping, its address, host name,
// resolv.conf and sysctls; the port forward serves the host; stopping it tears the
// network down.
func podNetwork(t *testing.T, e *criEnv) {
	// One pod first: portmap makes some chains once and keeps them, as with any runtime.
	warm := e.podConfig("warm", func(c *runtimeapi.PodSandboxConfig) {
		c.PortMappings = []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 18081}}
	})
	w := e.runPod(warm)
	if _, err := e.rt.RemovePodSandbox(e.ctx(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: w}); err != nil {
		t.Fatal(err)
	}
	before := waitNetCounts(t, netCounts(t))
	pcfg := e.podConfig("web", func(c *runtimeapi.PodSandboxConfig) {
		c.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 18080}, {ContainerPort: 81}}
		c.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"192.0.2.53"}, Searches: []string{"test.svc.cluster.local"}, Options: []string{"ndots:5"}}
		c.Linux.Sysctls = map[string]string{"net.core.somaxconn": "1234", "kernel.shm_rmid_forced": "1"}
	})
	sb := e.runPod(pcfg)
	st, err := e.rt.PodSandboxStatus(e.ctx(), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb})
	if err != nil || !strings.HasPrefix(st.Status.GetNetwork().GetIp(), "10.88.0.") {
		t.Fatalf("sandbox on crinet (10.88.0.0/24, the first config): %v %v", st, err)
	}
	ip := st.Status.Network.Ip
	web := e.run(sb, pcfg, ctrConfig("web", "mkdir /www; echo hello from the pod > /www/index.html; exec httpd -f -p 80 -h /www"))
	for _, u := range []string{"http://127.0.0.1:18080/", "http://" + ip + ":80/"} {
		if body, err := testenv.HTTPGet(context.Background(), u); err != nil || body != "hello from the pod\n" {
			t.Fatalf("GET %s: %q %v", u, body, err)
		}
	}
	if out := e.exec(web, "hostname"); out != "web\n" {
		t.Fatalf("host name %q", out)
	}
	if out := e.exec(web, "cat", "/etc/resolv.conf"); !strings.Contains(out, "nameserver 192.0.2.53") ||
		!strings.Contains(out, "search test.svc.cluster.local") || !strings.Contains(out, "options ndots:5") {
		t.Fatalf("resolv.conf %q", out)
	}
	if out := e.exec(web, "cat", "/proc/sys/net/core/somaxconn", "/proc/sys/kernel/shm_rmid_forced"); out != "1234\n1\n" {
		t.Fatalf("sysctls %q", out)
	}
	if out := e.exec(web, "sh", "-c", "ip -o -4 addr show eth0"); !strings.Contains(out, "inet "+ip+"/") {
		t.Fatalf("address %q, want %s", out, ip)
	}
	ps, err := e.rt.PodSandboxStats(e.ctx(), &runtimeapi.PodSandboxStatsRequest{PodSandboxId: sb})
	if err != nil || ps.Stats.Linux.Network.GetDefaultInterface().GetRxBytes().GetValue() == 0 ||
		ps.Stats.Linux.Process.GetProcessCount().GetValue() == 0 || len(ps.Stats.Linux.Containers) != 1 {
		t.Fatalf("sandbox stats %v %v", ps, err)
	}
	if _, err := e.rt.StopPodSandbox(e.ctx(), &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatal(err)
	}
	if after := waitNetCounts(t, before); after != before {
		t.Fatalf("host network after the sandbox stopped: %s, before %s", after, before)
	}
	if _, err := e.rt.RemovePodSandbox(e.ctx(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatal(err)
	}
	if left := e.leftovers(); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// security: the container's security context as the container sees it.
func security_(t *testing.T, e *criEnv) {
	pcfg := e.podConfig("sec", func(c *runtimeapi.PodSandboxConfig) {
		c.Linux.SecurityContext.Privileged = true
	})
	sb := e.runPod(pcfg)
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "data"), []byte("from the host\n"), 0o644)
	profile := filepath.Join(t.TempDir(), "no-mkdir.json")
	os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644)
	sleep := "sleep 600"
	capEff := func(id string) string {
		out := e.exec(id, "sh", "-c", "grep CapEff /proc/self/status")
		return strings.TrimSpace(strings.TrimPrefix(out, "CapEff:"))
	}
	// First in the pod: /sys is one superblock per network namespace, read-only for every
	// container after the first mounted it so.
	priv := e.run(sb, pcfg, ctrConfig("privileged", sleep, func(c *runtimeapi.ContainerConfig) {
		c.Linux.SecurityContext.Privileged = true
		c.Linux.Resources = &runtimeapi.LinuxContainerResources{OomScoreAdj: -998}
	}))
	if got := capEff(priv); got != capMask(stage1.AllCapabilities()) {
		t.Errorf("privileged capabilities %s, want every one this process has (%s)", got, capMask(stage1.AllCapabilities()))
	}
	if out := e.exec(priv, "sh", "-c", "grep ' /sys ' /proc/self/mounts; ls /dev | wc -l; cat /proc/self/oom_score_adj"); strings.Contains(out, "sysfs ro") || atoi(strings.Split(out, "\n")[1]) < 10 {
		t.Errorf("privileged container: %q", out)
	} else if adj := atoi(strings.Split(strings.TrimSpace(out), "\n")[2]); adj != max(-998, oomFloor()) {
		t.Errorf("OOM score %d, want -998 clamped to this process's floor %d", adj, oomFloor())
	}
	def := e.run(sb, pcfg, ctrConfig("default", sleep))
	// containerd's default set: 0x00000000a80425fb.
	if got := capEff(def); got != "00000000a80425fb" {
		t.Errorf("default capabilities %s, want containerd's 00000000a80425fb", got)
	}
	if out := e.exec(def, "sh", "-c", "grep NoNewPrivs /proc/self/status; id -u; cat /proc/1/cmdline | tr '\\0' ' '"); !strings.Contains(out, "NoNewPrivs:\t0") || !strings.Contains(out, "\n0\n") ||
		!strings.Contains(out, "sleep 600") {
		t.Errorf("default container: %q", out)
	}
	if out := e.exec(def, "mkdir", "/tmp/ok"); out != "" {
		t.Errorf("mkdir %q", out)
	}
	restricted := e.run(sb, pcfg, ctrConfig("restricted", sleep, func(c *runtimeapi.ContainerConfig) {
		sc := c.Linux.SecurityContext
		sc.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"NET_ADMIN", "chown"}}
		sc.RunAsUsername = "nobody"
		sc.ReadonlyRootfs = true
		sc.NoNewPrivs = true
		sc.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: profile}
		sc.MaskedPaths = []string{"/proc/cpuinfo"}
		sc.NamespaceOptions = &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_NODE}
		c.Mounts = []*runtimeapi.Mount{{HostPath: host, ContainerPath: "/host", Readonly: true}, {HostPath: filepath.Join(host, "made"), ContainerPath: "/made"}}
		c.Devices = []*runtimeapi.Device{{HostPath: "/dev/null", ContainerPath: "/dev/xnull", Permissions: "rw"}}
		c.Envs = []*runtimeapi.KeyValue{{Key: "GREETING", Value: []byte("hi")}, {Key: "1-data", Value: []byte("relaxed")}}
		c.WorkingDir = "/tmp"
	}))
	// A name appc cannot hold reaches the container's process and its execs (env, not a
	// shell: ash leaves such names out of what it passes on).
	envs := e.run(sb, pcfg, ctrConfig("envs", "", func(c *runtimeapi.ContainerConfig) {
		c.Command = []string{"env"}
		c.Envs = []*runtimeapi.KeyValue{{Key: "1-data", Value: []byte("relaxed")}, {Key: "$_-x", Value: []byte("y")}}
	}))
	e.waitExited(envs)
	if l := waitLog(t, filepath.Join(e.logs, "sec", "envs.log"), "$_-x=y"); !strings.Contains(l, "stdout F 1-data=relaxed") {
		t.Errorf("the environment of a container: %q", l)
	}
	if env := e.exec(restricted, "env"); !strings.Contains(env, "\n1-data=relaxed\n") && !strings.HasPrefix(env, "1-data=relaxed\n") {
		t.Errorf("an exec's environment %q has no 1-data=relaxed", env)
	}
	if got := capEff(restricted); got != "0000000000000000" { // a non-root user keeps none without ambient ones
		t.Errorf("capabilities of a non-root user %s", got)
	}
	out := e.exec(restricted, "sh", "-c", `id -u; id -g; grep NoNewPrivs /proc/self/status; grep -c CapBnd /proc/self/status; grep CapBnd /proc/self/status;
touch /x 2>&1; mkdir /tmp/nope 2>&1; cat /proc/cpuinfo | wc -c; cat /host/data; echo w > /host/w 2>&1; ls -l /dev/xnull; echo $GREETING; pwd; ls /proc/1/ >/dev/null && cat /proc/1/comm`)
	for _, want := range []string{"65534\n65534\n", "NoNewPrivs:\t1", "CapBnd:\t0000000000001001", "Read-only file system", "Operation not permitted",
		"\n0\n", "from the host\n", "crw-rw-rw-", "\nhi\n/tmp\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("restricted container: no %q in %q", want, out)
		}
	}
	if strings.Contains(out, "sleep") {
		t.Errorf("host PID namespace: /proc/1 is the container's own: %q", out)
	}
	if _, err := os.Stat(filepath.Join(host, "made")); err != nil {
		t.Errorf("a mount's missing host path is made: %v", err)
	}
	if _, err := e.rt.RemovePodSandbox(e.ctx(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatal(err)
	}
	if left := e.leftovers(); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// sharedPID: a sandbox whose containers share one PID namespace (shareProcessNamespace),
// held by rktlet's pause process: each container sees the other's processes, and neither
// is its pid 1; the pause goes with the sandbox.
func sharedPID(t *testing.T, e *criEnv) {
	pcfg := e.podConfig("pidns", func(c *runtimeapi.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_POD}
	})
	sb := e.runPod(pcfg)
	pod := func(c *runtimeapi.ContainerConfig) {
		c.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD}
	}
	a := e.run(sb, pcfg, ctrConfig("a", "sleep 601", pod))
	b := e.run(sb, pcfg, ctrConfig("b", "sleep 602", pod))
	out := e.exec(b, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; ps -o args")
	if strings.Contains(strings.SplitN(out, "\n", 2)[0], "sleep") || !strings.Contains(out, "sleep 601") || !strings.Contains(out, "sleep 602") {
		t.Fatalf("a shared PID namespace seen from a container: %q", out)
	}
	if _, err := e.rt.StopContainer(e.ctx(), &runtimeapi.StopContainerRequest{ContainerId: a, Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	if out := e.exec(b, "ps", "-o", "args"); strings.Contains(out, "sleep 601") {
		t.Fatalf("a stopped container's process in the shared namespace: %q", out)
	}
	if _, err := e.rt.RemovePodSandbox(e.ctx(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatal(err)
	}
	if left := e.leftovers(); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// propagation: a mount made on the host after a container started reaches it through an
// rslave or rshared mount, not an rprivate one; one made in the container reaches the host
// through an rshared mount only. (As critest checks it.)
func propagation(t *testing.T, e *criEnv) {
	pcfg := e.podConfig("prop", func(c *runtimeapi.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
		c.Linux.SecurityContext.Privileged = true
	})
	sb := e.runPod(pcfg)
	for _, tc := range []struct {
		mode             runtimeapi.MountPropagation
		shared, fromHost bool
		fromContainer    bool
	}{
		{runtimeapi.MountPropagation_PROPAGATION_PRIVATE, false, false, false},
		{runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER, true, true, false},
		{runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL, true, true, true},
	} {
		base := t.TempDir()
		src, flagDir := filepath.Join(base, "mnt"), filepath.Join(base, "src")
		hostPoint, ctrPoint := filepath.Join(src, "fromhost"), filepath.Join(src, "fromctr")
		for _, d := range []string{hostPoint, ctrPoint, flagDir} {
			os.MkdirAll(d, 0o755)
		}
		os.WriteFile(filepath.Join(flagDir, "flag"), nil, 0o644)
		flags := uintptr(syscall.MS_PRIVATE)
		if tc.shared {
			flags = syscall.MS_SHARED
		}
		if err := syscall.Mount(src, src, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mount("", src, "", flags|syscall.MS_REC, ""); err != nil {
			t.Fatal(err)
		}
		id := e.run(sb, pcfg, ctrConfig("prop-"+strings.ToLower(tc.mode.String()[12:]), "sleep 600", func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.Privileged = true
			c.Mounts = []*runtimeapi.Mount{{HostPath: src, ContainerPath: "/mnt", Propagation: tc.mode}}
		}))
		if err := syscall.Mount(flagDir, hostPoint, "", syscall.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		seen := e.exec(id, "ls", "/mnt/fromhost") == "flag\n"
		e.exec(id, "mount", "--bind", "/etc", "/mnt/fromctr")
		_, err := os.Stat(filepath.Join(ctrPoint, "passwd"))
		back := err == nil
		if seen != tc.fromHost || back != tc.fromContainer {
			t.Errorf("%s: host's mount seen in the container %v, container's on the host %v; want %v, %v", tc.mode, seen, back, tc.fromHost, tc.fromContainer)
		}
		if _, err := e.rt.RemoveContainer(e.ctx(), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Fatal(err)
		}
		syscall.Unmount(ctrPoint, syscall.MNT_DETACH)
		syscall.Unmount(hostPoint, syscall.MNT_DETACH)
		syscall.Unmount(src, syscall.MNT_DETACH)
	}
	// A mount meant to propagate, on a host mount that does not: refused, as containerd does.
	private := t.TempDir()
	_, err := e.rt.CreateContainer(e.ctx(), &runtimeapi.CreateContainerRequest{PodSandboxId: sb, SandboxConfig: pcfg,
		Config: ctrConfig("prop-refused", "true", func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{HostPath: private, ContainerPath: "/mnt", Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}}
		})})
	wantCode(t, "bidirectional propagation of a private mount", err, codes.InvalidArgument)
	if _, err := e.rt.RemovePodSandbox(e.ctx(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatal(err)
	}
	if left := e.leftovers(); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// resourcesAndOOM: limits at creation and updated, a cgroup parent, an OOM kill.
func resourcesAndOOM(t *testing.T, e *criEnv) {
	parent := "/cairn-cri-test-" + fmt.Sprint(os.Getpid())
	t.Cleanup(func() {
		// The pod's cgroups below it go with the pod, some a moment after its removal returns
		// (a cgroup is busy until its last process is reaped).
		dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", parent))
		for _, d := range dirs {
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				err := os.Remove(d)
				if err == nil || errors.Is(err, fs.ErrNotExist) || time.Now().After(deadline) {
					if err != nil && !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("cgroup parent left behind: %v", err)
					}
					break
				}
			}
		}
	})
	pcfg := e.podConfig("res", func(c *runtimeapi.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
		c.Linux.CgroupParent = parent
	})
	sb := e.runPod(pcfg)
	id := e.run(sb, pcfg, ctrConfig("limited", "sleep 600", func(c *runtimeapi.ContainerConfig) {
		c.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, CpuShares: 512, CpuPeriod: 100000, CpuQuota: 50000}
	}))
	memFile := filepath.Join("/sys/fs/cgroup/memory", parent, "rkt-"+sb, "limited", "memory.limit_in_bytes")
	read := func(f string) string { b, _ := os.ReadFile(f); return strings.TrimSpace(string(b)) }
	if got := read(memFile); got != fmt.Sprint(64<<20) {
		t.Fatalf("memory limit in %s: %q", memFile, got)
	}
	cpuDir := filepath.Join("/sys/fs/cgroup/cpu", parent, "rkt-"+sb, "limited")
	if _, err := os.Stat(cpuDir); err != nil {
		cpuDir = filepath.Join("/sys/fs/cgroup/cpu,cpuacct", parent, "rkt-"+sb, "limited")
	}
	if read(filepath.Join(cpuDir, "cpu.shares")) != "512" || read(filepath.Join(cpuDir, "cpu.cfs_quota_us")) != "50000" {
		t.Fatalf("cpu limits in %s", cpuDir)
	}
	if _, err := e.rt.UpdateContainerResources(e.ctx(), &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id,
		Linux: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 96 << 20, CpuQuota: 20000}}); err != nil {
		t.Fatal(err)
	}
	if read(memFile) != fmt.Sprint(96<<20) || read(filepath.Join(cpuDir, "cpu.cfs_quota_us")) != "20000" || read(filepath.Join(cpuDir, "cpu.shares")) != "512" {
		t.Fatalf("after update: memory %s, quota %s, shares %s", read(memFile), read(filepath.Join(cpuDir, "cpu.cfs_quota_us")), read(filepath.Join(cpuDir, "cpu.shares")))
	}
	// The status says the limits in force, as kubelet checks an in-place resize.
	if r := e.status(id).GetResources().GetLinux(); r.GetMemoryLimitInBytes() != 96<<20 || r.GetCpuQuota() != 20000 ||
		r.GetCpuPeriod() != 100000 || r.GetCpuShares() != 512 {
		t.Fatalf("status resources after the update: %v", r)
	}
	// Stats: CPU time (and, from the second reading, cores), memory, the writable layer.
	e.exec(id, "sh", "-c", "dd if=/dev/zero of=/tmp/blob bs=1k count=512 2>/dev/null; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")
	e.rt.ContainerStats(e.ctx(), &runtimeapi.ContainerStatsRequest{ContainerId: id})
	cs, err := e.rt.ContainerStats(e.ctx(), &runtimeapi.ContainerStatsRequest{ContainerId: id})
	if err != nil || cs.Stats.Cpu.GetUsageCoreNanoSeconds().GetValue() == 0 || cs.Stats.Cpu.GetUsageNanoCores() == nil ||
		cs.Stats.Memory.GetWorkingSetBytes().GetValue() == 0 || cs.Stats.WritableLayer.GetUsedBytes().GetValue() < 512<<10 ||
		cs.Stats.Attributes.Metadata.Name != "limited" {
		t.Fatalf("container stats %v %v", cs, err)
	}
	ls, err := e.rt.ListContainerStats(e.ctx(), &runtimeapi.ListContainerStatsRequest{Filter: &runtimeapi.ContainerStatsFilter{PodSandboxId: sb}})
	if err != nil || len(ls.Stats) != 1 {
		t.Fatalf("list container stats %v %v", ls, err)
	}
	lp, err := e.rt.ListPodSandboxStats(e.ctx(), &runtimeapi.ListPodSandboxStatsRequest{Filter: &runtimeapi.PodSandboxStatsFilter{LabelSelector: map[string]string{"app": "res"}}})
	if err != nil || len(lp.Stats) != 1 || lp.Stats[0].Linux.Memory.GetUsageBytes().GetValue() == 0 {
		t.Fatalf("list sandbox stats %v %v", lp, err)
	}
	hog := e.run(sb, pcfg, ctrConfig("hog", "x=$(head -c 64m /dev/zero | tr '\\0' a); echo survived ${#x}", func(c *runtimeapi.ContainerConfig) {
		c.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 16 << 20}
	}))
	if s := e.waitExited(hog); s.Reason != "OOMKilled" || s.ExitCode != 137 {
		t.Fatalf("container over its memory limit: %v", s)
	}
	if _, err := e.rt.RemovePodSandbox(e.ctx(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatal(err)
	}
	if left := e.leftovers(); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// images: pull with credentials from a registry, list, status, removal; an image rkt
// fetched is the CRI's, and the other way round.
func images(t *testing.T, e *criEnv) {
	reg := httptest.NewServer(basicAuth("kube", "s3cret", registry.New()))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	layer, _ := fixture.BusyboxLayerTar()
	img, err := fixture.OCIImage([]string{"/bin/echo", "pulled"}, layer)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host + "/library/pulled:1.0")
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "kube", Password: "s3cret"})); err != nil {
		t.Fatal(err)
	}
	digest, _ := img.Digest()
	_, err = e.img.PullImage(e.ctx(), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref.String()}})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("pull without credentials: %v, want Unauthenticated", err)
	}
	r, err := e.img.PullImage(e.ctx(), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref.String()},
		Auth: &runtimeapi.AuthConfig{Username: "kube", Password: "s3cret"}})
	if err != nil || r.ImageRef != digest.String() {
		t.Fatalf("pull: %v %v, want %s", r, err, digest)
	}
	// The same content under another tag, with an auth entry of the docker config's form.
	ref2, _ := name.ParseReference(host + "/library/pulled:latest")
	remote.Write(ref2, img, remote.WithAuth(&authn.Basic{Username: "kube", Password: "s3cret"}))
	if _, err := e.img.PullImage(e.ctx(), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref2.String()},
		Auth: &runtimeapi.AuthConfig{Auth: "a3ViZTpzM2NyZXQ="}}); err != nil {
		t.Fatal(err)
	}
	_, err = e.img.PullImage(e.ctx(), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: host + "/library/absent:1"},
		Auth: &runtimeapi.AuthConfig{Username: "kube", Password: "s3cret"}})
	wantCode(t, "pull of an image the registry does not have", err, codes.NotFound)
	st, err := e.img.ImageStatus(e.ctx(), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref.String()}, Verbose: true})
	if err != nil || st.Image == nil || st.Image.Id != digest.String() || st.Info["info"] == "" ||
		!slices.Equal(st.Image.RepoTags, []string{host + "/library/pulled:1.0", host + "/library/pulled:latest"}) ||
		!slices.Equal(st.Image.RepoDigests, []string{host + "/library/pulled@" + digest.String()}) || st.Image.Size == 0 {
		t.Fatalf("image status %v %v", st, err)
	}
	if st, err := e.img.ImageStatus(e.ctx(), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: host + "/library/pulled@" + digest.String()}}); err != nil || st.Image.GetId() != digest.String() {
		t.Fatalf("status by repo digest: %v %v", st, err)
	}
	if st, err := e.img.ImageStatus(e.ctx(), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: "example.com/none:1"}}); err != nil || st.Image != nil {
		t.Fatalf("status of an absent image: %v %v", st, err)
	}
	// rkt fetch's images are the CRI's.
	s, _ := store.Open(e.dir)
	layer2, _ := fixture.LayerTar([]fixture.Entry{{Header: tarFile("hello.txt"), Body: "x"}})
	other, _ := fixture.OCIImage([]string{"/x"}, layer2)
	fetched, err := s.ImportOCI(context.Background(), other, store.ImportOptions{Name: "quay.io/example/fetched:2"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := e.img.ListImages(e.ctx(), &runtimeapi.ListImagesRequest{})
	var ids []string
	for _, i := range l.GetImages() {
		ids = append(ids, i.Id)
	}
	if err != nil || !slices.Contains(ids, fetched.ID) || !slices.Contains(ids, digest.String()) || !slices.Contains(ids, e.imageID) {
		t.Fatalf("list %v %v", ids, err)
	}
	// And the CRI's are rkt's.
	if got, err := s.Get(context.Background(), ref.String()); err != nil || got.ID != digest.String() {
		t.Fatalf("the pulled image in rkt's store: %v %v", got, err)
	}
	fs, err := e.img.ImageFsInfo(e.ctx(), &runtimeapi.ImageFsInfoRequest{})
	if err != nil || len(fs.ImageFilesystems) != 1 || fs.ImageFilesystems[0].UsedBytes.Value == 0 || fs.ImageFilesystems[0].InodesUsed.Value == 0 {
		t.Fatalf("image fs %v %v", fs, err)
	}
	// An image in use stays; an unused one goes, with its layers.
	pcfg := e.podConfig("img", func(c *runtimeapi.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	})
	sb := e.runPod(pcfg)
	ctr := e.run(sb, pcfg, ctrConfig("pulled", "", func(c *runtimeapi.ContainerConfig) {
		c.Image.Image = ref.String()
		c.Command = nil
	}))
	if s := e.waitExited(ctr); s.ExitCode != 0 || s.ImageRef != digest.String() {
		t.Fatalf("container of the pulled image %v", s)
	}
	if l := waitLog(t, filepath.Join(e.logs, "img", "pulled.log"), "pulled"); !strings.Contains(l, "stdout F pulled") {
		t.Fatalf("the image's own command: %q", l)
	}
	// Image volumes: the fetched image's tree, whole and by a sub path, read-only; its copy
	// goes with the container.
	vols := e.run(sb, pcfg, ctrConfig("imgvol", `cat /vol/hello.txt /sub; echo; touch /vol/new 2>/dev/null && echo writable || echo read-only`,
		func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{
				{ContainerPath: "/vol", Image: &runtimeapi.ImageSpec{Image: fetched.ID}, Readonly: true},
				{ContainerPath: "/sub", Image: &runtimeapi.ImageSpec{Image: fetched.ID}, Readonly: true, ImageSubPath: "hello.txt"},
			}
		}))
	if s := e.waitExited(vols); s.ExitCode != 0 {
		t.Fatalf("container with image volumes: %v", s)
	}
	if l := waitLog(t, filepath.Join(e.logs, "img", "imgvol.log"), "read-only"); !strings.Contains(l, "stdout F xx\n") || !strings.Contains(l, "stdout F read-only") {
		t.Fatalf("image volumes: %q, want the file twice, read-only", l)
	}
	volDir := filepath.Join(e.dir, "pods", "run", sb, "image-volumes", vols)
	if _, err := os.Stat(volDir); err != nil {
		t.Fatalf("the image volumes' tree: %v", err)
	}
	_, err = e.rt.CreateContainer(e.ctx(), &runtimeapi.CreateContainerRequest{PodSandboxId: sb, SandboxConfig: pcfg,
		Config: ctrConfig("nosub", "true", func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{ContainerPath: "/sub", Image: &runtimeapi.ImageSpec{Image: fetched.ID}, Readonly: true, ImageSubPath: "absent"}}
		})})
	wantCode(t, "an image volume's absent sub path", err, codes.InvalidArgument)
	if _, err := e.rt.RemoveContainer(e.ctx(), &runtimeapi.RemoveContainerRequest{ContainerId: vols}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(volDir); !os.IsNotExist(err) {
		t.Fatalf("the image volumes' tree after the container's removal: %v", err)
	}
	_, err = e.img.RemoveImage(e.ctx(), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: digest.String()}})
	wantCode(t, "removal of an image in use", err, codes.FailedPrecondition)
	if _, err := e.rt.RemovePodSandbox(e.ctx(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{ref.String(), fetched.ID, "example.com/none:1"} {
		if _, err := e.img.RemoveImage(e.ctx(), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: r}}); err != nil {
			t.Fatalf("remove %s: %v", r, err)
		}
	}
	if st, _ := e.img.ImageStatus(e.ctx(), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: digest.String()}}); st.Image != nil {
		t.Fatalf("a removed image: %v", st.Image)
	}
	// The store's usage is measured again after a removal.
	after, err := e.img.ImageFsInfo(e.ctx(), &runtimeapi.ImageFsInfoRequest{})
	if err != nil || after.ImageFilesystems[0].UsedBytes.Value >= fs.ImageFilesystems[0].UsedBytes.Value {
		t.Fatalf("image fs after removals: %v %v, before %v", after, err, fs)
	}
}

func basicAuth(user, pass string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// events: a subscriber sees a container created, started, stopped and deleted.
func events(t *testing.T, e *criEnv) {
	ctx, cancel := context.WithCancel(e.ctx())
	defer cancel()
	stream, err := e.rt.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *runtimeapi.ContainerEventResponse, 100)
	go func() {
		for {
			ev, err := stream.Recv()
			if err != nil {
				close(got)
				return
			}
			got <- ev
		}
	}()
	time.Sleep(100 * time.Millisecond) // subscribed
	pcfg := e.podConfig("ev", func(c *runtimeapi.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	})
	sb := e.runPod(pcfg)
	id := e.run(sb, pcfg, ctrConfig("short", "sleep 0.2"))
	e.waitExited(id)
	if _, err := e.rt.RemovePodSandbox(e.ctx(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatal(err)
	}
	want := []runtimeapi.ContainerEventType{runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT,
		runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT}
	var seen []runtimeapi.ContainerEventType
	timeout := time.After(10 * time.Second)
	for len(seen) < len(want) {
		select {
		case ev := <-got:
			if ev.ContainerId == id {
				seen = append(seen, ev.ContainerEventType)
				if ev.PodSandboxStatus.GetId() != sb {
					t.Errorf("event without its sandbox: %v", ev)
				}
			}
		case <-timeout:
			t.Fatalf("events %v, want %v", seen, want)
		}
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("events %v, want %v", seen, want)
	}
}

// restart: rktlet stopped and started again finds its sandboxes and containers running,
// and goes on managing them.
func restart(t *testing.T, e *criEnv) {
	pcfg := e.podConfig("survivor")
	sb := e.runPod(pcfg)
	id := e.run(sb, pcfg, ctrConfig("survivor", "sleep 600"))
	done := e.run(sb, pcfg, ctrConfig("done", "exit 4"))
	e.waitExited(done)
	e.stop()
	e.start()
	st, err := e.rt.PodSandboxStatus(e.ctx(), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb})
	if err != nil || st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY || st.Status.Metadata.Name != "survivor" ||
		st.Status.Metadata.Uid != "survivor-uid" || st.Status.Labels["app"] != "survivor" || !strings.HasPrefix(st.Status.GetNetwork().GetIp(), "10.88.0.") {
		t.Fatalf("sandbox after a restart: %v %v", st, err)
	}
	if s := e.status(id); s.State != runtimeapi.ContainerState_CONTAINER_RUNNING || s.Metadata.Name != "survivor" || s.Labels["container"] != "survivor" {
		t.Fatalf("running container after a restart: %v", s)
	}
	if s := e.status(done); s.ExitCode != 4 || s.Reason != "Error" {
		t.Fatalf("exited container after a restart: %v", s)
	}
	if out := e.exec(id, "echo", "still here"); out != "still here\n" {
		t.Fatalf("exec after a restart: %q", out)
	}
	// Its name is still taken.
	_, err = e.rt.CreateContainer(e.ctx(), &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: ctrConfig("survivor", "true"), SandboxConfig: pcfg})
	wantCode(t, "a container name taken before the restart", err, codes.AlreadyExists)
	if _, err := e.rt.StopContainer(e.ctx(), &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.RemovePodSandbox(e.ctx(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatal(err)
	}
	if left := e.leftovers(); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// killedRktlet: rktlet, a process of its own, is SIGKILLed with a container running; the
// sandbox's supervisor, its child, goes on, and the next rktlet finds both.
func killedRktlet(t *testing.T, e *criEnv) {
	e.stop()
	defer e.start()
	sock := filepath.Join(filepath.Dir(e.sock), "killed.sock")
	cmd := exec.Command(os.Args[0], rktletMain, "--dir="+e.dir, "--cni-conf-dir="+e.conf, "--listen=unix://"+sock,
		"--local-config="+filepath.Join(e.dir, "etc"), "--system-config="+filepath.Join(e.dir, "lib"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	var sb string
	pcfg := e.podConfig("killed")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r, err := rt.RunPodSandbox(e.ctx(), &runtimeapi.RunPodSandboxRequest{Config: pcfg})
		if err == nil {
			sb = r.PodSandboxId
			e.made(sb)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run a sandbox through the rktlet process: %v; %s", err, stderr.String())
		}
	}
	c, err := rt.CreateContainer(e.ctx(), &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: ctrConfig("kept", "sleep 600"), SandboxConfig: pcfg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.StartContainer(e.ctx(), &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	e.start()
	if s := e.status(c.ContainerId); s.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container after rktlet was killed: %v", s)
	}
	if out := e.exec(c.ContainerId, "echo", "alive"); out != "alive\n" {
		t.Fatalf("exec after rktlet was killed: %q", out)
	}
	if _, err := e.rt.RemovePodSandbox(e.ctx(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatal(err)
	}
	if left := e.leftovers(); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
	e.stop() // the deferred start makes the next step's server
}

// killedSupervisor: SIGKILL of a sandbox's supervisor: the sandbox is not ready, its
// containers exited; rktlet's reconciler kills their processes and takes the pod's
// networks, mounts and cgroups down; rkt gc leaves the sandbox to rktlet, which removes it.
func killedSupervisor(t *testing.T, e *criEnv) {
	before := netCounts(t)
	// With a shared PID namespace: its pause outlives the supervisor with the container.
	pcfg := e.podConfig("orphan", func(c *runtimeapi.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	})
	sb := e.runPod(pcfg)
	id := e.run(sb, pcfg, ctrConfig("orphan", "sleep 600"))
	st, err := e.rt.PodSandboxStatus(e.ctx(), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ PID int }
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || info.PID == 0 {
		t.Fatalf("verbose info %q: %v", st.Info["info"], err)
	}
	if err := syscall.Kill(info.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s := e.waitExited(id)
	if s.ExitCode != unknownExit || s.Reason != "Error" {
		t.Fatalf("container of a killed supervisor: %v", s)
	}
	if st, _ := e.rt.PodSandboxStatus(e.ctx(), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb}); st.Status.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("sandbox of a killed supervisor: %v", st.Status)
	}
	ps := pod.NewStore(e.dir)
	ps.Alive = func(p *pod.Pod) bool { return stage1.PodAlive(p.Path()) }
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		p, err := ps.Get(sb)
		if err != nil {
			t.Fatal(err)
		}
		if p.State() == pod.Exited && waitNetCounts(t, before) == before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reconciler did not take the orphaned sandbox down: %s, %s (before %s)", p.State(), netCounts(t), before)
		}
	}
	// rkt gc marks it, but keeps it while rktlet runs.
	if out, code := e.rkt("gc", "--grace-period=0s"); code != 0 || !strings.Contains(out, fmt.Sprintf("pod %q not removed: its owner runs", sb)) {
		t.Fatalf("rkt gc of rktlet's stopped sandbox: %d %s", code, out)
	}
	if p, err := ps.Get(sb); err != nil || p.Phase != pod.PhaseExitedGarbage {
		t.Fatalf("after rkt gc: %v %v", p, err)
	}
	if s := e.status(id); s.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Fatalf("container after gc's mark: %v", s)
	}
	if _, err := e.rt.RemovePodSandbox(e.ctx(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatal(err)
	}
	if left := e.leftovers(); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// fiftySandboxes: 50 sandboxes on the CNI network made at once, each with a running
// container, then removed at once: nothing is left (mounts, cgroups, processes, pinned
// namespaces, veths, nat and masquerade rules, leases).
func fiftySandboxes(t *testing.T, e *criEnv) {
	before := waitNetCounts(t, netCounts(t))
	const n = 50
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			pcfg := e.podConfig(fmt.Sprintf("many-%d", i))
			r, err := e.rt.RunPodSandbox(e.ctx(), &runtimeapi.RunPodSandboxRequest{Config: pcfg})
			if err != nil {
				errs <- fmt.Errorf("sandbox %d: %w", i, err)
				return
			}
			ids[i] = r.PodSandboxId
			e.made(r.PodSandboxId)
			c, err := e.rt.CreateContainer(e.ctx(), &runtimeapi.CreateContainerRequest{PodSandboxId: r.PodSandboxId, Config: ctrConfig("app", "sleep 600"), SandboxConfig: pcfg})
			if err == nil {
				_, err = e.rt.StartContainer(e.ctx(), &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId})
			}
			if err != nil {
				errs <- fmt.Errorf("container %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	l, err := e.rt.ListContainers(e.ctx(), &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}})
	if err != nil || len(l.Containers) != n {
		t.Fatalf("%d running containers, want %d: %v", len(l.GetContainers()), n, err)
	}
	if out, _ := exec.Command("ip", "-o", "link", "show").Output(); strings.Count(string(out), "veth") < n {
		t.Fatalf("%d veths for %d sandboxes", strings.Count(string(out), "veth"), n)
	}
	for _, id := range ids {
		wg.Go(func() {
			if _, err := e.rt.RemovePodSandbox(e.ctx(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
				t.Errorf("remove %s: %v", id, err)
			}
		})
	}
	wg.Wait()
	if left := e.leftovers(); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
	if after := waitNetCounts(t, before); after != before {
		t.Fatalf("host network after 50 sandboxes: %s, before %s", after, before)
	}
	// Pods pin their namespaces in their own directories (leftovers' mounts), never under
	// /var/run/netns; a name there that is a sandbox's (as containerd's cni-<id>) would be a
	// leak. Other names are other tests' hosts: the directory is the machine's.
	out, _ := exec.Command("ip", "netns", "list").Output()
	for name := range strings.Lines(string(out)) {
		for _, id := range ids {
			if id != "" && strings.Contains(name, id) {
				t.Errorf("network namespace left: %s", strings.TrimSpace(name))
			}
		}
	}
}

func tarFile(name string) tar.Header {
	return tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}
}

// capMask is a capability set as /proc/PID/status shows it.
func capMask(caps []string) string {
	var m uint64
	for _, c := range capability.ListKnown() {
		if slices.Contains(caps, "CAP_"+strings.ToUpper(c.String())) {
			m |= 1 << uint(c)
		}
	}
	return fmt.Sprintf("%016x", m)
}

// rkt runs the rkt command line in-process on the test's data directory and returns its
// stdout and stderr, and its exit code.
func (e *criEnv) rkt(args ...string) (string, int) {
	var out bytes.Buffer
	code := cli.Run(e.ctx(), append([]string{"--dir=" + e.dir}, args...), nil, &out, &out, cli.Options{})
	return out.String(), code
}
