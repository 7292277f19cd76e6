package stage1_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/image"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage0"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// The test binary is its own container init: libcontainer re-executes /proc/self/exe as "init".
// Otherwise the main goroutine keeps the main thread, so that no goroutine that libcontainer
// leaves in a container's namespaces ends up wedging it.
func init() {
	runtime.LockOSThread()
	if len(os.Args) > 1 && os.Args[1] == "init" && os.Getenv("_LIBCONTAINER_SYNCPIPE") != "" {
		libcontainer.Init()
	}
}

const busyboxPath = "/bin/busybox"

var (
	treeOnce sync.Once
	treeDir  string
	treeErr  error
)

// busyboxTree makes (once per test binary) a read-only-by-convention busybox root: the static
// binary, a link per applet, and minimal /etc files.
func busyboxTree(t *testing.T) string {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireFile(t, busyboxPath)
	treeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cairn-stage1-busybox-")
		if err != nil {
			treeErr = err
			return
		}
		treeDir = dir
		treeErr = writeBusybox(dir)
	})
	if treeErr != nil {
		t.Fatal(treeErr)
	}
	return treeDir
}

func writeBusybox(dir string) error {
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	b, err := os.ReadFile(busyboxPath)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), b, 0o755); err != nil {
		return err
	}
	out, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		return err
	}
	for a := range strings.FieldsSeq(string(out)) {
		if a != "busybox" {
			os.Symlink("busybox", filepath.Join(dir, "bin", a))
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\napp:x:1000:1000::/tmp:/bin/sh\n",
		"etc/group":  "root:x:0:\nnogroup:x:65534:\napp:x:1000:\nextra:x:2000:\n",
	}
	for p, c := range files {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if treeDir != "" {
		os.RemoveAll(treeDir)
	}
	if rktTmpDir != "" {
		os.RemoveAll(rktTmpDir)
	}
	os.Exit(code)
}

func busyboxImage(t *testing.T) *image.Image {
	tree := busyboxTree(t)
	name, _ := types.NewACIdentifier("example.com/busybox")
	return &image.Image{
		ID: "sha512-" + strings.Repeat("ab", 32), Format: image.ACI, Name: "example.com/busybox",
		Layers: []string{tree},
		ACIManifest: &schema.ImageManifest{ACKind: "ImageManifest", ACVersion: schema.AppContainerVersion, Name: *name,
			App: &types.App{Exec: types.Exec{"/bin/sh", "-c", "echo hello"}, User: "0", Group: "0"}},
	}
}

// testImages are images by reference, for stage0.
type testImages map[string]*image.Image

func (ti testImages) Image(_ context.Context, ref string) (*image.Image, error) {
	if img, ok := ti[ref]; ok {
		return img, nil
	}
	return nil, fmt.Errorf("image %s: not found", ref)
}

type podResult struct {
	code   int
	err    error
	stdout string
	stderr string
	pod    *pod.Pod
}

// preparePod prepares a pod with stage0, as rkt run does, and returns it locked in the run
// phase.
func preparePod(t *testing.T, data string, images testImages, cfg *stage0.Config) *pod.Pod {
	t.Helper()
	h := &stage0.Host{Pods: pod.NewStore(data), Images: images}
	p, err := h.Prepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.MarkRunning(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		stage1.Clean(context.Background(), p.Path())
	})
	return p
}

// noNet is a pod with only loopback.
var noNet = stage0.Network{Net: []string{"none"}}

func runPod(t *testing.T, ctx context.Context, p *pod.Pod) podResult {
	t.Helper()
	var out, errb testenv.Buffer
	r := &stage1.Runner{Pod: p, Stdout: &out, Stderr: &errb, StopTimeout: 2 * time.Second}
	code, err := r.Run(ctx)
	return podResult{code: code, err: err, stdout: out.String(), stderr: errb.String(), pod: p}
}

// leftovers lists what a pod may leave on the host: mounts under its directory and its cgroups.
func leftovers(t *testing.T, p *pod.Pod) []string {
	t.Helper()
	var left []string
	mi, _ := os.ReadFile("/proc/thread-self/mountinfo")
	for l := range strings.SplitSeq(string(mi), "\n") {
		if strings.Contains(l, p.UUID) {
			left = append(left, "mount: "+l)
		}
	}
	filepath.WalkDir("/sys/fs/cgroup", func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.Contains(d.Name(), p.UUID) {
			left = append(left, "cgroup: "+path)
			return filepath.SkipDir
		}
		if strings.Count(path, "/") > 9 {
			return filepath.SkipDir
		}
		return nil
	})
	return left
}

func requireClean(t *testing.T, p *pod.Pod) {
	t.Helper()
	if left := leftovers(t, p); len(left) > 0 {
		t.Errorf("pod %s left behind:\n%s", p.UUID, strings.Join(left, "\n"))
	}
}

func TestRunEcho(t *testing.T) {
	img := busyboxImage(t)
	data := t.TempDir()
	p := preparePod(t, data, testImages{"busybox": img}, &stage0.Config{Network: noNet, Apps: []stage0.App{{Image: "busybox"}}})
	res := runPod(t, context.Background(), p)
	if res.err != nil || res.code != 0 {
		t.Fatalf("run: code %d err %v stderr %q", res.code, res.err, res.stderr)
	}
	if res.stdout != "hello\n" {
		t.Errorf("stdout %q, want hello", res.stdout)
	}
	requireClean(t, p)
	if e, ok, _ := p.Exit("busybox"); !ok || e.ExitCode != 0 {
		t.Errorf("exit record %+v %v", e, ok)
	}
}

func TestExitCodeIsFirstApps(t *testing.T) {
	img := busyboxImage(t)
	p := preparePod(t, t.TempDir(), testImages{"busybox": img}, &stage0.Config{Network: noNet, Apps: []stage0.App{
		{Image: "busybox", Name: "first", Exec: "/bin/sh", Args: []string{"-c", "sleep 0.2; exit 7"}},
		{Image: "busybox", Name: "second", Exec: "/bin/sh", Args: []string{"-c", "exit 3"}},
	}})
	res := runPod(t, context.Background(), p)
	if res.err != nil || res.code != 7 {
		t.Fatalf("code %d err %v, want 7 (the first app's)", res.code, res.err)
	}
	if e, ok, _ := p.Exit("second"); !ok || e.ExitCode != 3 {
		t.Errorf("second app's exit %+v %v, want 3", e, ok)
	}
	requireClean(t, p)
}

// stage0 refuses a command that is not in the image; stage1 checks again in the app's root,
// here for a pod manifest changed after it was prepared.
func TestExecNotFound(t *testing.T) {
	img := busyboxImage(t)
	p := preparePod(t, t.TempDir(), testImages{"busybox": img}, &stage0.Config{Network: noNet, Apps: []stage0.App{{Image: "busybox", Name: "a"}}})
	man, err := p.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	man.Apps[0].App.Exec = types.Exec{"/no/such/binary"}
	if err := p.WriteManifest(man); err != nil {
		t.Fatal(err)
	}
	res := runPod(t, context.Background(), p)
	if !errors.Is(res.err, stage1.ErrExecNotFound) {
		t.Fatalf("err %v, want ErrExecNotFound", res.err)
	}
	requireClean(t, p)
}
