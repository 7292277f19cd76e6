package stage1_test

import (
	"bytes"
	"context"
	"errors"
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

type appDef struct {
	name string
	img  *image.Image
	o    stage1.Overrides
}

type podResult struct {
	code   int
	err    error
	stdout string
	stderr string
	pod    *pod.Pod
}

// preparePod writes a pod the way rkt run does, and returns it locked in the run phase.
func preparePod(t *testing.T, data string, opts stage1.Options, vols []types.Volume, apps ...appDef) *pod.Pod {
	t.Helper()
	ps := pod.NewStore(data)
	man := schema.BlankPodManifest()
	man.Volumes = vols
	for _, a := range apps {
		app, err := stage1.AppFromImage(a.img)
		if err != nil {
			t.Fatal(err)
		}
		mounts, err := a.o.Apply(app)
		if err != nil {
			t.Fatal(err)
		}
		ri, ann, _ := stage1.RuntimeImage(a.img)
		man.Apps = append(man.Apps, schema.RuntimeApp{Name: types.ACName(a.name), Image: ri, App: app, Mounts: mounts, Annotations: ann})
		opts.Apps = append(opts.Apps, stage1.AppImage{Name: a.name, ImageID: a.img.ID, Layers: a.img.Layers})
	}
	p, err := ps.Create()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WriteManifest(man); err != nil {
		t.Fatal(err)
	}
	if err := opts.Write(p.Path()); err != nil {
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

func runPod(t *testing.T, ctx context.Context, p *pod.Pod) podResult {
	t.Helper()
	var out, errb syncBuffer
	r := &stage1.Runner{Pod: p, Stdout: &out, Stderr: &errb, StopTimeout: 2 * time.Second}
	code, err := r.Run(ctx)
	return podResult{code: code, err: err, stdout: out.String(), stderr: errb.String(), pod: p}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
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
	p := preparePod(t, data, stage1.Options{Net: "none"}, nil, appDef{name: "busybox", img: img})
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
	p := preparePod(t, t.TempDir(), stage1.Options{Net: "none"}, nil,
		appDef{name: "first", img: img, o: stage1.Overrides{Exec: "/bin/sh", Args: []string{"-c", "sleep 0.2; exit 7"}}},
		appDef{name: "second", img: img, o: stage1.Overrides{Exec: "/bin/sh", Args: []string{"-c", "exit 3"}}})
	res := runPod(t, context.Background(), p)
	if res.err != nil || res.code != 7 {
		t.Fatalf("code %d err %v, want 7 (the first app's)", res.code, res.err)
	}
	if e, ok, _ := p.Exit("second"); !ok || e.ExitCode != 3 {
		t.Errorf("second app's exit %+v %v, want 3", e, ok)
	}
	requireClean(t, p)
}

func TestExecNotFound(t *testing.T) {
	img := busyboxImage(t)
	p := preparePod(t, t.TempDir(), stage1.Options{Net: "none"}, nil,
		appDef{name: "a", img: img, o: stage1.Overrides{Exec: "/no/such/binary"}})
	res := runPod(t, context.Background(), p)
	if !errors.Is(res.err, stage1.ErrExecNotFound) {
		t.Fatalf("err %v, want ErrExecNotFound", res.err)
	}
	requireClean(t, p)
}
