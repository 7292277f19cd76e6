// Package conformance runs cri-tools' critest against rktlet, and against Debian's
// containerd as the yardstick, on stand-ins of critest's images served from loopback, in
// a network and mount namespace that stands for the host. Tests only.
package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/cri"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// The test binary is rktlet too (rktlet-main), and so its sandboxes' supervisors and its
// containers' init, as rktlet re-executes itself for them.
func init() {
	runtime.LockOSThread()
	if len(os.Args) > 1 && os.Args[1] == "init" && os.Getenv("_LIBCONTAINER_SYNCPIPE") != "" {
		libcontainer.Init()
	}
}

const rktletMain = "rktlet-main"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "supervise" || os.Args[1] == "pause" || os.Args[1] == rktletMain) {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		args := os.Args[1:]
		if args[0] == rktletMain {
			args = args[1:]
		}
		code := cri.Run(ctx, args, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// innerEnv tells the test binary it runs inside TestCritest's private host namespaces.
const innerEnv = "CAIRN_CRITEST_INNER"

// toolsEnv names the directory of crictl and critest for the inner test.
const toolsEnv = "CAIRN_CRITOOLS"

// skipped are the specs this machine or the stand-ins cannot run, each with why; they
// make critest's -ginkgo.skip.
var skipped = []struct{ spec, why string }{
	{`AppArmor`, "the kernel has no AppArmor"},
	{`SELinux`, "the kernel has no SELinux"},
	{`NRI`, "needs an NRI socket; neither runtime serves NRI here"},
	{`public image with digest should be pulled and removed`, "pins test-image-digest by the digest of Google's build, which a stand-in cannot have"},
	{`benchmark`, "benchmarks, not conformance (bench/cri measures)"},
}

// knownFailures are the specs rktlet fails here that it runs, each with why; any other
// failure fails the test.
var knownFailures = []struct{ spec, why string }{
	{"runtime should support MaskedPaths", "the stand-in's shell, busybox-static's ash, runs ls in-process: masking /bin/ls cannot stop it (containerd fails it too)"},
}

func knownFailure(spec string) string {
	for _, k := range knownFailures {
		if strings.Contains(spec, k.spec) {
			return k.why
		}
	}
	return ""
}

// skipRegexp is critest's -ginkgo.skip of the skipped specs.
func skipRegexp() string {
	var res []string
	for _, s := range skipped {
		res = append(res, regexp.QuoteMeta(s.spec))
	}
	return strings.Join(res, "|")
}

// TestCritest runs critest against rktlet, then against containerd, on the same stand-in
// images, prints both counts and the specs where they differ, and holds rktlet to no failure
// beyond knownFailures and to at least containerd's passes on the specs both ran.
func TestCritest(t *testing.T) {
	testenv.SkipShort(t, "root")
	testenv.RequireRoot(t)
	testenv.RequireFile(t, fixture.BusyboxPath)
	testenv.RequireCommand(t, "go")
	testenv.RequireCommand(t, "iptables")
	for _, p := range []string{"ptp", "host-local", "portmap", "loopback"} {
		testenv.RequireFile(t, "/usr/lib/cni/"+p)
	}
	tools := testenv.Tool(t, "critools/build.sh") // crictl and critest
	t.Logf("%s", testenv.InPrivateHost(t, "TestCritestInHost", innerEnv+"=1", toolsEnv+"="+tools))
}

// TestCritestInHost is the inner half of TestCritest.
func TestCritestInHost(t *testing.T) {
	if os.Getenv(innerEnv) != "1" {
		t.Skip("runs only inside TestCritest's namespaces")
	}
	// /run is the host's no more: containerd keeps its shims' sockets there whatever it is told.
	testenv.SetUpPrivateHost(t, "/var/lib/cni", "/run")
	tools := os.Getenv(toolsEnv)
	removeNewSegments(t)
	reg := serveStandins(t)
	var mirrors []string
	for _, h := range standinHosts {
		mirrors = append(mirrors, h+"="+reg)
	}

	rk := critest(t, tools, "rktlet", startRktlet(t, mirrors))
	t.Logf("critest rktlet: %s", rk.counts())
	for _, spec := range slices.Sorted(maps.Keys(rk.failures)) {
		if why := knownFailure(spec); why != "" {
			t.Logf("rktlet: known failure: %s (%s)", spec, why)
		} else {
			t.Errorf("rktlet: %s: %s", rk.state[spec], spec)
		}
	}
	for _, k := range knownFailures {
		for spec, st := range rk.state {
			if strings.Contains(spec, k.spec) && st == "passed" {
				t.Errorf("rktlet passes %q now: take it off knownFailures", spec)
			}
		}
	}
	// The yardstick. (A skip here would fail InPrivateHost, which wants the inner test to pass.)
	if _, err := exec.LookPath("containerd"); err != nil {
		if testenv.InCI() {
			t.Error("containerd: not installed (Debian's containerd, tools/deps/apt-packages.txt)")
		} else {
			t.Log("containerd: not installed (Debian's containerd, tools/deps/apt-packages.txt): no yardstick")
		}
		return
	}
	cd := critest(t, tools, "containerd", startContainerd(t, reg))
	t.Logf("critest containerd: %s", cd.counts())
	var both, rkPass, cdPass int
	for _, spec := range slices.Sorted(maps.Keys(rk.state)) {
		r, c := rk.state[spec], cd.state[spec]
		if r == "skipped" || c == "skipped" || c == "" {
			continue
		}
		both++
		if r == "passed" {
			rkPass++
		}
		if c == "passed" {
			cdPass++
		}
		if r != c {
			t.Logf("differs: %s: rktlet %s, containerd %s", spec, r, c)
		}
	}
	t.Logf("specs both ran: %d; passed: rktlet %d, containerd %d", both, rkPass, cdPass)
	if rkPass < cdPass {
		t.Errorf("rktlet passed %d of the %d specs both runtimes ran, containerd %d", rkPass, both, cdPass)
	}
}

// results are one critest run's spec states, by spec text.
type results struct {
	state    map[string]string
	failures map[string]string
}

func (r *results) counts() string {
	n := map[string]int{}
	for _, s := range r.state {
		n[s]++
	}
	return fmt.Sprintf("%d passed, %d failed, %d skipped (of %d specs)", n["passed"], len(r.state)-n["passed"]-n["skipped"], n["skipped"], len(r.state))
}

// ginkgoReport is what critest's -ginkgo.json-report holds that the counts need.
type ginkgoReport []struct {
	SpecReports []struct {
		ContainerHierarchyTexts []string
		LeafNodeText            string
		LeafNodeType            string
		State                   string
		Failure                 struct {
			Message string
		}
	}
}

// critest runs critest against endpoint, with the stand-ins and the skip list, and
// returns its results, logging each failure.
func critest(t *testing.T, tools, runtimeName, endpoint string) *results {
	t.Helper()
	dir := t.TempDir()
	images := filepath.Join(dir, "images.yaml")
	if err := os.WriteFile(images, []byte("defaultTestContainerImage: registry.k8s.io/e2e-test-images/busybox:1.29-2\n"+
		"webServerTestImage: registry.k8s.io/e2e-test-images/nginx:1.14-2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "report.json")
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(tools, "critest"),
		"-runtime-endpoint="+endpoint, "-image-endpoint="+endpoint, "-test-images-file="+images,
		"-ginkgo.skip="+skipRegexp(), "-ginkgo.no-color", "-ginkgo.json-report="+report, "-ginkgo.timeout=24m")
	cmd.Dir = dir
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("critest against %s: %v, in %s", runtimeName, err, time.Since(start).Round(time.Second))
	b, rerr := os.ReadFile(report)
	if rerr != nil {
		t.Fatalf("critest against %s wrote no report (%v): %v\n%s", runtimeName, err, rerr, out)
	}
	var rep ginkgoReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("critest's report: %v", err)
	}
	res := &results{state: map[string]string{}, failures: map[string]string{}}
	for _, s := range rep {
		for _, sr := range s.SpecReports {
			if sr.LeafNodeType != "It" {
				continue
			}
			spec := strings.Join(append(slices.Clone(sr.ContainerHierarchyTexts), sr.LeafNodeText), " ")
			res.state[spec] = sr.State
			if sr.State != "passed" && sr.State != "skipped" {
				res.failures[spec] = sr.Failure.Message
			}
		}
	}
	skipRe := regexp.MustCompile(skipRegexp())
	for _, spec := range slices.Sorted(maps.Keys(res.state)) {
		if res.state[spec] == "skipped" && !skipRe.MatchString(spec) {
			t.Logf("%s: critest skipped: %s", runtimeName, spec)
		}
	}
	fails := slices.Collect(maps.Keys(res.failures))
	sort.Strings(fails)
	for _, f := range fails {
		t.Logf("%s: %s: %s: %s", runtimeName, res.state[f], f, firstLines(res.failures[f], 4))
	}
	return res
}

func firstLines(s string, n int) string {
	ls := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	if len(ls) > n {
		ls = ls[:n]
	}
	return strings.Join(ls, " / ")
}

// removeNewSegments removes, at the test's end, the System V shared memory segments made
// during it that are the HostIpc specs': they make one each with `ipcmk -M 1048576` in the
// host's IPC namespace (this test's private host shares it) and leave it. Only root's
// unattached segments of that size are taken (a PostgreSQL of another test keeps its own).
func removeNewSegments(t *testing.T) {
	before := shmIDs()
	t.Cleanup(func() {
		for id := range shmIDs() {
			if !before[id] {
				if out, err := exec.Command("ipcrm", "-m", id).CombinedOutput(); err != nil {
					t.Logf("ipcrm -m %s: %v %s", id, err, out)
				}
			}
		}
	})
}

// shmIDs are the IDs of root's unattached 1 MiB segments (/proc/sysvipc/shm: key, shmid,
// perms, size, cpid, lpid, nattch, uid, ...).
func shmIDs() map[string]bool {
	ids := map[string]bool{}
	b, _ := os.ReadFile("/proc/sysvipc/shm")
	for i, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); i > 0 && len(f) > 7 && f[3] == "1048576" && f[6] == "0" && f[7] == "0" {
			ids[f[1]] = true
		}
	}
	return ids
}

