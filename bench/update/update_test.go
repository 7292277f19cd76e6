// Package update benchmarks the update engine's apply against dd: a 1 GiB /usr image (half
// random, half text-like, so zstd halves it) is signed into a payload, served by a console
// (cairn-console, in-process, SQLite) on 127.0.0.1, and applied by update_engine -once to USR-B of a loop-device disk; the
// peer is `dd bs=4M conv=fsync` of the uncompressed image to the same partition, and also
// `dd oflag=direct` (the engine's own way to write). It prints the time of each apply step, the
// ratio of throughputs and the peak RSS of both; then it runs the engine and `dd oflag=direct`
// again with the disk's writes throttled (cgroup v1 blkio) to 500 MB/s.
// Run it with `make bench` (go test -bench); `go test` alone does not. With
// CAIRN_BENCH_CPUPROFILE=FILE the last round's update_engine writes a CPU profile to FILE.
package update

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-os/cairn/console/consoletest"
	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/update-engine/payload"
	"github.com/cairn-os/cairn/update-engine/testdisk"
	"golang.org/x/sys/unix"
)

const imageSize = 1 << 30

func binary(b *testing.B, name string) string {
	if dir := os.Getenv("CAIRN_BIN"); dir != "" {
		return filepath.Join(dir, name)
	}
	out := filepath.Join(b.TempDir(), name)
	if o, err := exec.Command("go", "build", "-o", out, "github.com/cairn-os/cairn/update-engine/cmd/"+name).CombinedOutput(); err != nil {
		b.Fatalf("go build %s: %v\n%s", name, err, o)
	}
	return out
}

// writeImage writes a 1 GiB image: 1 MiB chunks alternately random and text-like.
func writeImage(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 4<<20)
	rng := rand.New(rand.NewSource(1))
	words := strings.Fields("usr lib bin share systemd cairn update engine slot payload omaha etcd locksmith flannel rkt pod image kernel module firmware locale doc man")
	chunk := make([]byte, 1<<20)
	for i := 0; i < imageSize/len(chunk); i++ {
		if i%2 == 0 {
			rng.Read(chunk)
		} else {
			n := 0
			for n < len(chunk) {
				n += copy(chunk[n:], words[rng.Intn(len(words))]+" ")
			}
		}
		w.Write(chunk)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
}

