// Package pods benchmarks starting a pod against its peers on one machine: `rkt run --net=none`
// of busybox /bin/true (image already in the store) against `runc run` on a bundle of the same
// busybox tree, Debian's runc and one of the libcontainer rkt runs pods on (tools/runc), and
// `podman run --rootfs` of that tree, interleaved, 50 runs each, and prints the medians and
// ratios. Run it with `make bench` (go test -bench); `go test`
// alone does not.
//
// Each benchmark measures twice: spaced, each run after a pause (gap), and back to back. The
// first cgroup migration after a quiet spell waits for an RCU grace period (8-25 ms on the
// machine measured), and a migration within a grace period of the last one does not: back to
// back, a run inherits the wait the run before it paid (runc run's comes right after rkt
// run's), so the spaced figures are each start on its own, as on a host that is not starting
// another container in the same few milliseconds, and the back-to-back ones a burst.
//
// Both runtimes keep their state, and rkt its images and pods, on an ext4 with a journal made
// for the run (workDir says why; CAIRN_BENCH_DIR picks another directory).
package pods

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/store"
)

const runs = 50

// gap is the pause before each spaced run: longer than the grace periods measured, so that
// no run starts within one that another run began.
const gap = 100 * time.Millisecond

// peer is one command that is timed: run(i) runs it for the ith time and returns how long
// it took.
type peer struct {
	name string
	run  func(i int) time.Duration
}

// interleave times each peer rounds times, in turn, each run after pause (none when 0),
// and calls between(i) after round i (untimed); it returns the times per peer.
func interleave(peers []peer, rounds int, pause time.Duration, between func(i int)) [][]time.Duration {
	times := make([][]time.Duration, len(peers))
	for i := range rounds {
		for j, p := range peers {
			time.Sleep(pause)
			times[j] = append(times[j], p.run(i))
		}
		if between != nil {
			between(i)
		}
	}
	return times
}

// report prints each peer's median and the first peer's ratio to it, under title, and
// returns the ratios (the first is 1).
func report(title, ratio string, peers []peer, times [][]time.Duration) []float64 {
	base := median(times[0])
	var lines []string
	var ratios []float64
	for j, p := range peers {
		m := median(times[j])
		r := float64(base) / float64(m)
		ratios = append(ratios, r)
		lines = append(lines, fmt.Sprintf("%-22s median %8.1f ms  (%s %.2f)", p.name, msf(m), ratio, r))
	}
	fmt.Printf("%s:\n  %s\n", title, strings.Join(lines, "\n  "))
	return ratios
}

func rktBinary(b *testing.B) string {
	if d := os.Getenv("CAIRN_BIN"); d != "" {
		return filepath.Join(d, "rkt")
	}
	dir := b.TempDir()
	p := filepath.Join(dir, "rkt")
	out, err := exec.Command("go", "build", "-tags", "seccomp", "-o", dir+"/", "github.com/cairn-os/cairn/runtime/cmd/rkt", "github.com/cairn-os/cairn/runtime/cmd/rkt-fetch").CombinedOutput()
	if err != nil {
		b.Fatalf("build rkt: %v\n%s", err, out)
	}
	return p
}

// runc is a runc to compare with: its name in the report, with its version, and its path.
type runc struct{ name, path string }

// runcs are the runcs to compare with: Debian's (in PATH), and one built at the version of the
// libcontainer that rkt runs pods on (tools/runc), whose container start does what rkt's does
// (Debian's 1.1.5 predates, among others, the hardened path resolution of mounts). A runc that
// is not there, or does not build, is logged and left out.
func runcs(b *testing.B) []runc {
	var rs []runc
	if p, err := exec.LookPath("runc"); err == nil {
		rs = append(rs, runc{"runc run " + runcVersion(p), p})
	} else {
		b.Log("runc not installed: skipping that peer")
	}
	if dir, err := testenv.TryTool(b, "runc/build.sh"); err == nil {
		p := filepath.Join(dir, "runc")
		rs = append(rs, runc{"runc run " + runcVersion(p), p})
	} else {
		b.Logf("%v: skipping runc of rkt's libcontainer", err)
	}
	return rs
}

// runcPeers are `runc run` of each runc (runcs) on one bundle of the busybox tree under dir,
// and the bundle's rootfs ("" when there is no runc).
func runcPeers(b *testing.B, dir string) (peers []peer, rootfs string) {
	bdir := filepath.Join(dir, "bundle")
	for i, rc := range runcs(b) {
		if rootfs == "" {
			rootfs = bundle(b, rc.path, bdir)
		}
		state := filepath.Join(dir, fmt.Sprintf("runc-state-%d", i))
		var n int
		peers = append(peers, peer{rc.name, func(int) time.Duration {
			n++
			return timed(b, rc.name, rc.run(state, bdir, n))
		}})
	}
	return peers, rootfs
}

// measure runs each peer once to warm caches, then times them rounds times interleaved,
// spaced and back to back, prints both under title and reports the first peer's spaced median
// ("<first>-ms") and its ratio to each runc ("<first>/<runc version>").
func measure(b *testing.B, title, first string, peers []peer, rounds int, between func(i int)) {
	for _, p := range peers {
		p.run(-1)
	}
	b.ResetTimer()
	spaced := interleave(peers, rounds, gap, between)
	burst := interleave(peers, rounds, 0, between)
	b.StopTimer()
	r := report(fmt.Sprintf("%s, %d interleaved runs each, %v before each", title, rounds, gap), first+"/peer", peers, spaced)
	report(fmt.Sprintf("the same, %d runs each back to back", rounds), first+"/peer", peers, burst)
	b.ReportMetric(msf(median(spaced[0])), first+"-ms")
	for i, p := range peers {
		if v, ok := strings.CutPrefix(p.name, "runc run "); ok {
			b.ReportMetric(r[i], first+"/"+strings.ReplaceAll(v, " ", "-"))
		}
	}
}

