// Package cri benchmarks rktlet against Debian's containerd through the CRI, as crictl
// drives them: a pod and a busybox /bin/true container started, and the memory each keeps
// for 50 sandboxes. Both run in a network and mount namespace that stands for the host, on
// the same CNI network and the same image from a loopback registry.
package cri

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/fixture"
)

const (
	runs      = 30
	sandboxes = 50
	// image is what both runtimes run, pulled from the loopback registry (a mirror of
	// registry.k8s.io for both); pauseImage is containerd's sandbox image.
	image      = "registry.k8s.io/bench/busybox:1"
	pauseImage = "registry.k8s.io/bench/pause:1"
	innerEnv   = "CAIRN_BENCH_CRI_INNER"
	toolsEnv   = "CAIRN_CRITOOLS"
	rktletEnv  = "CAIRN_RKTLET"
)

// BenchmarkCRIStart times `crictl runp` + `create` + `start` of busybox /bin/true on rktlet
// and on containerd, interleaved, 30 runs each, prints the medians and their ratio, then
// the peak RSS of each with 50 sandboxes (containerd's with its shims', rktlet's with its
// supervisors').
func BenchmarkCRIStart(b *testing.B) {
	testenv.RequireRoot(b)
	testenv.RequireFile(b, fixture.BusyboxPath)
	testenv.RequireCommand(b, "containerd")
	for _, p := range []string{"ptp", "host-local", "portmap", "loopback"} {
		testenv.RequireFile(b, "/usr/lib/cni/"+p)
	}
	tools := testenv.Tool(b, "critools/build.sh")
	rktlet := filepath.Join(os.Getenv("CAIRN_BIN"), "rktlet")
	if os.Getenv("CAIRN_BIN") == "" {
		rktlet = filepath.Join(b.TempDir(), "rktlet")
		if out, err := exec.Command("go", "build", "-tags", "seccomp", "-o", rktlet, "github.com/cairn-os/cairn/runtime/cmd/rktlet").CombinedOutput(); err != nil {
			b.Fatalf("build rktlet: %v\n%s", err, out)
		}
	}
	res := testenv.InPrivateHost(b, "TestCRIBenchInHost", innerEnv+"=1", toolsEnv+"="+tools, rktletEnv+"="+rktlet)
	for l := range strings.SplitSeq(res, "\n") {
		if _, r, ok := strings.Cut(l, "cri-bench: "); ok {
			fmt.Println(r)
		}
	}
}

