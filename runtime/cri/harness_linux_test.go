package cri

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/network"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
	"github.com/cairn-os/cairn/runtime/store"
)

// The test binary is rktlet too: its containers' init (libcontainer re-executes
// /proc/self/exe as "init") and its sandboxes' supervisor (the server starts
// /proc/self/exe supervise). The main goroutine keeps the main thread, as in rktlet.
func init() {
	runtime.LockOSThread()
	if len(os.Args) > 1 && os.Args[1] == "init" && os.Getenv("_LIBCONTAINER_SYNCPIPE") != "" {
		libcontainer.Init()
	}
}

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "supervise" || os.Args[1] == "pause" || os.Args[1] == rktletMain) {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		args := os.Args[1:]
		if args[0] == rktletMain {
			args = args[1:]
		}
		code := Run(ctx, args, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// rktletMain runs the test binary as the rktlet command.
const rktletMain = "rktlet-main"

// busyboxRef is the name the test image is stored under, as a pull of busybox would.
const busyboxRef = "docker.io/library/busybox:latest"

// criEnv is a rktlet serving on a unix socket of its own, over a data directory, and
// clients of it.
type criEnv struct {
	t       *testing.T // the running test or subtest
	root    *testing.T // the test that made it, which outlives its subtests
	dir     string     // rkt's data directory
	conf    string     // CNI configs
	logs    string     // pods' log directories
	sock    string
	srv     *Server
	g       *grpc.Server
	conn    *grpc.ClientConn
	rt      runtimeapi.RuntimeServiceClient
	img     runtimeapi.ImageServiceClient
	imageID string
	mirrors map[string]string

	seenMu sync.Mutex
	seen   map[string]bool // every sandbox made, for the leftover checks
}

// made notes a sandbox the test made.
func (e *criEnv) made(id string) {
	e.seenMu.Lock()
	defer e.seenMu.Unlock()
	if e.seen == nil {
		e.seen = map[string]bool{}
	}
	e.seen[id] = true
}

// newCRI starts rktlet over a new data directory holding the busybox image.
func newCRI(t *testing.T) *criEnv {
	t.Helper()
	base := t.TempDir()
	e := &criEnv{t: t, root: t, dir: filepath.Join(base, "rkt"), conf: filepath.Join(base, "net.d"), logs: filepath.Join(base, "logs"),
		sock: filepath.Join(base, "rktlet.sock")}
	for _, d := range []string{e.dir, e.conf, e.logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.Open(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	layer, err := fixture.BusyboxLayerTar()
	if err != nil {
		t.Fatal(err)
	}
	oci, err := fixture.OCIImage([]string{"/bin/sh"}, layer)
	if err != nil {
		t.Fatal(err)
	}
	img, err := st.ImportOCI(context.Background(), oci, store.ImportOptions{Name: busyboxRef})
	if err != nil {
		t.Fatal(err)
	}
	e.imageID = img.ID
	e.start()
	t.Cleanup(e.cleanup)
	return e
}

// start starts (or starts again) the server.
func (e *criEnv) start() {
	e.t.Helper()
	srv, err := New(context.Background(), Config{Dir: e.dir, LocalConfig: filepath.Join(e.dir, "etc"), SystemConfig: filepath.Join(e.dir, "lib"),
		CNIConfDir: e.conf, LogLevel: "debug", StopTimeout: 5 * time.Second, RegistryMirrors: e.mirrors,
		Log: slog.New(slog.NewTextHandler(testWriter{e.root}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		e.t.Fatal(err)
	}
	os.Remove(e.sock)
	ln, err := net.Listen("unix", e.sock)
	if err != nil {
		e.t.Fatal(err)
	}
	e.srv, e.g = srv, NewGRPCServer(srv.log)
	srv.Register(e.g)
	go e.g.Serve(ln)
	conn, err := grpc.NewClient("unix://"+e.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		e.t.Fatal(err)
	}
	e.conn, e.rt, e.img = conn, runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)
}

// stop stops the server, as a restart of rktlet does: its sandboxes go on.
func (e *criEnv) stop() {
	if e.srv == nil {
		return
	}
	e.conn.Close()
	e.g.Stop()
	if err := e.srv.Close(); err != nil {
		e.t.Error(err)
	}
	e.srv = nil
}

// cleanup removes every sandbox through the server, then kills whatever is left of the
// pods (supervisors, apps) and takes them down, so that nothing outlives the test.
func (e *criEnv) cleanup() {
	if e.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if l, err := e.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
			for _, sb := range l.Items {
				if _, err := e.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
					e.t.Errorf("cleanup: remove sandbox %s: %v", sb.Id, err)
				}
			}
		}
		e.stop()
	}
	ps := pod.NewStore(e.dir)
	pods, _ := ps.List()
	for _, p := range pods {
		if pid, err := p.PID(); err == nil && p.State() == pod.Running {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		stage1.StopPod(context.Background(), p.Path(), 0)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range pods {
		for p.State() == pod.Running && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		ps.Remove(context.Background(), p.UUID, func(ctx context.Context, p *pod.Pod) error { return stage1.Clean(ctx, p.Path()) })
	}
}

// ctx is a context with the deadline every call of the tests gets.
func (e *criEnv) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

// testWriter sends log lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// ptpConf is a CNI config list as Kubernetes' are written: ptp with its own portmap.
func ptpConf(name, subnet string) string {
	return fmt.Sprintf(`{"cniVersion":"0.4.0","name":%q,"plugins":[
 {"type":"ptp","ipMasq":true,"ipam":{"type":"host-local","subnet":%q,"routes":[{"dst":"0.0.0.0/0"}]}},
 {"type":"portmap","snat":true,"capabilities":{"portMappings":true}}]}`, name, subnet)
}

func (e *criEnv) writeNetConf(file, conf string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.conf, file), []byte(conf), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// podConfig is a sandbox config as kubelet writes one, changed by mods.
func (e *criEnv) podConfig(name string, mods ...func(*runtimeapi.PodSandboxConfig)) *runtimeapi.PodSandboxConfig {
	c := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "test", Uid: name + "-uid"},
		Hostname:     name,
		LogDirectory: filepath.Join(e.logs, name),
		Labels:       map[string]string{"app": name},
		Annotations:  map[string]string{"example.com/Note": "a pod"},
		// kubelet's default: a PID namespace per container (POD is shareProcessNamespace).
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}}},
	}
	for _, m := range mods {
		m(c)
	}
	return c
}