// runcVersion is what runc --version says its version is (its first line's last word).
func runcVersion(path string) string {
	out, _ := exec.Command(path, "--version").Output()
	line, _, _ := strings.Cut(string(out), "\n")
	f := strings.Fields(line)
	if len(f) == 0 {
		return "(version unknown)"
	}
	return f[len(f)-1]
}

// run is the command that runs bundle's container, once, with a name of its own (runc run
// removes the container when it exits).
func (r runc) run(state, bundle string, n int) *exec.Cmd {
	c := exec.Command(r.path, "--root", state, "run", fmt.Sprintf("bench-%d", n))
	c.Dir = bundle
	return c
}

// bundle makes a runc bundle in dir whose rootfs is the busybox tree of the fixture layer, its
// config from runc's spec command, and returns the rootfs.
func bundle(b *testing.B, runc, dir string) string {
	rootfs := tree(b, dir)
	spec := exec.Command(runc, "spec")
	spec.Dir = dir
	if out, err := spec.CombinedOutput(); err != nil {
		b.Fatalf("runc spec: %v %s", err, out)
	}
	// Same process as the pod: /bin/true, no terminal.
	raw, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	var cfg map[string]any
	json.Unmarshal(raw, &cfg)
	proc := cfg["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = []string{"/bin/true"}
	raw, _ = json.Marshal(cfg)
	os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644)
	return rootfs
}

// tree unpacks the busybox tree of the fixture layer into dir/rootfs and returns that.
func tree(b *testing.B, dir string) string {
	layer, err := fixture.BusyboxLayerTar()
	if err != nil {
		b.Fatal(err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	os.MkdirAll(rootfs, 0o755)
	cmd := exec.Command("tar", "-xf", "-", "-C", rootfs)
	cmd.Stdin = bytes.NewReader(layer)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("untar: %v %s", err, out)
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp"} {
		os.MkdirAll(filepath.Join(rootfs, d), 0o755)
	}
	return rootfs
}

// msf is d in milliseconds, to the microsecond; ms prints it to a tenth, as the reports do.
func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func ms(d time.Duration) string   { return fmt.Sprintf("%.1f ms", msf(d)) }

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	slices.Sort(s)
	return s[len(s)/2]
}

func timed(b *testing.B, name string, cmd *exec.Cmd) time.Duration {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s: %v\n%s", name, err, out.String())
	}
	return time.Since(start)
}

// trueImage stores the busybox ACI whose app is /bin/true in a new rkt data directory
// under dir, and returns that directory.
func trueImage(b *testing.B, dir string) string {
	data := filepath.Join(dir, "rkt")
	st, err := store.Open(data)
	if err != nil {
		b.Fatal(err)
	}
	var aci bytes.Buffer
	if _, err := fixture.WriteACI(&aci, fixture.ACIOptions{Name: fixture.ACIName,
		App: &types.App{Exec: types.Exec{"/bin/true"}, User: "0", Group: "0"}}); err != nil {
		b.Fatal(err)
	}
	if _, err := st.ImportACI(context.Background(), &aci, store.ImportOptions{Name: fixture.ACIName, Trusted: true}); err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkPodStart(b *testing.B) {
	testenv.RequireRoot(b)
	testenv.RequireFile(b, fixture.BusyboxPath)
	rkt := rktBinary(b)
	dir, where := workDir(b)
	data := trueImage(b, dir)
	peers := []peer{{"rkt run", func(int) time.Duration {
		return timed(b, "rkt run", exec.Command(rkt, "--dir="+data, "run", "--net=none", "--pull-policy=never", fixture.ACIName))
	}}}
	rs, rootfs := runcPeers(b, dir)
	peers = append(peers, rs...)
	if _, err := exec.LookPath("podman"); err == nil {
		if rootfs == "" {
			rootfs = tree(b, filepath.Join(dir, "bundle"))
		}
		// Its storage on the same file system as the others' state, its run state on tmpfs as
		// by default (podman refuses a runroot path longer than 50 bytes).
		runroot, err := os.MkdirTemp("/run", "cairn-bench-podman-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(runroot) })
		podmanStore := []string{"--root", filepath.Join(dir, "podman"), "--runroot", runroot}
		peers = append(peers, peer{"podman run --rootfs", func(int) time.Duration {
			return timed(b, "podman run", exec.Command("podman", append(podmanStore, "run", "--rm", "--network", "none",
				"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000", "--rootfs", rootfs, "/bin/true")...))
		}})
	} else {
		b.Log("podman not installed: skipping that peer")
	}
	gc := func(i int) {
		if i%10 == 9 {
			// Pods exited: gc keeps the pods directory small, as a host's timer would.
			exec.Command(rkt, "--dir="+data, "gc", "--grace-period=0s").Run()
			exec.Command(rkt, "--dir="+data, "gc", "--grace-period=0s").Run()
		}
	}

	measure(b, "pod start, busybox /bin/true, on "+where, "rkt", peers, runs, gc)
}
