// Package update benchmarks the update engine's apply against dd: a 1 GiB /usr image (half
// random, half text-like, so zstd halves it) is signed into a payload, served by the dev Omaha
// server on 127.0.0.1, and applied by update_engine -once to USR-B of a loop-device disk; the
// peer is `dd bs=4M conv=fsync` of the uncompressed image to USR-A of the same disk, and also
// `dd oflag=direct` (the engine's own way to write). It prints the time of each apply step, the
// ratio of throughputs and the peak RSS of both.
// Run it with `make bench` (go test -bench); `go test` alone does not. With
// CAIRN_BENCH_CPUPROFILE=FILE the last round's update_engine writes a CPU profile to FILE.
package update

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/tools/omahaserver"
	"github.com/cairn-os/cairn/update-engine/payload"
	"github.com/cairn-os/cairn/update-engine/testdisk"
	"github.com/cairn-os/cairn/update-engine/updateconf"
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

// timed runs a command and returns its wall time, its peak RSS in KiB and its output. The
// peak is read from /proc/<pid>/status (VmHWM, the high-water mark of the process's own
// memory): rusage's maxrss would count the Go parent's memory that the child shared until exec.
func timed(b *testing.B, name string, args ...string) (time.Duration, int64, string) {
	cmd := exec.Command(name, args...)
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
	for _, l := range strings.Split(string(b), "\n") {
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
	privPEM, pubPEM, _ := payload.GenerateKey()
	priv, _ := payload.ParsePrivateKey(privPEM)
	os.WriteFile(filepath.Join(dir, "key.pem"), pubPEM, 0o644)
	os.MkdirAll(filepath.Join(dir, "payloads", "stable"), 0o755)
	pf, _ := os.Create(filepath.Join(dir, "payloads", "stable", "2.0.0.cairn"))
	m, err := payload.Build(pf, payload.BuildOptions{Version: "2.0.0", Board: "amd64-usr",
		USR: payload.FileSource("usr", img), UKI: payload.FileSource("uki", uki), TempDir: dir}, priv)
	pf.Close()
	if err != nil {
		b.Fatal(err)
	}
	usrPart, _ := m.Part("usr")

	srv := &omahaserver.Server{Dir: filepath.Join(dir, "payloads"), AppID: updateconf.Defaults["APP_ID"]}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	defer hs.Close()
	os.WriteFile(filepath.Join(dir, "update.conf"), []byte(fmt.Sprintf("SERVER=http://%s%s\nPUBLIC_KEYS=%s\n",
		ln.Addr(), omahaserver.UpdatePath, filepath.Join(dir, "key.pem"))), 0o644)
	os.WriteFile(filepath.Join(dir, "cmdline"), []byte("mount.usr=PARTUUID="+disklayout.GUIDUSRA), 0o644)
	os.WriteFile(filepath.Join(dir, "os-release"), []byte("VERSION_ID=1.0.0\n"), 0o644)
	d.ESP.Create(b.Context(), "EFI/Linux/cairn-1.0.0-A.efi", strings.NewReader("A"))
	exec.Command("sync").Run()

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Several rounds, alternating which of the two goes first, and medians: on a shared
		// two-core machine one sample of either moves by half.
		var dds, directs, writes, installs, wholes []float64
		var rss, ddRSS int64
		var steps map[string]time.Duration
		// Round 0 is a warm-up, not counted: the first write to each partition also allocates
		// the loop device's backing file and takes twice as long, for dd and the engine alike.
		for round := 0; round <= rounds; round++ {
			runDD := func() {
				t, r, _ := timed(b, "dd", "if="+img, "of="+d.Part(3), "bs=4M", "conv=fsync", "status=none")
				exec.Command("sync").Run()
				// dd as the engine writes: O_DIRECT, then one flush.
				td, _, _ := timed(b, "dd", "if="+img, "of="+d.Part(3), "bs=4M", "oflag=direct", "conv=fsync", "status=none")
				exec.Command("sync").Run()
				if round > 0 {
					dds, directs, ddRSS = append(dds, t.Seconds()), append(directs, td.Seconds()), max(ddRSS, r)
				}
			}
			if round%2 == 0 {
				runDD()
			}
			os.RemoveAll(filepath.Join(dir, "state"))
			args := []string{"-once", "-config", filepath.Join(dir, "update.conf"),
				"-state-dir", filepath.Join(dir, "state"), "-esp-image", d.Part(1), "-disk", d.Loop,
				"-cmdline", filepath.Join(dir, "cmdline"), "-os-release", filepath.Join(dir, "os-release"),
				"-machine-id", "/dev/null", "-boot-id", "/dev/null", "-efivars", "/nonexistent", "-dbus", "off"}
			if p := os.Getenv("CAIRN_BENCH_CPUPROFILE"); p != "" && round == rounds-1 {
				// A CPU profile of the last round's engine: go tool pprof -top FILE.
				args = append(args, "-cpuprofile", p)
			}
			applyTime, r, log := timed(b, engineBin, args...)
			exec.Command("sync").Run()
			steps = stepTimes(log)
			install := steps["verify-payload"] + steps["invalidate-inactive"] + steps["write-usr"] + steps["verify-usr"] +
				steps["write-uki"] + steps["record"] + steps["set-next-boot"] + steps["cleanup"]
			if round > 0 {
				rss = max(rss, r)
				writes, installs, wholes = append(writes, steps["write-usr"].Seconds()), append(installs, install.Seconds()), append(wholes, applyTime.Seconds())
			}
			if round%2 == 1 {
				runDD()
			}
			if round == 0 {
				fmt.Printf("warm-up: write-usr %.2fs\n", steps["write-usr"].Seconds())
				continue
			}
			i := round - 1
			fmt.Printf("round %d: dd %.2fs, dd oflag=direct %.2fs, write-usr %.2fs, install %.2fs, whole run %.2fs\n", round, dds[i], directs[i], writes[i], installs[i], wholes[i])
		}
		dd, direct, write, install, whole := median(dds), median(directs), median(writes), median(installs), median(wholes)
		fmt.Printf("\nupdate apply: 1 GiB /usr image, payload %d MiB (zstd), on loop-device partitions; last round's steps:\n", usrPart.CompressedSize>>20)
		for _, s := range []string{"download", "verify-payload", "invalidate-inactive", "write-usr", "verify-usr", "write-uki", "record", "set-next-boot", "cleanup"} {
			fmt.Printf("  %-20s %8.2fs\n", s, steps[s].Seconds())
		}
		fmt.Printf("medians of %d rounds:\n", rounds)
		fmt.Printf("  dd of the image      %8.2fs  (peak RSS %d MiB)\n", dd, ddRSS>>10)
		fmt.Printf("  dd oflag=direct      %8.2fs\n", direct)
		fmt.Printf("  write-usr            %8.2fs\n", write)
		fmt.Printf("  update_engine -once  %8.2fs  (peak RSS %d MiB)\n", whole, rss>>10)
		fmt.Printf("  ratio dd/write-usr (decompress+write+fsync)            %.2f\n", dd/write)
		fmt.Printf("  ratio dd oflag=direct/write-usr                        %.2f\n", direct/write)
		fmt.Printf("  ratio dd/install (verify, write, read back+hash, UKI)   %.2f\n", dd/install)
		fmt.Printf("  ratio dd/whole run (with download over loopback)       %.2f\n", dd/whole)
		b.ReportMetric(dd/write, "ratio-write/dd")
		b.ReportMetric(dd/install, "ratio-install/dd")
		b.ReportMetric(float64(rss>>10), "peak-RSS-MiB")
	}
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
	for _, l := range strings.Split(log, "\n") {
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