// ptpConf is the pods' CNI network: ptp with its own portmap, as Kubernetes' are written.
const ptpConf = `{"cniVersion":"0.4.0","name":"critest","plugins":[
 {"type":"ptp","ipMasq":true,"ipam":{"type":"host-local","subnet":"10.88.0.0/16","routes":[{"dst":"0.0.0.0/0"}]}},
 {"type":"portmap","snat":true,"capabilities":{"portMappings":true}}]}`

// startRktlet starts rktlet (this binary) over a new data directory and returns its
// endpoint; at the end it removes every sandbox, stops rktlet, and kills and takes down
// whatever pod is left.
func startRktlet(t *testing.T, mirrors []string) string {
	t.Helper()
	base := t.TempDir()
	dir, conf, sock := filepath.Join(base, "rkt"), filepath.Join(base, "net.d"), filepath.Join(base, "rktlet.sock")
	for _, d := range []string{dir, conf} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(conf, "10-critest.conflist"), []byte(ptpConf), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{rktletMain, "--listen=unix://" + sock, "--dir=" + dir, "--local-config=" + filepath.Join(base, "etc"),
		"--system-config=" + filepath.Join(base, "lib"), "--cni-conf-dir=" + conf, "--stop-timeout=5s"}
	for _, m := range mirrors {
		args = append(args, "--registry-mirror="+m)
	}
	cmd := exec.Command(os.Args[0], args...)
	endpoint := "unix://" + sock
	stop := startDaemon(t, filepath.Join(base, "rktlet.log"), endpoint, cmd, 150)
	t.Cleanup(func() {
		stop()
		ps := pod.NewStore(dir)
		pods, _ := ps.List()
		for _, p := range pods {
			if pid, err := p.PID(); err == nil && p.State() == pod.Running {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			stage1.StopPod(context.Background(), p.Path(), 0)
			ps.Remove(context.Background(), p.UUID, func(ctx context.Context, p *pod.Pod) error { return stage1.Clean(ctx, p.Path()) })
		}
	})
	waitSocket(t, sock, cmd)
	return endpoint
}

// startContainerd starts Debian's containerd with its CRI plugin, in this mount namespace
// (its /run is a private tmpfs), its registry mirrors pointing at the stand-ins. At the end
// it removes every sandbox, stops containerd, and kills whatever shim is left.
func startContainerd(t *testing.T, reg string) string {
	t.Helper()
	base := t.TempDir()
	conf, sock := filepath.Join(base, "net.d"), filepath.Join(base, "containerd.sock")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "10-critest.conflist"), []byte(ptpConf), 0o644); err != nil {
		t.Fatal(err)
	}
	var mirrors strings.Builder
	for _, h := range standinHosts {
		fmt.Fprintf(&mirrors, "[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.%q]\n  endpoint = [%q]\n", h, reg)
	}
	// restrict_oom_score_adj: this machine's root cannot lower OOM scores (no
	// CAP_SYS_RESOURCE), and containerd's shims and pods would try.
	config := fmt.Sprintf(`version = 2
root = %q
state = "/run/containerd"
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = %q
%s`, filepath.Join(base, "root"), sock, sandboxImage, conf, mirrors.String())
	cfgPath := filepath.Join(base, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("containerd", "--config", cfgPath)
	endpoint := "unix://" + sock
	stop := startDaemon(t, filepath.Join(base, "containerd.log"), endpoint, cmd, 80)
	t.Cleanup(func() {
		stop()
		killShims(sock)
		removeCgroupDirs(t, "k8s.io")
	})
	waitSocket(t, sock, cmd)
	return endpoint
}

