package images

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/tarx"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// extract unpacks img's file system into a new directory (tarx, as the runtime unpacks
// layers).
func extract(t *testing.T, img v1.Image) string {
	t.Helper()
	dir := t.TempDir()
	rc := mutate.Extract(img)
	defer rc.Close()
	if _, err := tarx.Extract(t.Context(), rc, dir, tarx.Options{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// pauseFromImage builds kube/images/pause as Binaries does, makes the pause image of it and
// returns the /pause the image holds.
func pauseFromImage(t *testing.T) string {
	t.Helper()
	testenv.RequireCommand(t, "go")
	cache := t.TempDir()
	var progress bytes.Buffer
	bin, err := buildPause(t.Context(), repoRoot(t), cache, &progress)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	if !strings.Contains(progress.String(), "built pause in") {
		t.Errorf("progress %q does not say pause was built", progress.String())
	}
	before, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	progress.Reset()
	if again, err := buildPause(t.Context(), repoRoot(t), cache, &progress); err != nil || again != bin {
		t.Fatalf("second build: %s, %v", again, err)
	}
	if after, err := os.Stat(bin); err != nil || !after.ModTime().Equal(before.ModTime()) || progress.Len() > 0 {
		t.Errorf("pause rebuilt though its source did not change: %s", progress.String())
	}

	src := fakeSources(t)
	src.Pause = bin
	imgs, err := Build(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(extract(t, imgs["registry.k8s.io/pause:"+PauseVersion]), "pause")
}

func TestPause(t *testing.T) {
	pause := pauseFromImage(t)
	out, err := exec.Command(pause, "-v").Output()
	if err != nil || string(out) != "pause "+PauseVersion+"\n" {
		t.Errorf("pause -v: %q, %v; want the image's tag %s", out, err, PauseVersion)
	}

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		cmd := exec.Command(pause)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(stderr)
		// The warning says the signals are handled.
		if line, err := r.ReadString('\n'); err != nil || !strings.Contains(line, "should be the first process") {
			t.Fatalf("pause's first line %q, %v", line, err)
		}
		start := time.Now()
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		rest, _ := io.ReadAll(r)
		err = cmd.Wait()
		if took := time.Since(start); err != nil || took > time.Second {
			t.Errorf("pause after %v: exit %v after %v, want 0 within a second; stderr %q", sig, err, took, rest)
		}
	}
}

// TestPauseReaps runs pause as the first process of a PID namespace, as in a pod sandbox,
// and leaves it an orphan: pause must reap it when it exits, or it stays a zombie.
func TestPauseReaps(t *testing.T) {
	testenv.RequireRoot(t)
	nsenter := testenv.RequireCommand(t, "nsenter")
	pause := pauseFromImage(t)
	cmd := exec.Command(pause)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer cmd.Process.Kill()
	// sh starts sleep and exits: sleep's parent is then the namespace's first process.
	// sleep must not hold nsenter's output, or nsenter returns only when sleep is gone.
	if out, err := exec.Command(nsenter, "--target", strconv.Itoa(pid), "--pid", "--", "/bin/sh", "-c", "sleep 1 >/dev/null 2>&1 & exit 0").CombinedOutput(); err != nil {
		t.Fatalf("nsenter: %v\n%s", err, out)
	}
	var adopted bool
	deadline := time.Now().Add(5 * time.Second)
	for {
		kids := children(t, pid)
		if len(kids) > 0 {
			adopted = true
		}
		if len(kids) == 0 && adopted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pause's children after 5 s: %q (adopted the orphan: %v)", kids, adopted)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("pause as PID 1 after SIGTERM: %v; stderr %q", err, stderr.String())
	}
}

// children are the processes whose parent is pid, each as "pid state" from /proc.
func children(t *testing.T, pid int) []string {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, filepath.Base(filepath.Dir(s))+" "+f[0])
		}
	}
	return out
}

// TestProxyUserlandRuns runs nft and iptables inside kube-proxy's image, as kube-proxy
// does: they and everything they load must be there.
func TestProxyUserlandRuns(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "dpkg-query")
	paths, err := Userland(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	src := fakeSources(t)
	src.Userland, src.Root = paths, "/"
	imgs, err := Build(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	root := extract(t, imgs["registry.k8s.io/kube-proxy:v1.37.2"])
	for _, tt := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"/usr/sbin/nft", "--version"}, "nftables v"},
		{[]string{"/usr/sbin/iptables", "--version"}, "iptables v"},
		{[]string{"/usr/sbin/iptables-restore", "--version"}, "iptables-restore v"},
		{[]string{"/usr/sbin/ip6tables-save", "--version"}, "ip6tables-save v"},
	} {
		cmd := exec.Command(tt.cmd[0], tt.cmd[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
		cmd.Dir = "/"
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), tt.want) {
			t.Errorf("%q in kube-proxy's image: %v\n%s", tt.cmd, err, out)
		}
	}
}