// TestCRIBenchInHost is the inner half of BenchmarkCRIStart.
func TestCRIBenchInHost(t *testing.T) {
	if os.Getenv(innerEnv) != "1" {
		t.Skip("runs only inside BenchmarkCRIStart's namespaces")
	}
	testenv.SetUpPrivateHost(t, "/var/lib/cni", "/run")
	reg := serveImages(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "net.d")
	os.MkdirAll(conf, 0o755)
	if err := os.WriteFile(filepath.Join(conf, "10-bench.conflist"), []byte(`{"cniVersion":"0.4.0","name":"bench","plugins":[
 {"type":"ptp","ipMasq":true,"ipam":{"type":"host-local","subnet":"10.89.0.0/16","routes":[{"dst":"0.0.0.0/0"}]}},
 {"type":"portmap","snat":true,"capabilities":{"portMappings":true}}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	rk := startRktlet(t, filepath.Join(dir, "rktlet"), conf, reg)
	cd := startContainerd(t, filepath.Join(dir, "containerd"), conf, reg)
	rts := []*runtime{rk, cd}
	for _, r := range rts {
		r.crictl(t, "pull", image)
		r.start(t, dir, "warm") // caches, and containerd's pause image
	}
	times := make([][]time.Duration, len(rts))
	for i := range runs {
		for j, r := range rts { // interleaved
			times[j] = append(times[j], r.start(t, dir, strconv.Itoa(i)))
		}
	}
	med := []time.Duration{median(times[0]), median(times[1])}
	t.Logf("cri-bench: crictl runp + create + start of busybox /bin/true, %d interleaved runs each: rktlet median %.1f ms, containerd %.1f ms (rktlet/containerd %.2f×)",
		runs, ms(med[0]), ms(med[1]), float64(med[0])/float64(med[1]))

	for _, r := range rts {
		ids := make([]string, sandboxes)
		for i := range ids {
			ids[i] = r.runp(t, dir, fmt.Sprintf("rss-%d", i))
		}
		daemon := peakRSS(r.cmd.Process.Pid)
		helpers, pss, n := helpersRSS(r.helper)
		t.Logf("cri-bench: %d sandboxes: %s peak RSS %.1f MiB; with its %d %s %.1f MiB (their PSS, shared pages divided: %.1f MiB)",
			sandboxes, r.name, mib(daemon), n, r.helperName, mib(daemon+helpers), mib(pss))
		for _, id := range ids {
			r.remove(t, id)
		}
	}
}

// runtime is a CRI server under test.
type runtime struct {
	name, endpoint string
	cmd            *exec.Cmd
	helperName     string
	helper         func(cmdline string) bool // its per-sandbox processes
}

func (r *runtime) crictl(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(os.Getenv(toolsEnv), "crictl"),
		append([]string{"--runtime-endpoint=" + r.endpoint, "--image-endpoint=" + r.endpoint, "--timeout=60s"}, args...)...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: crictl %s: %v\n%s%s", r.name, strings.Join(args, " "), err, out.String(), stderr.String())
	}
	return strings.TrimSpace(out.String())
}

func writeJSON(t *testing.T, p string, v any) string {
	b, _ := json.Marshal(v)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (r *runtime) podConfig(t *testing.T, dir, name string) string {
	return writeJSON(t, filepath.Join(dir, r.name+"-"+name+"-pod.json"), map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": "bench", "uid": r.name + "-" + name},
		"log_directory": filepath.Join(dir, "logs", r.name, name),
		"linux":         map[string]any{},
	})
}

func (r *runtime) runp(t *testing.T, dir, name string) string {
	return r.crictl(t, "runp", r.podConfig(t, dir, name))
}

// start times runp + create + start of /bin/true in a new pod, then removes the pod
// (not timed).
func (r *runtime) start(t *testing.T, dir, name string) time.Duration {
	pod := r.podConfig(t, dir, name)
	ctr := writeJSON(t, filepath.Join(dir, "true.json"), map[string]any{
		"metadata": map[string]any{"name": "true"},
		"image":    map[string]any{"image": image},
		"command":  []string{"/bin/true"},
		"log_path": "true.log",
	})
	t0 := time.Now()
	id := r.crictl(t, "runp", pod)
	cid := r.crictl(t, "create", id, ctr, pod)
	r.crictl(t, "start", cid)
	d := time.Since(t0)
	r.remove(t, id)
	return d
}

// remove removes a sandbox (not timed). containerd 1.6 sometimes loses its shim's
// connection when it stops a sandbox whose container has just exited ("ttrpc: closed"); a
// second try finds the sandbox stopped.
func (r *runtime) remove(t *testing.T, id string) {
	t.Helper()
	var err error
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		out, e := exec.CommandContext(ctx, filepath.Join(os.Getenv(toolsEnv), "crictl"), "--runtime-endpoint="+r.endpoint, "rmp", "--force", id).CombinedOutput()
		cancel()
		if e == nil {
			return
		}
		err = fmt.Errorf("%w: %s", e, out)
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: crictl rmp --force %s: %v", r.name, id, err)
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func mib(kb int) float64 { return float64(kb) / 1024 }

// peakRSS is a process's VmHWM in KiB.
func peakRSS(pid int) int {
	return statusKB(fmt.Sprintf("/proc/%d/status", pid), "VmHWM:")
}

func statusKB(path, field string) int {
	b, _ := os.ReadFile(path)
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// helpersRSS sums the peak RSS and the PSS (shared pages divided among the processes that
// map them: 50 helpers share one binary's text) of the processes whose command line is a
// runtime's per-sandbox helper, and counts them.
func helpersRSS(is func(string) bool) (rss, pss, n int) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, pc := range procs {
		c, _ := os.ReadFile(pc)
		if is(string(c)) {
			rss += statusKB(filepath.Join(filepath.Dir(pc), "status"), "VmHWM:")
			pss += statusKB(filepath.Join(filepath.Dir(pc), "smaps_rollup"), "Pss:")
			n++
		}
	}
	return rss, pss, n
}

// serveImages serves the busybox image and containerd's pause image from a loopback
// registry and returns its URL.
func serveImages(t *testing.T) string {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	layer, err := fixture.BusyboxLayerTar()
	if err != nil {
		t.Fatal(err)
	}
	for ref, entrypoint := range map[string][]string{image: nil, pauseImage: {"/bin/sleep", "infinity"}} {
		img, err := fixture.OCIImage([]string{"sh"}, layer)
		if err != nil {
			t.Fatal(err)
		}
		if entrypoint != nil {
			cf, _ := img.ConfigFile()
			cf = cf.DeepCopy()
			cf.Config.Entrypoint, cf.Config.Cmd = entrypoint, nil
			if img, err = mutate.ConfigFile(img, cf); err != nil {
				t.Fatal(err)
			}
		}
		r, _ := name.ParseReference(ref)
		to, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://")+"/"+r.Context().RepositoryStr()+":"+r.Identifier(), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(to, img); err != nil {
			t.Fatal(err)
		}
	}
	return srv.URL
}

// startRktlet starts rktlet over a data directory under dir; at the end it removes every
// sandbox and stops it.
func startRktlet(t *testing.T, dir, conf, reg string) *runtime {
	data, sock := filepath.Join(dir, "rkt"), filepath.Join(dir, "rktlet.sock")
	os.MkdirAll(data, 0o755)
	cmd := exec.Command(os.Getenv(rktletEnv), "--listen=unix://"+sock, "--dir="+data, "--local-config="+filepath.Join(dir, "etc"),
		"--system-config="+filepath.Join(dir, "lib"), "--cni-conf-dir="+conf, "--log-level=warn", "--registry-mirror=registry.k8s.io="+reg)
	r := &runtime{name: "rktlet", endpoint: "unix://" + sock, cmd: cmd, helperName: "supervisors",
		helper: func(c string) bool { return strings.Contains(c, "supervise\x00") && strings.Contains(c, "--dir="+data) }}
	serve(t, r, sock, dir)
	return r
}

// startContainerd starts Debian's containerd with its CRI plugin (its state under this
// namespace's private /run); at the end it removes every sandbox, stops it, and kills its
// shims.
func startContainerd(t *testing.T, dir, conf, reg string) *runtime {
	sock := filepath.Join(dir, "containerd.sock")
	os.MkdirAll(dir, 0o755)
	cfg := filepath.Join(dir, "config.toml")
	// restrict_oom_score_adj: this machine's root cannot lower OOM scores.
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `version = 2
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
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."registry.k8s.io"]
  endpoint = [%q]
`, filepath.Join(dir, "root"), sock, pauseImage, conf, reg), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &runtime{name: "containerd", endpoint: "unix://" + sock, cmd: exec.Command("containerd", "--config", cfg), helperName: "shims",
		helper: func(c string) bool { return strings.Contains(c, "containerd-shim") && strings.Contains(c, sock) }}
	serve(t, r, sock, dir)
	return r
}

// serve starts a runtime's process, waits for its socket, and at the end removes its
// sandboxes, stops it and kills its helpers.
func serve(t *testing.T, r *runtime, sock, dir string) {
	logf, err := os.Create(filepath.Join(dir, r.name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		exec.CommandContext(ctx, filepath.Join(os.Getenv(toolsEnv), "crictl"), "--runtime-endpoint="+r.endpoint, "rmp", "--all", "--force").Run()
		r.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { r.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			r.cmd.Process.Kill()
			<-done
		}
		logf.Close()
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, pc := range procs {
			c, _ := os.ReadFile(pc)
			if r.helper(string(c)) {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(pc)))
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		// containerd's namespace directory in each cgroup hierarchy, empty once its tasks
		// are gone (rmdir removes nothing else).
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/k8s.io")
		for _, d := range dirs {
			syscall.Rmdir(d)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no socket %s", r.name, sock)
		}
	}
}