// timed runs a command (in a cgroup v1 group if cgroup names its cgroup.procs) and returns its wall time, its peak RSS in KiB and its output. The
// peak is read from /proc/<pid>/status (VmHWM, the high-water mark of the process's own
// memory): rusage's maxrss would count the Go parent's memory that the child shared until exec.
func timed(b *testing.B, cgroup, name string, args ...string) (time.Duration, int64, string) {
	cmd := exec.Command(name, args...)
	if cgroup != "" {
		// Join the cgroup, then become the command: the same process, measured the same way.
		cmd = exec.Command("sh", append([]string{"-c", `echo $$ > "$0" && exec "$@"`, cgroup, name}, args...)...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var peak atomic.Int64
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		for {
			if hwm := vmHWM(status); hwm > peak.Load() {
				peak.Store(hwm)
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	err := cmd.Wait()
	took := time.Since(start)
	close(stop)
	<-polled
	if err != nil {
		b.Fatalf("%s: %v\n%s", name, err, out.String())
	}
	return took, peak.Load(), out.String()
}

func vmHWM(status string) int64 {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb
		}
	}
	return 0
}

func BenchmarkApplyVsDD(b *testing.B) {
	d := testdisk.New(b)
	dir := b.TempDir()
	engineBin := binary(b, "update_engine")
	img := filepath.Join(dir, "usr.img")
	writeImage(b, img)
	uki := filepath.Join(dir, "uki.efi")
	os.WriteFile(uki, bytes.Repeat([]byte("UKI "), 10<<18), 0o644) // 10 MiB
	console := consoletest.Start(b, consoletest.Options{})
	priv := console.Key
	os.MkdirAll(filepath.Join(dir, "payloads", "stable"), 0o755)
	pf, _ := os.Create(filepath.Join(dir, "payloads", "stable", "2.0.0.cairn"))
	m, err := payload.Build(pf, payload.BuildOptions{Version: "2.0.0", Board: "amd64-usr",
		USR: payload.FileSource("usr", img), UKI: payload.FileSource("uki", uki), TempDir: dir}, priv)
	pf.Close()
	if err != nil {
		b.Fatal(err)
	}
	usrPart, _ := m.Part("usr")

	console.Publish("stable", filepath.Join(dir, "payloads", "stable", "2.0.0.cairn"))
	os.WriteFile(filepath.Join(dir, "update.conf"), []byte(fmt.Sprintf("SERVER=%s\nPUBLIC_KEYS=%s\n",
		console.UpdateURL(), console.PublicKeyFile)), 0o644)
	os.WriteFile(filepath.Join(dir, "cmdline"), []byte("mount.usr=PARTUUID="+disklayout.GUIDUSRA), 0o644)
	os.WriteFile(filepath.Join(dir, "os-release"), []byte("VERSION_ID=1.0.0\n"), 0o644)
	d.ESP.Create(b.Context(), "EFI/Linux/cairn-1.0.0-A.efi", strings.NewReader("A"))
	exec.Command("sync").Run()

	engineArgs := []string{"-once", "-config", filepath.Join(dir, "update.conf"),
		"-state-dir", filepath.Join(dir, "state"), "-esp-image", d.Part(1), "-disk", d.Loop,
		"-cmdline", filepath.Join(dir, "cmdline"), "-os-release", filepath.Join(dir, "os-release"),
		"-machine-id", filepath.Join(dir, "machine-id"), "-boot-id", "/dev/null", "-efivars", "/nonexistent", "-dbus", "off",
		"-extensions", filepath.Join(dir, "extensions"), "-extension-store", filepath.Join(dir, "extension-store")}
	env := benchEnv{b: b, dir: dir, img: img, usr: d.Part(4), engine: engineBin, args: engineArgs}
	// The same device throttled (blkio) to the write speed of a SATA SSD or a fast cloud
	// volume, for the engine and dd alike: where the disk, not this host's page-cache-backed
	// virtual disk, sets the pace, the decoding must hide behind it.
	cg := throttle(b, d.Loop, throttledBPS)

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fmt.Printf("update apply: 1 GiB /usr image, payload %d MiB (zstd), to USR-B of a loop-device disk\n", usrPart.CompressedSize>>20)
		fmt.Println("\nthe disk as it is:")
		r := env.measure(rounds, "")
		fmt.Println("last round's steps:")
		for _, s := range []string{"download", "verify-payload", "invalidate-inactive", "write-usr", "verify-usr", "write-uki", "stage-extensions", "record", "set-next-boot", "cleanup"} {
			fmt.Printf("  %-20s %8.2fs\n", s, r.steps[s].Seconds())
		}
		fmt.Printf("medians of %d rounds:\n", rounds)
		fmt.Printf("  dd of the image      %8.2fs  (peak RSS %d MiB)\n", r.dd, r.ddRSS>>10)
		fmt.Printf("  dd oflag=direct      %8.2fs\n", r.direct)
		fmt.Printf("  write-usr            %8.2fs\n", r.write)
		fmt.Printf("  update_engine -once  %8.2fs  (peak RSS %d MiB)\n", r.whole, r.rss>>10)
		fmt.Printf("  ratio dd/write-usr (decompress+write+fsync)            %.2f\n", r.dd/r.write)
		fmt.Printf("  ratio dd oflag=direct/write-usr                        %.2f\n", r.direct/r.write)
		fmt.Printf("  ratio dd/install (verify, write, read back+hash, UKI)   %.2f\n", r.dd/r.install)
		fmt.Printf("  ratio dd/whole run (with download over loopback)       %.2f\n", r.dd/r.whole)
		b.ReportMetric(r.dd/r.write, "ratio-write/dd")
		b.ReportMetric(r.direct/r.write, "ratio-write/dd-direct")
		b.ReportMetric(r.dd/r.install, "ratio-install/dd")
		b.ReportMetric(float64(r.rss>>10), "peak-RSS-MiB")

		if cg != "" {
			fmt.Printf("\nwrites throttled to %d MB/s (blkio):\n", throttledBPS/1000000)
			t := env.measure(throttledRounds, cg)
			fmt.Printf("medians of %d rounds:\n", throttledRounds)
			fmt.Printf("  dd oflag=direct      %8.2fs\n", t.direct)
			fmt.Printf("  write-usr            %8.2fs\n", t.write)
			fmt.Printf("  ratio dd oflag=direct/write-usr                        %.2f\n", t.direct/t.write)
			b.ReportMetric(t.direct/t.write, "ratio-write/dd-direct-throttled")
		}
	}
}

// throttledBPS is the write limit of the throttled pass: 500 MB/s.
const throttledBPS = 500_000_000

const throttledRounds = 3

// throttle makes a blkio (cgroup v1) group whose writes to dev are limited to bps and
// returns its cgroup.procs file, or "" (with a note) where there is no v1 blkio hierarchy.
func throttle(b *testing.B, dev string, bps int64) string {
	root := "/sys/fs/cgroup/blkio"
	if _, err := os.Stat(filepath.Join(root, "blkio.throttle.write_bps_device")); err != nil {
		fmt.Printf("\nno cgroup v1 blkio throttling here (%v): the throttled pass is skipped\n", err)
		return ""
	}
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		b.Fatalf("stat %s: %v", dev, err)
	}
	// Groups of earlier runs that were killed before their cleanup: an empty group goes
	// with rmdir, one with processes in it stays and is not ours to touch.
	stale, _ := filepath.Glob(filepath.Join(root, "cairn-bench-*"))
	for _, g := range stale {
		os.Remove(g)
	}
	cg := filepath.Join(root, fmt.Sprintf("cairn-bench-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := os.Remove(cg); err != nil {
			b.Errorf("remove %s: %v", cg, err)
		}
	})
	rule := fmt.Sprintf("%d:%d %d", unix.Major(st.Rdev), unix.Minor(st.Rdev), bps)
	if err := os.WriteFile(filepath.Join(cg, "blkio.throttle.write_bps_device"), []byte(rule), 0o644); err != nil {
		b.Fatalf("%s: %v", rule, err)
	}
	return filepath.Join(cg, "cgroup.procs")
}