// runPod runs a sandbox and returns its ID.
func (e *criEnv) runPod(cfg *runtimeapi.PodSandboxConfig) string {
	e.t.Helper()
	r, err := e.rt.RunPodSandbox(e.ctx(), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		e.t.Fatalf("run sandbox %s: %v", cfg.Metadata.Name, err)
	}
	e.made(r.PodSandboxId)
	return r.PodSandboxId
}

// ctrConfig is a busybox container that runs sh -c script, changed by mods.
func ctrConfig(name, script string, mods ...func(*runtimeapi.ContainerConfig)) *runtimeapi.ContainerConfig {
	c := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  []string{"/bin/sh", "-c", script},
		LogPath:  name + ".log",
		Labels:   map[string]string{"container": name},
		Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{}},
	}
	for _, m := range mods {
		m(c)
	}
	return c
}

// create creates a container in sandbox sb.
func (e *criEnv) create(sb string, pcfg *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	e.t.Helper()
	r, err := e.rt.CreateContainer(e.ctx(), &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: cfg, SandboxConfig: pcfg})
	if err != nil {
		e.t.Fatalf("create container %s: %v", cfg.Metadata.Name, err)
	}
	return r.ContainerId
}

// run creates and starts a container.
func (e *criEnv) run(sb string, pcfg *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	e.t.Helper()
	id := e.create(sb, pcfg, cfg)
	if _, err := e.rt.StartContainer(e.ctx(), &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		e.t.Fatalf("start container %s: %v", cfg.Metadata.Name, err)
	}
	return id
}

