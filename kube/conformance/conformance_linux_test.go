package conformance

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/kube/clustertest"
)

const (
	// focus selects sig-node's conformance specs and every spec that says it is about a
	// node (storage's and networking's node-level ones among them).
	focus = `\[sig-node\].*\[Conformance\]|\[NodeConformance\]`
	// suiteTimeout bounds the whole run (Ginkgo's default, 1 h, is too short for it here).
	suiteTimeout = 4 * time.Hour
	// defaultProcs is Ginkgo's processes: most specs wait on pods, probes and timeouts, so
	// ten share this 2-core machine's two nodes (a full run took 33 minutes beside a qemu
	// test; eight left the load near 1 while specs waited).
	defaultProcs = 10
)

// machineSkips are specs left out because they need what this machine does not give, each
// with why; the report lists them as skipped.
var machineSkips = []struct {
	re  *regexp.Regexp
	why string
}{{
	// The specs restart a resized container and read its oom_score_adj: kubelet gives a
	// Guaranteed pod's containers -997, and rktlet (as containerd with
	// restrict_oom_score_adj) keeps the score it cannot lower.
	re:  regexp.MustCompile(`PLR guaranteed qos - 1 container with resize policy .*(cpu|mem) restart`),
	why: "needs oom_score_adj -997 (Guaranteed QoS) on a restarted container; this machine's root cannot lower an OOM score (writing -997 to /proc/self/oom_score_adj fails with EIO)",
}, {
	re:  regexp.MustCompile(`PrivilegedPod .*should enable privileged commands`),
	why: "runs ip link add dummy1 type dummy in a privileged container; this machine's kernel has no dummy link type (RTNETLINK answers: Operation not supported)",
}}

// knownFailures are specs that fail on this machine or on rktlet, by their full text, with
// why. The test fails on any other failure, and on a known one that passes, so that the list
// stays true.
var knownFailures = map[string]string{
	"[sig-node] Kubelet when scheduling a read only busybox container should not write to root filesystem [LinuxOnly] [Conformance] [NodeConformance]": "the write to the read-only root fails (EROFS), but the spec compares busybox ash's message (can't create /file: Read-only file system) and the busybox stand-in's sh is bash (shell in standins_linux_test.go says why)",
}

// TestConformance brings up a two-node kubeadm cluster on rktlet, runs e2e.test's node
// conformance specs against it, and reports every spec's outcome.
func TestConformance(t *testing.T) {
	if os.Getenv("CAIRN_CONFORMANCE") != "1" {
		t.Skip("run by make conformance (CAIRN_CONFORMANCE=1): Kubernetes' e2e node conformance specs take the better part of an hour")
	}
	specFocus := focus
	if f := os.Getenv("CAIRN_CONFORMANCE_FOCUS"); f != "" {
		specFocus = f
	}
	procs := defaultProcs
	if p, err := strconv.Atoi(os.Getenv("CAIRN_CONFORMANCE_PROCS")); err == nil && p > 0 {
		procs = p
	}
	// The yardstick: the same run on Debian's containerd tells a spec that fails on this
	// machine or cluster from one that fails on rktlet.
	runtime := clustertest.Rktlet
	if os.Getenv("CAIRN_CONFORMANCE_RUNTIME") == string(clustertest.Containerd) {
		runtime = clustertest.Containerd
	}
	dir := os.Getenv("CAIRN_CONFORMANCE_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	c := clustertest.New(t)
	suite, ginkgo := buildE2E(t, c.Kube)
	c.Push(t, standinImages(t, c.Kube))
	n1, n2 := c.AddNodeWith(runtime), c.AddNodeWith(runtime)
	c.Init(n1)
	c.StartFlannelOn(n1)
	c.MustKubectl("", "taint", "nodes", n1.Name, "node-role.kubernetes.io/control-plane-")
	c.Join(n2)
	c.StartFlannelOn(n2)
	c.WaitNodesReady(t, 3*time.Minute)
	t.Logf("cluster on %s ready in %s", runtime, time.Since(start).Round(time.Second))

	repoList := filepath.Join(dir, "repo-list.yaml")
	if err := os.WriteFile(repoList, []byte(RepoList(clustertest.RegistryAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	junit := filepath.Join(dir, "junit_01.xml")
	os.Remove(junit)
	logPath := filepath.Join(dir, "e2e.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	// Ginkgo's CLI runs the suite in procs processes, each an e2e.test; the API server is
	// reachable in the underlay namespace only.
	cmd := exec.CommandContext(t.Context(), "nsenter", "--net=/run/netns/"+c.Net.UnderNS, "--", ginkgo,
		"--procs="+strconv.Itoa(procs),
		"--focus="+specFocus,
		"--timeout="+suiteTimeout.String(),
		"--no-color",
		// Every spec the focus leaves out would print an S; the report has the skips.
		"--silence-skips",
		"--skip="+skipPattern(),
		suite, "--",
		"--kubeconfig="+c.Kubeconfig,
		"--kubectl-path="+filepath.Join(c.Kube, "kubectl"),
		"--provider=skeleton",
		"--kube-test-repo-list="+repoList,
		"--report-dir="+dir,
	)
	cmd.Dir = dir
	cmd.Stdout = io.MultiWriter(logFile, os.Stdout)
	cmd.Stderr = cmd.Stdout
	runStart := time.Now()
	runErr := cmd.Run()
	took := time.Since(runStart).Round(time.Second)
	t.Logf("e2e.test ran %s (%v); its output is in %s", took, runErr, logPath)

	f, err := os.Open(junit)
	if err != nil {
		t.Fatalf("e2e.test wrote no report: %v", err)
	}
	defer f.Close()
	rep, err := ReadJUnit(f)
	if err != nil {
		t.Fatal(err)
	}
	focused := regexp.MustCompile(specFocus)
	for _, s := range machineSkips {
		rep.SkipLeftOut(focused, s.re, s.why)
	}
	summary := Summary(rep, took)
	t.Log("\n" + summary)
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(summary), 0o644); err != nil {
		t.Error(err)
	}
	for _, sp := range rep.SuiteNodes {
		t.Errorf("%s failed: %s", sp.Name, sp.Reason)
	}
	if runtime != clustertest.Rktlet {
		return
	}
	for _, sp := range rep.Specs {
		why, known := knownFailures[sp.Name]
		switch {
		case sp.State == Failed && !known:
			t.Errorf("FAIL %s: %s", sp.Name, sp.Reason)
		case sp.State == Passed && known:
			t.Errorf("passes, but knownFailures says it fails (%s): %s", why, sp.Name)
		}
	}
}

// skipPattern is Ginkgo's --skip for machineSkips.
func skipPattern() string {
	res := make([]string, len(machineSkips))
	for i, s := range machineSkips {
		res[i] = "(" + s.re.String() + ")"
	}
	return strings.Join(res, "|")
}

// buildE2E builds (or finds cached) e2e.test and Ginkgo's CLI beside the cluster's
// Kubernetes binaries.
func buildE2E(t *testing.T, kubeDir string) (suite, ginkgo string) {
	t.Helper()
	start := time.Now()
	if d := testenv.Tool(t, "kube/build.sh", "e2e.test", "ginkgo"); d != kubeDir {
		t.Fatalf("e2e.test in %s, the cluster's binaries in %s", d, kubeDir)
	}
	t.Logf("e2e.test ready in %s", time.Since(start).Round(time.Second))
	return filepath.Join(kubeDir, "e2e.test"), filepath.Join(kubeDir, "ginkgo")
}