// killShims kills the containerd shims of the containerd at sock (they outlive it) and
// their process groups.
func killShims(sock string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, pc := range procs {
		b, _ := os.ReadFile(pc)
		if strings.Contains(string(b), "containerd-shim") && strings.Contains(string(b), sock) {
			var pid int
			fmt.Sscanf(filepath.Base(filepath.Dir(pc)), "%d", &pid)
			syscall.Kill(-pid, syscall.SIGKILL)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// removeCgroupDirs removes the cgroup directory name (containerd's namespace, where it puts
// its tasks' cgroups when the CRI names no parent) from every hierarchy, once containerd has
// removed what it made below it; what it left there is logged.
func removeCgroupDirs(t *testing.T, name string) {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", name))
	for _, d := range dirs {
		if err := syscall.Rmdir(d); err != nil && !os.IsNotExist(err) {
			t.Logf("cgroup %s: %v", d, err)
		}
	}
}

// crictl runs crictl against endpoint and returns its output, logging a failure.
func crictl(t *testing.T, endpoint string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(os.Getenv(toolsEnv), "crictl"),
		append([]string{"--runtime-endpoint=" + endpoint, "--image-endpoint=" + endpoint, "--timeout=60s"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Logf("crictl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitSocket waits until a server listens on sock, failing if its process exits first.
func waitSocket(t *testing.T, sock string, cmd *exec.Cmd) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			return
		}
		if cmd.ProcessState != nil {
			break
		}
	}
	t.Fatalf("%s: no socket %s", cmd.Path, sock)
}

func tail(s string, n int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// startDaemon starts a CRI runtime's daemon, cmd, with its output in logPath, and returns what
// stops it: every pod removed through endpoint, SIGTERM, SIGKILL after 30 s; a failed test
// gets the last logLines lines of its log.
func startDaemon(t *testing.T, logPath, endpoint string, cmd *exec.Cmd, logLines int) (stop func()) {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return func() {
		crictl(t, endpoint, "rmp", "--all", "--force")
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("%s (its end):\n%s", filepath.Base(logPath), tail(string(b), logLines))
			}
		}
	}
}