func (e *criEnv) status(id string) *runtimeapi.ContainerStatus {
	e.t.Helper()
	r, err := e.rt.ContainerStatus(e.ctx(), &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		e.t.Fatalf("status of container %s: %v", id, err)
	}
	return r.Status
}

// waitExited waits for a container to have exited and returns its status.
func (e *criEnv) waitExited(id string) *runtimeapi.ContainerStatus {
	e.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st := e.status(id)
		if st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("container %s did not exit: %v", id, st)
		}
	}
}

// exec runs a command in a container and returns its stdout, failing the test unless it
// exits 0.
func (e *criEnv) exec(id string, cmd ...string) string {
	e.t.Helper()
	r, err := e.rt.ExecSync(e.ctx(), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 30})
	if err != nil || r.ExitCode != 0 {
		e.t.Fatalf("exec %q: %v (code %d, stderr %q)", cmd, err, r.GetExitCode(), r.GetStderr())
	}
	return string(r.Stdout)
}

// leftovers are what the test's sandboxes left on the host: pods, mounts, cgroups (with
// any process in them), supervisors. (Networks are netCounts'.)
func (e *criEnv) leftovers() []string {
	var left []string
	mi, _ := os.ReadFile("/proc/thread-self/mountinfo")
	for l := range strings.SplitSeq(string(mi), "\n") {
		if strings.Contains(l, e.dir) {
			left = append(left, "mount "+l)
		}
	}
	ps := pod.NewStore(e.dir)
	pods, _ := ps.List()
	e.seenMu.Lock()
	ids := maps.Clone(e.seen)
	e.seenMu.Unlock()
	for _, p := range pods {
		left = append(left, "pod "+p.UUID+" "+string(p.State()))
		ids[p.UUID] = true
	}
	filepath.WalkDir("/sys/fs/cgroup", func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if id, ok := strings.CutPrefix(d.Name(), "rkt-"); ok && ids[strings.TrimSuffix(id, "-stage1")] {
			procs, _ := os.ReadFile(filepath.Join(path, "cgroup.procs"))
			left = append(left, "cgroup "+path+" "+strings.Join(strings.Fields(string(procs)), ","))
			return filepath.SkipDir
		}
		if strings.Count(path, "/") > 10 {
			return filepath.SkipDir
		}
		return nil
	})
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, pc := range procs {
		b, _ := os.ReadFile(pc)
		if bytes.Contains(b, []byte("supervise\x00--dir="+e.dir)) {
			left = append(left, "supervisor "+pc)
		}
	}
	return left
}

// netCounts are what a pod's networking adds on the host: links, nat rules, masquerade
// rules, address leases.
func netCounts(t *testing.T) string {
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	rules, _ := exec.Command("iptables", "-t", "nat", "-S").Output()
	masq, err := network.MasqRules()
	if err != nil {
		t.Fatal(err)
	}
	leases := 0
	filepath.Walk("/var/lib/cni/networks", func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !strings.HasPrefix(fi.Name(), "last_reserved_ip") && fi.Name() != "lock" {
			leases++
		}
		return nil
	})
	return fmt.Sprintf("links=%d nat-rules=%d masq-rules=%d leases=%d", bytes.Count(links, []byte("\n")), bytes.Count(rules, []byte("\n")), len(masq), leases)
}

// waitNetCounts waits for the host's network to be back to before (a pod's interfaces go
// with its namespace, which the kernel takes apart in the background).
func waitNetCounts(t *testing.T, before string) string {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if after := netCounts(t); after == before || time.Now().After(deadline) {
			return after
		}
	}
}

// readLog reads a container's CRI log.
func readLog(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// waitLog waits until a container's log has text.
func waitLog(t *testing.T, path, text string) string {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		l := readLog(t, path)
		if strings.Contains(l, text) {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s: no %q in %q", path, text, l)
		}
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(strings.TrimSpace(s))
	return n
}
