package stage1_test

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/stage1"
	"github.com/cairn-os/cairn/runtime/store"
)

var (
	rktOnce   sync.Once
	rktPath   string
	rktErr    error
	rktTmpDir string
)

// rktBinary is $CAIRN_BIN/rkt, or rkt built once for this test binary (with seccomp support).
func rktBinary(t *testing.T) string {
	t.Helper()
	testenv.RequireRoot(t)
	rktOnce.Do(func() {
		if d := os.Getenv("CAIRN_BIN"); d != "" {
			rktPath = filepath.Join(d, "rkt")
			// Without seccomp support rkt refuses to run apps with the default filter.
			if bi, err := buildinfo.ReadFile(rktPath); err == nil {
				tags := ""
				for _, s := range bi.Settings {
					if s.Key == "-tags" {
						tags = s.Value
					}
				}
				if !strings.Contains(","+tags+",", ",seccomp,") {
					rktErr = fmt.Errorf("%s was built without -tags seccomp (and libseccomp-dev); build it with them", rktPath)
				}
			}
			return
		}
		rktTmpDir, rktErr = os.MkdirTemp("", "cairn-rkt-bin-")
		if rktErr != nil {
			return
		}
		rktPath = filepath.Join(rktTmpDir, "rkt")
		// rkt-fetch beside it: rkt executes it for fetch and trust.
		cmd := exec.Command("go", "build", "-tags", "seccomp", "-o", rktTmpDir+"/", "github.com/cairn-os/cairn/runtime/cmd/rkt", "github.com/cairn-os/cairn/runtime/cmd/rkt-fetch")
		if out, err := cmd.CombinedOutput(); err != nil {
			rktErr = &buildError{err, string(out)}
		}
	})
	if rktErr != nil {
		t.Fatal(rktErr)
	}
	return rktPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build rkt: " + e.err.Error() + "\n" + e.out }

// env is one scratch rkt data directory with the fixture images imported.
type env struct {
	t   *testing.T
	rkt string
	dir string
	aci string // ACI name
	oci string // OCI image ID
}

func newEnv(t *testing.T) *env {
	t.Helper()
	rkt := rktBinary(t)
	testenv.RequireFile(t, fixture.BusyboxPath)
	dir := t.TempDir()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := fixture.WriteACI(&buf, fixture.ACIOptions{
		Name:   fixture.ACIName,
		Labels: map[string]string{"version": fixture.ACIVersion},
		App: &types.App{Exec: types.Exec{"/bin/sh", "-c", "echo hello from aci"}, User: "0", Group: "0",
			Environment: types.Environment{{Name: "FROM_IMAGE", Value: "aci"}},
			MountPoints: []types.MountPoint{{Name: "data", Path: "/data"}}},
		Files: map[string]string{"etc/passwd": "root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n", "etc/group": "root:x:0:\napp:x:1000:\n"},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ImportACI(context.Background(), &buf, store.ImportOptions{Name: fixture.ACIName, Trusted: true}); err != nil {
		t.Fatal(err)
	}
	layer, err := fixture.BusyboxLayerTar()
	if err != nil {
		t.Fatal(err)
	}
	oimg, err := fixture.OCIImage([]string{"/bin/sh", "-c", "echo hello from oci; cat /etc/hello.txt"}, layer, mustLayer(t, fixture.HelloPath, fixture.HelloText))
	if err != nil {
		t.Fatal(err)
	}
	oi, err := st.ImportOCI(context.Background(), oimg, store.ImportOptions{Name: fixture.OCIName, Trusted: true})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, rkt: rkt, dir: dir, aci: fixture.ACIName, oci: oi.ID}
	t.Cleanup(func() {
		// Whatever a test left, gc with no grace period must clean it.
		e.run("gc", "--grace-period=0s")
		e.run("gc", "--grace-period=0s")
	})
	return e
}

func mustLayer(t *testing.T, path, content string) []byte {
	t.Helper()
	b, err := fixture.LayerTar([]fixture.Entry{{Header: tarFile(path, len(content)), Body: content}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tarFile(path string, size int) tar.Header {
	return tar.Header{Name: path, Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg, ModTime: fixture.Mtime}
}

type result struct {
	out, err string
	code     int
}

func (e *env) cmd(args ...string) *exec.Cmd {
	c := exec.Command(e.rkt, append([]string{"--dir=" + e.dir}, args...)...)
	return c
}

func (e *env) run(args ...string) result {
	e.t.Helper()
	c := e.cmd(args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("rkt %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// podLeftovers counts what pods of this data directory left on the host: mounts under it,
// cgroups named rkt-<uuid> of its pods, and processes in them.
func (e *env) podLeftovers() []string {
	var left []string
	mi, _ := os.ReadFile("/proc/thread-self/mountinfo")
	for l := range strings.SplitSeq(string(mi), "\n") {
		if strings.Contains(l, e.dir) {
			left = append(left, "mount "+l)
		}
	}
	uuids := map[string]bool{}
	for _, ph := range []string{"embryo", "prepare", "prepared", "run", "exited-garbage", "garbage"} {
		ents, _ := os.ReadDir(filepath.Join(e.dir, "pods", ph))
		for _, en := range ents {
			uuids[en.Name()] = true
		}
	}
	// Processes still in a pod cgroup of this data directory, in any hierarchy.
	procs, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	for _, pc := range procs {
		b, _ := os.ReadFile(pc)
		for id := range uuids {
			if strings.Contains(string(b), "/rkt-"+id+"/") {
				cmd, _ := os.ReadFile(filepath.Join(filepath.Dir(pc), "cmdline"))
				left = append(left, "process "+pc+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
				break
			}
		}
	}
	own, _ := os.ReadFile("/proc/self/cgroup")
	for line := range strings.SplitSeq(strings.TrimSpace(string(own)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || parts[1] == "" {
			continue
		}
		h := strings.TrimPrefix(strings.Split(parts[1], ",")[0], "name=")
		base := filepath.Join("/sys/fs/cgroup", h, parts[2])
		ents, _ := os.ReadDir(base)
		for _, en := range ents {
			if strings.HasPrefix(en.Name(), "rkt-") && uuids[strings.TrimPrefix(en.Name(), "rkt-")] {
				left = append(left, "cgroup "+filepath.Join(base, en.Name()))
			}
		}
	}
	return left
}

func TestRktRunACIAndOCI(t *testing.T) {
	e := newEnv(t)
	r := e.run("run", "--net=none", e.aci)
	if r.code != 0 || r.out != "hello from aci\n" {
		t.Fatalf("run aci: code %d out %q err %q", r.code, r.out, r.err)
	}
	r = e.run("run", "--net=none", e.oci)
	if r.code != 0 || r.out != "hello from oci\n"+fixture.HelloText {
		t.Fatalf("run oci: code %d out %q err %q", r.code, r.out, r.err)
	}
	// An image not in the store is fetched first (here a local ACI file).
	aciFile := filepath.Join(t.TempDir(), "other.aci")
	if _, err := fixture.BuildACI(aciFile, fixture.ACIOptions{Name: "example.com/other", Exec: []string{"/bin/echo", "fetched"}}); err != nil {
		t.Fatal(err)
	}
	r = e.run("--insecure-options=image", "run", "--net=none", aciFile)
	if r.code != 0 || r.out != "fetched\n" {
		t.Fatalf("run of an image file: code %d out %q err %q", r.code, r.out, r.err)
	}
	r = e.run("run", "--net=none", e.aci, "--exec=/bin/sh", "--", "-c", "exit 42")
	if r.code != 42 {
		t.Fatalf("exit status %d, want 42 (stderr %q)", r.code, r.err)
	}
	if left := e.podLeftovers(); len(left) > 0 {
		t.Fatalf("leftovers after runs:\n%s", strings.Join(left, "\n"))
	}
}

// start runs rkt in the background and returns the pod UUID once the pod is running.
func (e *env) start(args ...string) (uuid string, wait func() result) {
	e.t.Helper()
	uf := filepath.Join(e.t.TempDir(), "uuid")
	c := e.cmd(append([]string{"run", "--uuid-file-save=" + uf}, args...)...)
	// Files, not pipes: apps of a killed rkt run keep its stdout open until gc.
	outf, err := os.Create(filepath.Join(e.t.TempDir(), "stdout"))
	if err != nil {
		e.t.Fatal(err)
	}
	errf, err := os.Create(filepath.Join(e.t.TempDir(), "stderr"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer outf.Close()
	defer errf.Close()
	c.Stdout, c.Stderr = outf, errf
	if err := c.Start(); err != nil {
		e.t.Fatal(err)
	}
	done := make(chan result, 1)
	go func() {
		err := c.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		o, _ := os.ReadFile(outf.Name())
		eb, _ := os.ReadFile(errf.Name())
		done <- result{string(o), string(eb), code}
	}()
	errb := struct{ String func() string }{func() string { b, _ := os.ReadFile(errf.Name()); return string(b) }}
	var res *result
	wait = func() result {
		if res == nil {
			r := <-done
			res = &r
		}
		return *res
	}
	e.t.Cleanup(func() {
		c.Process.Kill()
		wait()
	})
	deadline := time.Now().Add(20 * time.Second)
	for uuid == "" {
		b, _ := os.ReadFile(uf)
		uuid = strings.TrimSpace(string(b))
		if time.Now().After(deadline) {
			e.t.Fatalf("pod did not start: %s", errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := e.run("status", "--wait-ready", uuid); r.code != 0 {
		e.t.Fatalf("status --wait-ready: %d %s %s", r.code, r.err, errb.String())
	}
	return uuid, wait
}

func (e *env) status(uuid string) map[string]any {
	e.t.Helper()
	r := e.run("status", "--format=json", uuid)
	var m map[string]any
	if err := json.Unmarshal([]byte(r.out), &m); err != nil {
		e.t.Fatalf("status json %q: %v (%s)", r.out, err, r.err)
	}
	return m
}

func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	// prepare + run-prepared
	r := e.run("prepare", "--net=none", e.aci, "--exec=/bin/sh", "--", "-c", "exit 3")
	uuid := strings.TrimSpace(r.out)
	if r.code != 0 || len(uuid) != 36 {
		t.Fatalf("prepare: %d %q %q", r.code, r.out, r.err)
	}
	if st := e.status(uuid)["state"]; st != "prepared" {
		t.Fatalf("state after prepare %v", st)
	}
	if r := e.run("cat-manifest", uuid); r.code != 0 || !strings.Contains(r.out, `"acKind": "PodManifest"`) {
		t.Fatalf("cat-manifest: %d %q", r.code, r.out)
	}
	if r := e.run("run-prepared", uuid); r.code != 3 {
		t.Fatalf("run-prepared: code %d, want 3: %s", r.code, r.err)
	}
	if r := e.run("run-prepared", uuid); r.code == 0 {
		t.Fatal("run-prepared ran a pod twice")
	}
	st := e.status(uuid)
	if st["state"] != "exited" || st["exit_code"] != float64(3) {
		t.Fatalf("status after exit: %v", st)
	}
	if r := e.run("status", uuid); !strings.Contains(r.out, "app-busybox=3") {
		t.Fatalf("status text: %q", r.out)
	}

	// a running pod: list, enter, rm refused, stop
	id, wait := e.start("--net=none", e.aci, "--exec=/bin/sh", "--", "-c", "trap 'exit 0' TERM; echo started; while :; do sleep 0.1; done")
	if st := e.status(id); st["state"] != "running" {
		t.Fatalf("state %v", st)
	}
	r = e.run("list", "--no-legend", "--full")
	if !strings.Contains(r.out, id) || !strings.Contains(r.out, "running") || !strings.Contains(r.out, "exited") {
		t.Fatalf("list: %q", r.out)
	}
	r = e.run("enter", id, "/bin/sh", "-c", "echo $AC_APP_NAME $FROM_IMAGE; hostname")
	if r.code != 0 || r.out != "busybox aci\nrkt-"+id+"\n" {
		t.Fatalf("enter: %d %q %q", r.code, r.out, r.err)
	}
	if r := e.run("rm", id); r.code == 0 || !strings.Contains(r.err, "running") {
		t.Fatalf("rm of a running pod: %d %q", r.code, r.err)
	}
	if r := e.run("stop", id); r.code != 0 {
		t.Fatalf("stop: %d %s", r.code, r.err)
	}
	res := wait()
	if res.code != 0 || !strings.Contains(res.out, "started") {
		t.Fatalf("stopped pod: code %d out %q err %q", res.code, res.out, res.err)
	}
	if r := e.run("rm", id); r.code != 0 {
		t.Fatalf("rm: %d %s", r.code, r.err)
	}
	if r := e.run("status", id); r.code == 0 {
		t.Fatal("status of a removed pod succeeded")
	}
	// gc: mark then sweep
	r = e.run("gc", "--grace-period=0s")
	if r.code != 0 || !strings.Contains(r.out, uuid) {
		t.Fatalf("gc: %d %q %q", r.code, r.out, r.err)
	}
	if r := e.run("status", uuid); r.code == 0 {
		t.Fatal("pod survived gc with no grace period")
	}
	if left := e.podLeftovers(); len(left) > 0 {
		t.Fatalf("leftovers:\n%s", strings.Join(left, "\n"))
	}
}

// A rkt run killed with SIGKILL leaves its apps running (reparented to the host's init), and
// its mounts, namespaces and cgroups: the pod is running, orphaned, with its app's pid in
// place of rkt run's; gc stops the apps and removes all of it.
func TestGCAfterSIGKILL(t *testing.T) {
	e := newEnv(t)
	id, wait := e.start("--net=none", e.aci, "--exec=/bin/sh", "--", "-c", "sleep 1000 & sleep 1000")
	pid := int(e.status(id)["pid"].(float64))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wait()
	st := e.status(id)
	apid, _ := st["pid"].(float64)
	if st["state"] != "running" || apid == 0 || int(apid) == pid {
		t.Fatalf("pod whose rkt run (pid %d) was killed, its app alive: %v; want running with the app's pid", pid, st)
	}
	if cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", int(apid))); err != nil || !strings.Contains(string(cg), "/rkt-"+id+"/busybox") {
		t.Fatalf("pid %d is not the pod's app: %v %s", int(apid), err, cg)
	}
	if r := e.run("status", id); !strings.Contains(r.out, "state=running\n") || !strings.Contains(r.out, fmt.Sprintf("pid=%d\n", int(apid))) || !strings.Contains(r.out, "exited=false\n") {
		t.Fatalf("status text: %q", r.out)
	}
	if r := e.run("rm", id); r.code == 0 || !strings.Contains(r.err, "stop it first") {
		t.Fatalf("rm of an orphaned pod: %d %q", r.code, r.err)
	}
	if left := e.podLeftovers(); len(left) == 0 {
		t.Fatal("a killed rkt run left nothing behind: the leftover check is blind")
	}
	if r := e.run("gc", "--grace-period=0s"); r.code != 0 {
		t.Fatalf("gc: %d %s", r.code, r.err)
	}
	if left := e.podLeftovers(); len(left) > 0 {
		t.Fatalf("leftovers after gc:\n%s", strings.Join(left, "\n"))
	}
	if r := e.run("status", id); r.code == 0 {
		t.Fatalf("pod still there after gc: %q", r.out)
	}
}

// rkt stop of a pod whose rkt run was killed signals the apps itself (they trap SIGTERM and
// exit), waits for them, and leaves an exited pod for gc.
func TestStopOrphanedPod(t *testing.T) {
	e := newEnv(t)
	id, wait := e.start("--net=none", e.aci, "--exec=/bin/sh", "--", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done")
	if err := syscall.Kill(int(e.status(id)["pid"].(float64)), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wait()
	if st := e.status(id); st["state"] != "running" {
		t.Fatalf("orphaned pod: %v", st)
	}
	start := time.Now()
	if r := e.run("stop", id); r.code != 0 || r.out != fmt.Sprintf("%q\n", id) {
		t.Fatalf("stop of an orphaned pod: %d %q %q", r.code, r.out, r.err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stop took %s: the app's SIGTERM trap did not end it", d)
	}
	if st := e.status(id); st["state"] != "exited" {
		t.Fatalf("after stop: %v", st)
	}
	if r := e.run("gc", "--grace-period=0s"); r.code != 0 {
		t.Fatalf("gc: %d %s", r.code, r.err)
	}
	if left := e.podLeftovers(); len(left) > 0 {
		t.Fatalf("leftovers after gc:\n%s", strings.Join(left, "\n"))
	}
	// --force kills an orphaned pod that ignores SIGTERM.
	id, wait = e.start("--net=none", e.aci, "--exec=/bin/sh", "--", "-c", "trap '' TERM; while :; do sleep 0.1; done")
	if err := syscall.Kill(int(e.status(id)["pid"].(float64)), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wait()
	if r := e.run("stop", "--force", id); r.code != 0 {
		t.Fatalf("stop --force: %d %q", r.code, r.err)
	}
	if st := e.status(id); st["state"] != "exited" {
		t.Fatalf("after stop --force: %v", st)
	}
}

func TestFaults(t *testing.T) {
	e := newEnv(t)
	t.Run("missing image", func(t *testing.T) {
		r := e.run("run", "--net=none", "--pull-policy=never", "example.com/no-such-image")
		if r.code != stage1.ExitFailure || !strings.Contains(r.err, "example.com/no-such-image") || !strings.Contains(r.err, "not found") {
			t.Fatalf("code %d stderr %q", r.code, r.err)
		}
	})
	t.Run("bad volume", func(t *testing.T) {
		r := e.run("run", "--net=none", "--volume=data,kind=host", e.aci)
		if r.code != stage1.ExitFailure || !strings.Contains(r.err, "--volume") {
			t.Fatalf("code %d stderr %q", r.code, r.err)
		}
		r = e.run("run", "--net=none", e.aci, "--mount=volume=nope,target=/x")
		if r.code != stage1.ExitFailure || !strings.Contains(r.err, "nope") {
			t.Fatalf("mount of an undeclared volume: code %d stderr %q", r.code, r.err)
		}
	})
	t.Run("exec not found", func(t *testing.T) {
		r := e.run("run", "--net=none", e.aci, "--exec=/bin/no-such-program")
		if r.code != stage1.ExitFailure || !strings.Contains(r.err, "/bin/no-such-program") || !strings.Contains(r.err, "not found") {
			t.Fatalf("code %d stderr %q", r.code, r.err)
		}
	})
	t.Run("killed by signal", func(t *testing.T) {
		id, wait := e.start("--net=none", e.aci, "--exec=/bin/sleep", "--", "1000")
		if r := e.run("stop", "--force", id); r.code != 0 {
			t.Fatalf("stop --force: %d %s", r.code, r.err)
		}
		if r := wait(); r.code != 137 {
			t.Fatalf("rkt run of a SIGKILLed app: %d, want 137", r.code)
		}
		st := e.status(id)
		apps := st["apps"].([]any)
		if a := apps[0].(map[string]any); a["exit_code"] != float64(137) || a["signal"] != "SIGKILL" {
			t.Fatalf("app status %v", a)
		}
	})
	t.Run("oom under --memory", func(t *testing.T) {
		hog := "x=$(head -c 64m /dev/zero | tr '\\0' a); echo survived ${#x}"
		r := e.run("run", "--net=none", "--memory=16Mi", e.aci, "--exec=/bin/sh", "--", "-c",
			"cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "+hog)
		if r.code != 137 || !strings.HasPrefix(r.out, "16777216\n") || strings.Contains(r.out, "survived") {
			t.Fatalf("with a 16Mi limit: code %d out %q err %q, want the limit shown and the app OOM-killed", r.code, r.out, r.err)
		}
		// The same app without the limit completes: the limit, not the app, killed it.
		r = e.run("run", "--net=none", e.aci, "--exec=/bin/sh", "--", "-c", hog)
		if r.code != 0 || !strings.Contains(r.out, "survived 67108864") {
			t.Fatalf("without a limit: code %d out %q", r.code, r.out)
		}
	})
	t.Run("children outlive the app", func(t *testing.T) {
		start := time.Now()
		r := e.run("run", "--net=none", e.aci, "--exec=/bin/sh", "--", "-c", "(sleep 1000 &); (setsid sleep 1000 &); echo forked")
		if r.code != 0 || r.out != "forked\n" {
			t.Fatalf("code %d out %q err %q", r.code, r.out, r.err)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("pod with orphaned children took %v", d)
		}
	})
	t.Run("seccomp and capabilities", func(t *testing.T) {
		r := e.run("run", "--net=none", e.aci, "--exec=/bin/sh", "--", "-c", "unshare -n true 2>&1; mknod /tmp/n c 1 3 2>&1; grep CapBnd /proc/self/status")
		if !strings.Contains(r.out, "Operation not permitted") || !strings.Contains(r.out, "CapBnd:\t0000000020000420") {
			t.Fatalf("default profile: out %q err %q", r.out, r.err)
		}
		r = e.run("run", "--net=none", "--insecure-options=seccomp", e.aci, "--caps-retain=CAP_SYS_ADMIN", "--exec=/bin/sh", "--", "-c", "unshare -n true && echo unshared")
		if r.code != 0 || !strings.Contains(r.out, "unshared") {
			t.Fatalf("without the filter and with CAP_SYS_ADMIN: code %d out %q err %q", r.code, r.out, r.err)
		}
	})
	if left := e.podLeftovers(); len(left) > 0 {
		t.Fatalf("leftovers:\n%s", strings.Join(left, "\n"))
	}
}

func TestMultiAppPodSharesLocalhost(t *testing.T) {
	e := newEnv(t)
	client := `for i in $(seq 50); do wget -q -O - http://127.0.0.1:8080/passwd && hostname && exit 0; sleep 0.1; done; exit 1`
	r := e.run("run", "--net=none", "--hostname=podhost",
		e.aci, "--name=client", "--exec=/bin/sh", "--", "-c", client, "---",
		e.aci, "--name=server", "--exec=/bin/sh", "--", "-c", "httpd -p 127.0.0.1:8080 -h /etc && sleep 2")
	if r.code != 0 || !strings.Contains(r.out, "root:x:0:0") || !strings.HasSuffix(r.out, "podhost\n") {
		t.Fatalf("code %d out %q err %q", r.code, r.out, r.err)
	}
}

func TestVolumesAndCopyFreeRoots(t *testing.T) {
	e := newEnv(t)
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "in"), []byte("from host\n"), 0o644)
	r := e.run("run", "--net=none", "--volume=data,kind=host,source="+host, "--volume=scratch,kind=empty",
		"--volume=ro,kind=host,source="+host+",readOnly=true",
		e.aci, "--mount=volume=scratch,target=/scratch", "--mount=volume=ro,target=/ro", "--exec=/bin/sh", "--", "-c",
		"cat /data/in; echo out > /data/out; echo s > /scratch/s && cat /scratch/s; echo x > /ro/x || echo ro-refused")
	if r.code != 0 || r.out != "from host\ns\nro-refused\n" {
		t.Fatalf("code %d out %q err %q", r.code, r.out, r.err)
	}
	if b, _ := os.ReadFile(filepath.Join(host, "out")); string(b) != "out\n" {
		t.Fatalf("host volume write: %q", b)
	}
	if _, err := os.Stat(filepath.Join(host, "x")); err == nil {
		t.Fatal("write through a read-only volume")
	}
	// The pod's root is an overlay: its upper dir holds only what the pod changed.
	r = e.run("run", "--net=none", "--uuid-file-save="+filepath.Join(host, "uuid"), e.aci, "--exec=/bin/true")
	if r.code != 0 {
		t.Fatal(r.err)
	}
	id, _ := os.ReadFile(filepath.Join(host, "uuid"))
	var size int64
	upper := filepath.Join(e.dir, "pods", "run", strings.TrimSpace(string(id)), "apps", "busybox", "upper")
	n := 0
	filepath.Walk(upper, func(_ string, fi os.FileInfo, err error) error {
		if err == nil {
			size += fi.Size()
			n++
		}
		return nil
	})
	if n == 0 || size > 64<<10 {
		t.Fatalf("upper dir %s: %d entries, %d bytes; want a few small entries (the image is not copied)", upper, n, size)
	}
}

// Pods run in parallel while gc loops: nothing leaks, and gc never touches a running pod.
func TestParallelPodsWithGC(t *testing.T) {
	e := newEnv(t)
	const n = 20
	stop := make(chan struct{})
	gcDone := make(chan string)
	go func() {
		var errs []string
		for {
			select {
			case <-stop:
				gcDone <- strings.Join(errs, "\n")
				return
			default:
			}
			if r := e.run("gc", "--grace-period=0s"); r.code != 0 {
				errs = append(errs, r.err)
			}
		}
	}()
	var wg sync.WaitGroup
	codes := make([]result, n)
	for i := range n {
		wg.Go(func() {
			codes[i] = e.run("run", "--net=none", e.aci, "--exec=/bin/sh", "--", "-c", "sleep 0.$((RANDOM % 5)); exit "+strconv.Itoa(i%3))
		})
	}
	wg.Wait()
	close(stop)
	if errs := <-gcDone; errs != "" {
		t.Errorf("gc failed while pods ran:\n%s", errs)
	}
	for i, r := range codes {
		if r.code != i%3 {
			t.Errorf("pod %d: code %d, want %d: %s", i, r.code, i%3, r.err)
		}
	}
	e.run("gc", "--grace-period=0s")
	e.run("gc", "--grace-period=0s")
	if left := e.podLeftovers(); len(left) > 0 {
		t.Fatalf("leftovers:\n%s", strings.Join(left, "\n"))
	}
	ents, _ := os.ReadDir(filepath.Join(e.dir, "pods", "run"))
	if len(ents) != 0 {
		t.Fatalf("%d pods left in run/ after gc", len(ents))
	}
}

// --interactive gives the app a terminal and the caller's stdin (script(1) provides the tty).
func TestInteractive(t *testing.T) {
	e := newEnv(t)
	script := testenv.RequireCommand(t, "script")
	cmdline := e.rkt + " --dir=" + e.dir + " run --interactive --net=none " + e.aci + " --exec=/bin/sh -- -c 'tty; read line; echo got-$line; exit 5'"
	c := exec.Command(script, "-qec", cmdline, "/dev/null")
	c.Stdin = strings.NewReader("typed\n")
	out, err := c.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != 5 || !strings.Contains(string(out), "/dev/pts/") || !strings.Contains(string(out), "got-typed") {
		t.Fatalf("code %d out %q", code, out)
	}
}

func TestNetHostAndNone(t *testing.T) {
	e := newEnv(t)
	host, _ := filepath.Glob("/sys/class/net/*")
	count := "ls /sys/class/net | wc -l"
	r := e.run("run", "--net=none", e.aci, "--exec=/bin/sh", "--", "-c", count)
	if r.code != 0 || strings.TrimSpace(r.out) != "1" {
		t.Fatalf("--net=none: %d interfaces (%q %q), want only lo", r.code, r.out, r.err)
	}
	r = e.run("run", "--net=host", e.aci, "--exec=/bin/sh", "--", "-c", count)
	if r.code != 0 || strings.TrimSpace(r.out) != strconv.Itoa(len(host)) {
		t.Fatalf("--net=host: %q interfaces, host has %d (%s)", r.out, len(host), r.err)
	}
}

// TestExeCopyWarning: rkt run from a directory that holds the pod's state warns that
// libcontainer copies the binary for each app (it cannot seal it through an overlay); run
// from elsewhere it does not.
func TestExeCopyWarning(t *testing.T) {
	e := newEnv(t)
	const warning = "copies it for every app"
	if r := e.run("run", "--net=none", e.aci); r.code != 0 || strings.Contains(r.err, warning) {
		t.Fatalf("rkt run from %s: rc %d, stderr %q", filepath.Dir(e.rkt), r.code, r.err)
	}
	bin, err := os.ReadFile(e.rkt)
	if err != nil {
		t.Fatal(err)
	}
	inside := filepath.Join(e.dir, "rkt")
	if err := os.WriteFile(inside, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	c := exec.Command(inside, "--dir="+e.dir, "run", "--net=none", e.aci)
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("rkt run from the data directory: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "hello from aci") {
		t.Errorf("the app did not run: stdout %q", stdout.String())
	}
	if n := strings.Count(stderr.String(), warning); n != 1 {
		t.Errorf("%d warnings, want 1: stderr %q", n, stderr.String())
	}
}