type benchEnv struct {
	b                     *testing.B
	dir, img, usr, engine string
	args                  []string
	runs                  int // engine runs so far, each a new machine id
}

type results struct {
	dd, direct, write, install, whole float64 // medians, seconds; no dd in a throttled pass
	rss, ddRSS                        int64   // KiB
	steps                             map[string]time.Duration
}

// measure runs a warm-up round that is not counted (the first write to a partition also
// allocates the loop device's backing file and takes twice as long, for dd and the engine
// alike), then n rounds alternating which of the two goes first, and returns medians: on a
// shared two-core machine one sample of either moves by half. With cgroup set, every
// command runs in that cgroup (its cgroup.procs file) and buffered dd is left out: v1
// blkio does not throttle writeback.
func (e *benchEnv) measure(n int, cgroup string) results {
	var dds, directs, writes, installs, wholes []float64
	var r results
	for round := 0; round <= n; round++ {
		runDD := func() {
			var t time.Duration
			if cgroup == "" {
				var rss int64
				t, rss, _ = timed(e.b, "", "dd", "if="+e.img, "of="+e.usr, "bs=4M", "conv=fsync", "status=none")
				r.ddRSS = max(r.ddRSS, rss)
				exec.Command("sync").Run()
			}
			// dd as the engine writes: O_DIRECT, then one flush.
			td, _, _ := timed(e.b, cgroup, "dd", "if="+e.img, "of="+e.usr, "bs=4M", "oflag=direct", "conv=fsync", "status=none")
			exec.Command("sync").Run()
			if round > 0 {
				directs = append(directs, td.Seconds())
				if cgroup == "" {
					dds = append(dds, t.Seconds())
				}
			}
		}
		if round%2 == 0 {
			runDD()
		}
		os.RemoveAll(filepath.Join(e.dir, "state"))
		// Each run is a machine of its own to the console, which would hold one machine's
		// second update of the same version as in progress.
		e.runs++
		os.WriteFile(filepath.Join(e.dir, "machine-id"), fmt.Appendf(nil, "bench%027d\n", e.runs), 0o644)
		args := e.args
		if p := os.Getenv("CAIRN_BENCH_CPUPROFILE"); p != "" && round == n && cgroup == "" {
			// A CPU profile of the last round's engine: go tool pprof -top FILE.
			args = append(slices.Clip(args), "-cpuprofile", p)
		}
		applyTime, rss, log := timed(e.b, cgroup, e.engine, args...)
		exec.Command("sync").Run()
		r.steps = stepTimes(log)
		install := r.steps["verify-payload"] + r.steps["invalidate-inactive"] + r.steps["write-usr"] + r.steps["verify-usr"] +
			r.steps["write-uki"] + r.steps["stage-extensions"] + r.steps["record"] + r.steps["set-next-boot"] + r.steps["cleanup"]
		if round > 0 {
			r.rss = max(r.rss, rss)
			writes, installs, wholes = append(writes, r.steps["write-usr"].Seconds()), append(installs, install.Seconds()), append(wholes, applyTime.Seconds())
		}
		if round%2 == 1 {
			runDD()
		}
		if round == 0 {
			fmt.Printf("warm-up: write-usr %.2fs\n", r.steps["write-usr"].Seconds())
			continue
		}
		i := round - 1
		dd := ""
		if cgroup == "" {
			dd = fmt.Sprintf("dd %.2fs, ", dds[i])
		}
		fmt.Printf("round %d: %sdd oflag=direct %.2fs, write-usr %.2fs, install %.2fs, whole run %.2fs\n", round, dd, directs[i], writes[i], installs[i], wholes[i])
	}
	r.direct, r.write, r.install, r.whole = median(directs), median(writes), median(installs), median(wholes)
	if cgroup == "" {
		r.dd = median(dds)
	}
	return r
}

const rounds = 5

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// stepTimes reads the engine's "update step" log lines: each step lasts until the next one
// starts (the last one until the process logged its result).
func stepTimes(log string) map[string]time.Duration {
	type mark struct {
		step string
		at   time.Time
	}
	var marks []mark
	var end time.Time
	for l := range strings.SplitSeq(log, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || !strings.HasPrefix(f[0], "time=") {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[0], "time="))
		if err != nil {
			continue
		}
		end = at
		if strings.Contains(l, `msg="update step"`) {
			for _, x := range f {
				if s, ok := strings.CutPrefix(x, "step="); ok {
					marks = append(marks, mark{s, at})
				}
			}
		}
	}
	out := map[string]time.Duration{}
	for i, m := range marks {
		next := end
		if i+1 < len(marks) {
			next = marks[i+1].at
		}
		out[m.step] = next.Sub(m.at)
	}
	return out
}
