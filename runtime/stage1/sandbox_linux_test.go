package stage1_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/network"
	"github.com/cairn-os/cairn/runtime/podapi"
)

// Root tests of the app-level API: rkt app sandbox in the background, the other verbs as
// rkt commands against it. Every rkt command has a deadline, and the sandbox is killed and
// collected when the test ends, whatever happened.

// rktTimeout bounds one rkt command of these tests: a hung rkt fails its test.
const rktTimeout = 60 * time.Second

// runT runs rkt with a deadline.
func (e *env) runT(args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rktTimeout)
	defer cancel()
	c := exec.CommandContext(ctx, e.rkt, append([]string{"--dir=" + e.dir}, args...)...)
	var out, errb strings.Builder
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	if ctx.Err() != nil {
		e.t.Fatalf("rkt %v: no answer in %s (stderr %q)", args, rktTimeout, errb.String())
	}
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("rkt %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// must runs rkt and fails the test unless it exits 0.
func (e *env) must(args ...string) string {
	e.t.Helper()
	r := e.runT(args...)
	if r.code != 0 {
		e.t.Fatalf("rkt %v: exit %d, stderr %q", args, r.code, r.err)
	}
	return r.out
}

// sandboxProc is a rkt app sandbox running in the background.
type sandboxProc struct {
	e      *env
	uuid   string
	cmd    *exec.Cmd
	stdout string // file names
	stderr string
	done   chan struct{}
	err    error
}

// sandbox starts rkt app sandbox with args and returns once it is ready.
func (e *env) sandbox(args ...string) *sandboxProc {
	e.t.Helper()
	dir := e.t.TempDir()
	uf := filepath.Join(dir, "uuid")
	s := &sandboxProc{e: e, stdout: filepath.Join(dir, "stdout"), stderr: filepath.Join(dir, "stderr"), done: make(chan struct{})}
	s.cmd = e.cmd(append([]string{"app", "sandbox", "--uuid-file-save=" + uf}, args...)...)
	outf, err := os.Create(s.stdout)
	if err != nil {
		e.t.Fatal(err)
	}
	errf, err := os.Create(s.stderr)
	if err != nil {
		e.t.Fatal(err)
	}
	defer outf.Close()
	defer errf.Close()
	s.cmd.Stdout, s.cmd.Stderr = outf, errf
	if err := s.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	e.t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.done
	})
	for deadline := time.Now().Add(20 * time.Second); s.uuid == ""; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(uf)
		s.uuid = strings.TrimSpace(string(b))
		select {
		case <-s.done:
			e.t.Fatalf("rkt app sandbox exited: %v: %s", s.err, s.errText())
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("sandbox did not start: %s", s.errText())
		}
	}
	if r := e.runT("status", "--wait-ready=20s", s.uuid); r.code != 0 {
		e.t.Fatalf("status --wait-ready: %d %s %s", r.code, r.err, s.errText())
	}
	return s
}

func (s *sandboxProc) errText() string { b, _ := os.ReadFile(s.stderr); return string(b) }

// waitOutput waits until the apps' output on the sandbox's stdout has text.
func (s *sandboxProc) waitOutput(t *testing.T, text string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(s.outText(), text); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the apps' output never had %q: %q", text, s.outText())
		}
	}
}
func (s *sandboxProc) outText() string { b, _ := os.ReadFile(s.stdout); return string(b) }

// wait waits for the sandbox to exit and returns its exit code.
func (s *sandboxProc) wait() int {
	s.e.t.Helper()
	select {
	case <-s.done:
	case <-time.After(rktTimeout):
		s.e.t.Fatalf("rkt app sandbox did not exit: %s", s.errText())
	}
	if ee, ok := errors.AsType[*exec.ExitError](s.err); ok {
		return ee.ExitCode()
	}
	if s.err != nil {
		s.e.t.Fatal(s.err)
	}
	return 0
}

// appStatus is rkt app status --format=json of an app.
func (e *env) appStatus(uuid, app string) map[string]any {
	e.t.Helper()
	out := e.must("app", "status", uuid, "--app="+app, "--format=json")
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		e.t.Fatalf("app status json %q: %v", out, err)
	}
	return m
}

// waitApp waits until the app is in state.
func (e *env) waitApp(uuid, app, state string) map[string]any {
	e.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st := e.appStatus(uuid, app)
		if st["state"] == state {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("app %s never %s: %v", app, state, st)
		}
	}
}

func (e *env) podDir(uuid string) string { return filepath.Join(e.dir, "pods", "run", uuid) }

// manifestApps lists the apps in the pod manifest on disk.
func (e *env) manifestApps(uuid string) []string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.podDir(uuid), "pod"))
	if err != nil {
		e.t.Fatal(err)
	}
	var m schema.PodManifest
	if err := json.Unmarshal(b, &m); err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, ra := range m.Apps {
		names = append(names, string(ra.Name))
	}
	slices.Sort(names)
	return names
}

// Every verb: a sandbox with no apps; apps added (created, their roots and containers made
// but not run), started, exiting by themselves with their reasons, stopped, removed; the
// pod's /etc/hosts, host name, resolv.conf and volumes in an added app, as rkt run's apps
// have them; enter; list and status of the pod; rkt stop of the sandbox stops its apps.
func TestAppVerbs(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox("--net=none", "--hostname=sbhost", "--hosts-entry=10.9.8.7=db.example", "--dns=192.0.2.53", "--stop-timeout=3s",
		"--user-label=tier=test")
	id := sb.uuid
	if st := e.status(id); st["state"] != "running" || st["app_names"] != nil {
		t.Fatalf("a sandbox without apps: %v", st)
	}
	if out := e.must("app", "list", id); out != "NAME\tSTATE\n" {
		t.Fatalf("app list of an empty sandbox: %q", out)
	}

	// A failed add leaves nothing: not in the manifest, no directory.
	if r := e.runT("app", "add", id, e.aci, "--exec=/bin/nope"); r.code == 0 || !strings.Contains(r.err, "/bin/nope") {
		t.Fatalf("add of a missing command: %d %q", r.code, r.err)
	}
	if r := e.runT("app", "add", id, "example.com/not-in-store"); r.code == 0 || !strings.Contains(r.err, "not-in-store") {
		t.Fatalf("add of an image not in the store: %d %q", r.code, r.err)
	}

	vol := t.TempDir()
	os.WriteFile(filepath.Join(vol, "in"), []byte("from host\n"), 0o644)
	e.must("app", "add", id, e.aci, "--name=hello", "--mnt-volume=name=hv,kind=host,source="+vol+",target=/hv",
		"--environment=GREETING=hi", "--exec=/bin/sh", "--", "-c",
		`echo $GREETING $FROM_IMAGE; hostname; grep db.example /etc/hosts; cat /etc/resolv.conf | grep nameserver; cat /hv/in; echo made > /data/x && cat /data/x; echo to-stderr >&2; exit 3`)
	st := e.appStatus(id, "hello")
	if st["state"] != "created" || st["started_at"] != nil || st["created_at"] == nil {
		t.Fatalf("added app: %v", st)
	}
	if r := e.runT("app", "add", id, e.aci, "--name=hello"); r.code == 0 || !strings.Contains(r.err, "hello") {
		t.Fatalf("a second app named hello: %d %q", r.code, r.err)
	}
	if got := e.manifestApps(id); !slices.Equal(got, []string{"hello"}) {
		t.Fatalf("manifest apps %v", got)
	}
	e.must("app", "start", id, "--app=hello")
	st = e.waitApp(id, "hello", "exited")
	if st["exit_code"] != float64(3) || st["reason"] != "Error" || st["started_at"] == nil || st["finished_at"] == nil {
		t.Fatalf("exited app: %v", st)
	}
	want := "hi aci\nsbhost\n10.9.8.7\tdb.example\nnameserver 192.0.2.53\nfrom host\nmade\n"
	sb.waitOutput(t, want)
	if got := sb.outText(); got != want {
		t.Fatalf("the app's output on the sandbox's stdout: %q, want %q", got, want)
	}
	if !strings.Contains(sb.errText(), "to-stderr\n") {
		t.Fatalf("stderr: %q", sb.errText())
	}
	if r := e.runT("app", "start", id, "--app=hello"); r.code == 0 || !strings.Contains(r.err, "exited") {
		t.Fatalf("start of an exited app: %d %q", r.code, r.err)
	}
	text := e.must("app", "status", id, "--app=hello")
	for _, line := range []string{"name=hello\n", "state=exited\n", "exit_code=3\n", "reason=Error\n", "mounts=" + vol + ":/hv:(read_only:false)"} {
		if !strings.Contains(text, line) {
			t.Errorf("app status text %q lacks %q", text, line)
		}
	}

	// An app that completes, one that runs until stopped, one killed by its memory limit.
	e.must("app", "add", id, e.aci, "--name=ok", "--exec=/bin/true")
	e.must("app", "start", id, "--app=ok")
	if st := e.waitApp(id, "ok", "exited"); st["exit_code"] != float64(0) || st["reason"] != "Completed" {
		t.Fatalf("completed app: %v", st)
	}
	e.must("app", "add", id, e.aci, "--name=server", "--user-annotation=role=web", "--exec=/bin/sh", "--", "-c",
		"trap 'echo got-term; exit 0' TERM; echo server-ready; while :; do sleep 0.1; done")
	e.must("app", "start", id, "--app=server")
	st = e.waitApp(id, "server", "running")
	sb.waitOutput(t, "server-ready\n")         // its trap is set
	e.must("app", "start", id, "--app=server") // starting a running app does nothing
	if pid, _ := st["pid"].(float64); pid <= 0 {
		t.Fatalf("running app without its pid: %v", st)
	}
	if r := e.runT("enter", "--app=server", id, "/bin/sh", "-c", "hostname; echo $AC_APP_NAME"); r.code != 0 || r.out != "sbhost\nserver\n" {
		t.Fatalf("enter an app of a sandbox: %d %q %q", r.code, r.out, r.err)
	}
	list := e.must("list", "--no-legend")
	if !strings.Contains(list, "server") || !strings.Contains(list, "hello") || !strings.Contains(list, id[:8]) {
		t.Fatalf("rkt list: %q", list)
	}
	if out := e.must("app", "list", id, "--no-legend"); out != "hello\texited\nok\texited\nserver\trunning\n" {
		t.Fatalf("app list: %q", out)
	}
	var apps []map[string]any
	if err := json.Unmarshal([]byte(e.must("app", "list", id, "--format=json")), &apps); err != nil || len(apps) != 3 {
		t.Fatalf("app list json: %v %v", apps, err)
	}
	start := time.Now()
	e.must("app", "stop", id, "--app=server")
	st = e.appStatus(id, "server")
	if st["state"] != "exited" || st["exit_code"] != float64(0) || time.Since(start) > 3*time.Second {
		t.Fatalf("stopped app (trapping TERM) after %s: %v", time.Since(start), st)
	}
	e.must("app", "stop", id, "--app=server") // idempotent
	hog := "x=$(head -c 64m /dev/zero | tr '\\0' a); echo survived ${#x}"
	e.must("app", "add", id, e.aci, "--name=hog", "--memory=16Mi", "--exec=/bin/sh", "--", "-c", hog)
	e.must("app", "start", id, "--app=hog")
	if st := e.waitApp(id, "hog", "exited"); st["reason"] != "OOMKilled" {
		t.Fatalf("app over its memory limit: %v", st)
	}

	// rm: the app, its root, mounts, container and cgroup go; its log stays.
	e.must("app", "add", id, e.aci, "--name=waiting", "--exec=/bin/sleep", "--", "1000") // never started
	for _, app := range []string{"hello", "ok", "server", "hog", "waiting"} {
		e.must("app", "rm", id, "--app="+app)
	}
	if got := e.manifestApps(id); len(got) != 0 {
		t.Fatalf("manifest apps after rm: %v", got)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.podDir(id), "apps")); len(ents) != 0 {
		t.Fatalf("app directories left: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(e.podDir(id), "logs", "hello.log")); err != nil {
		t.Fatalf("the log of a removed app: %v", err)
	}
	if r := e.runT("app", "rm", id, "--app=hello"); r.code == 0 {
		t.Fatal("rm of a removed app")
	}
	if left := appLeftovers(e, id); len(left) > 0 {
		t.Fatalf("after rm of every app:\n%s", strings.Join(left, "\n"))
	}

	// Not a sandbox: rkt run's pods have no app-level API, but list and status read them.
	runID, waitRun := e.start("--net=none", e.aci, "--exec=/bin/sleep", "--", "1000")
	t.Cleanup(func() { e.run("stop", "--force", runID) })
	if r := e.runT("app", "add", runID, e.aci); r.code == 0 || !strings.Contains(r.err, "not a sandbox") {
		t.Fatalf("app add to a pod of rkt run: %d %q", r.code, r.err)
	}
	if out := e.must("app", "list", runID, "--no-legend"); out != "busybox\trunning\n" {
		t.Fatalf("app list of rkt run's pod: %q", out)
	}

	// rkt stop of the sandbox: its apps get SIGTERM, it exits 0, gc leaves nothing.
	e.must("app", "add", id, e.aci, "--name=last", "--exec=/bin/sh", "--", "-c", "echo kept > /kept; trap 'echo last-term; exit 0' TERM; echo last-ready; while :; do sleep 0.1; done")
	e.must("app", "start", id, "--app=last")
	sb.waitOutput(t, "last-ready\n")
	if r := e.runT("rm", id); r.code == 0 || !strings.Contains(r.err, "running") {
		t.Fatalf("rm of a running sandbox: %d %q", r.code, r.err)
	}
	e.must("stop", id)
	if code := sb.wait(); code != 0 {
		t.Fatalf("sandbox exit code %d: %s", code, sb.errText())
	}
	if !strings.Contains(sb.outText(), "last-term") {
		t.Fatalf("the app did not see SIGTERM: %q", sb.outText())
	}
	if st := e.status(id); st["state"] != "exited" {
		t.Fatalf("stopped sandbox: %v", st)
	}
	if st := e.appStatus(id, "last"); st["state"] != "exited" || st["exit_code"] != float64(0) {
		t.Fatalf("its app: %v", st)
	}
	if r := e.runT("app", "stop", id, "--app=last"); r.code != 0 || !strings.Contains(r.out, "already stopped") {
		t.Fatalf("app stop in a stopped pod: %d %q %q", r.code, r.out, r.err)
	}
	if out := e.must("status", id); !strings.Contains(out, "app-last=0\n") {
		t.Fatalf("status of the stopped sandbox: %q", out)
	}
	aci := filepath.Join(t.TempDir(), "last.aci")
	e.must("export", "--app=last", id, aci)
	if fi, err := os.Stat(aci); err != nil || fi.Size() == 0 {
		t.Fatalf("export of a sandbox's app: %v", err)
	}
	e.must("rm", id)
	e.run("stop", "--force", runID)
	waitRun() // rkt run takes its pod down
	e.must("gc", "--grace-period=0s")
	if left := e.podLeftovers(); len(left) > 0 {
		t.Fatalf("leftovers after gc:\n%s", strings.Join(left, "\n"))
	}
}

// appLeftovers lists what removed apps of pod id left: mounts under its apps directory and
// cgroups of apps below the pod's.
func appLeftovers(e *env, id string) []string {
	var left []string
	mi, _ := os.ReadFile("/proc/thread-self/mountinfo")
	for l := range strings.SplitSeq(string(mi), "\n") {
		if strings.Contains(l, filepath.Join(e.podDir(id), "apps")+"/") || strings.Contains(l, "libcontainer") && strings.Contains(l, id) {
			left = append(left, "mount "+l)
		}
	}
	// The pod's cgroup in each hierarchy is beneath this process's own (v1).
	own, _ := os.ReadFile("/proc/self/cgroup")
	for line := range strings.SplitSeq(strings.TrimSpace(string(own)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || parts[1] == "" {
			continue
		}
		h := strings.TrimPrefix(strings.Split(parts[1], ",")[0], "name=")
		apps, _ := os.ReadDir(filepath.Join("/sys/fs/cgroup", h, parts[2], "rkt-"+id))
		for _, a := range apps {
			if a.IsDir() {
				left = append(left, "cgroup "+filepath.Join("/sys/fs/cgroup", h, parts[2], "rkt-"+id, a.Name()))
			}
		}
	}
	return left
}

// Attach to an app's stdin and stdout through a pipe (a line to cat comes back), detach with
// the app going on, and to an app's tty from a terminal: the app sees a pty, its size is
// the terminal's and follows it, keys go in raw.
func TestAttach(t *testing.T) {
	e := newEnv(t)
	id := e.sandbox("--net=none").uuid

	e.must("app", "add", id, e.aci, "--name=cat", "--stdin=stream", "--exec=/bin/cat")
	e.must("app", "start", id, "--app=cat")
	if out := e.must("attach", "--app=cat", "--mode=list", id); out != "stdin\nstdout\nstderr\n" {
		t.Fatalf("--mode=list: %q", out)
	}
	for round := range 2 { // the second attach finds the app as the first left it
		c := e.cmd("attach", "--app=cat", "--mode=stdin,stdout", id)
		in, _ := c.StdinPipe()
		outp, _ := c.StdoutPipe()
		var errb strings.Builder
		c.Stderr = &errb
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		line := fmt.Sprintf("hello %d\n", round)
		got := make(chan string, 1)
		go func() {
			l, _ := bufio.NewReader(outp).ReadString('\n')
			got <- l
		}()
		// The attach may not be connected yet when the first line is written: it is sent
		// once it is, as stdin is read only then.
		io.WriteString(in, line)
		select {
		case l := <-got:
			if l != line {
				t.Fatalf("round %d: read back %q, want %q (stderr %q)", round, l, line, errb.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: nothing came back (stderr %q)", round, errb.String())
		}
		// Detach: rkt attach ends on SIGTERM, the app goes on.
		c.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("rkt attach after SIGTERM: %v %s", err, errb.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatal("rkt attach did not end on SIGTERM")
		}
		if st := e.appStatus(id, "cat"); st["state"] != "running" {
			t.Fatalf("the app after a detach: %v", st)
		}
	}
	if r := e.runT("attach", "--app=cat", "--mode=tty", id); r.code == 0 || !strings.Contains(r.err, "no tty") {
		t.Fatalf("--mode=tty on an app without one: %d %q", r.code, r.err)
	}

	// A tty app waits for a line, then shows its terminal and its size, and its size again
	// when the window changes.
	e.must("app", "add", id, e.aci, "--name=term", "--stdin=tty", "--exec=/bin/sh", "--", "-c",
		"read line; tty; stty size; echo got-$line; trap 'stty size; exit 4' WINCH; echo ready; while :; do sleep 0.1; done")
	e.must("app", "start", id, "--app=term")
	if out := e.must("attach", "--app=term", "--mode=list", id); out != "tty\n" {
		t.Fatalf("--mode=list of a tty app: %q", out)
	}
	o := startOnTerminal(t, e.cmd("attach", "--app=term", id), 37, 101, nil)
	// Typed until the attach is connected: the app reads the first line that reaches it.
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(o.out.String(), "got-"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the app never read a line; terminal shows %q", o.out.String())
		}
		o.master.Write([]byte("typed\r"))
	}
	o.waitFor("ready")
	out := o.out.String()
	if !regexp.MustCompile(`/dev/pts/\d+\r\n37 101\r\ngot-typed\r\n`).MatchString(out) {
		t.Fatalf("terminal shows %q: want the app's pty, its size 37 101, the line typed", out)
	}
	o.resize(50, 132)
	code, out := o.wait()
	if code != 0 || !strings.Contains(out, "50 132\r\n") {
		t.Fatalf("after a resize to 50x132: rkt attach exit %d, terminal shows %q", code, out)
	}
	if st := e.waitApp(id, "term", "exited"); st["exit_code"] != float64(4) {
		t.Fatalf("tty app: %v", st)
	}
}

var criLine = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)) (stdout|stderr) ([FP]) (.*)$`)

// logLines reads a CRI-format log: each line's stream, tag and content, in order.
func logLines(t *testing.T, path string) [][3]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][3]string
	var last time.Time
	for l := range strings.SplitSeq(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" && len(b) == 0 {
			break
		}
		m := criLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("%s: line %q is not in the CRI format", path, l)
		}
		ts, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil || ts.Before(last) {
			t.Fatalf("%s: time %q: %v (previous %s)", path, m[1], err, last)
		}
		last = ts
		out = append(out, [3]string{m[4], m[5], m[6]})
	}
	return out
}

// An app's output in its log, in the CRI format: stdout and stderr apart, full lines F, a
// line longer than the limit cut into P pieces, the last bytes without a newline P; moved
// away and reopened (SIGUSR1, or a reopenLogs request), the log goes on in a new file with
// no line lost or repeated.
func TestAppLogs(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox("--net=none")
	id := sb.uuid
	logPath := filepath.Join(t.TempDir(), "logs", "talker.log")
	e.must("app", "add", id, e.aci, "--name=talker", "--log-path="+logPath, "--exec=/bin/sh", "--", "-c",
		`echo out-1; echo err-1 >&2; head -c 40000 /dev/zero | tr '\0' x; echo; printf tail-without-newline`)
	e.must("app", "start", id, "--app=talker")
	e.waitApp(id, "talker", "exited")
	var got [][3]string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got = logLines(t, logPath)
		if len(got) >= 7 || time.Now().After(deadline) {
			break
		}
	}
	x := strings.Repeat("x", 16<<10)
	want := [][3]string{
		{"stdout", "F", "out-1"},
		{"stderr", "F", "err-1"},
		{"stdout", "P", x},
		{"stdout", "P", x},
		{"stdout", "F", strings.Repeat("x", 40000-2*(16<<10))},
		{"stdout", "P", "tail-without-newline"},
	}
	// stdout and stderr are read apart: keep each stream's order, not their interleaving.
	stream := func(lines [][3]string, s string) [][3]string {
		return slices.DeleteFunc(slices.Clone(lines), func(l [3]string) bool { return l[0] != s })
	}
	for _, s := range []string{"stdout", "stderr"} {
		if g, w := stream(got, s), stream(want, s); !slices.Equal(g, w) {
			t.Fatalf("%s lines: %d, want %d:\n%.300v", s, len(g), len(w), g)
		}
	}

	// Rotation: a counter app; its log moved and reopened twice, by SIGUSR1 and by request.
	counter := filepath.Join(t.TempDir(), "counter.log")
	e.must("app", "add", id, e.aci, "--name=counter", "--log-path="+counter, "--exec=/bin/sh", "--", "-c",
		`i=0; while [ $i -lt 120 ]; do echo n-$i; i=$((i+1)); sleep 0.01; done`)
	e.must("app", "start", id, "--app=counter")
	waitLines := func(path string, n int) {
		count := func() int {
			if _, err := os.Stat(path); err != nil {
				return 0 // not reopened yet
			}
			return len(logLines(t, path))
		}
		for deadline := time.Now().Add(20 * time.Second); count() < n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s has fewer than %d lines", path, n)
			}
		}
	}
	waitLines(counter, 20)
	if err := os.Rename(counter, counter+".1"); err != nil {
		t.Fatal(err)
	}
	if err := sb.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitLines(counter, 20)
	if err := os.Rename(counter, counter+".2"); err != nil {
		t.Fatal(err)
	}
	c := &podapi.Client{PodDir: e.podDir(id)}
	if err := c.ReopenLogs(context.Background(), "counter"); err != nil {
		t.Fatal(err)
	}
	e.waitApp(id, "counter", "exited")
	var all []string
	for _, f := range []string{counter + ".1", counter + ".2", counter} {
		lines := logLines(t, f)
		if len(lines) == 0 {
			t.Fatalf("%s is empty", f)
		}
		for _, l := range lines {
			all = append(all, l[2])
		}
	}
	if len(all) != 120 {
		t.Fatalf("%d lines over the three files, want 120", len(all))
	}
	for i, l := range all {
		if l != fmt.Sprintf("n-%d", i) {
			t.Fatalf("line %d is %q: lost or repeated across the rotations", i, l)
		}
	}
	if err := c.ReopenLogs(context.Background(), "nosuchapp"); !errors.Is(err, podapi.ErrNotFound) {
		t.Fatalf("reopen of an unknown app: %v", err)
	}
}

// 20 apps added and started at once into one sandbox, then removed at once: the pod is as
// it was, the sandbox answers, and nothing of the apps is left.
func TestSandboxConcurrency(t *testing.T) {
	e := newEnv(t)
	id := e.sandbox("--net=none").uuid
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan string, 2*n)
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprintf("app%d", i)
			if r := e.runT("app", "add", id, e.aci, "--name="+name, "--exec=/bin/sleep", "--", "1000"); r.code != 0 {
				errs <- fmt.Sprintf("add %s: %d %s", name, r.code, r.err)
				return
			}
			if r := e.runT("app", "start", id, "--app="+name); r.code != 0 {
				errs <- fmt.Sprintf("start %s: %d %s", name, r.code, r.err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("app%d", i))
	}
	slices.Sort(names)
	if got := e.manifestApps(id); !slices.Equal(got, names) {
		t.Fatalf("manifest after %d adds: %v", n, got)
	}
	for _, name := range names {
		if st := e.appStatus(id, name); st["state"] != "running" {
			t.Fatalf("%s: %v", name, st)
		}
	}
	errs = make(chan string, n)
	for _, name := range names {
		wg.Go(func() {
			if r := e.runT("app", "rm", id, "--app="+name, "--timeout=0s"); r.code != 0 {
				errs <- fmt.Sprintf("rm %s: %d %s", name, r.code, r.err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := e.manifestApps(id); len(got) != 0 {
		t.Fatalf("manifest after removing every app: %v", got)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.podDir(id), "apps")); len(ents) != 0 {
		t.Fatalf("app directories left: %d", len(ents))
	}
	if ents, _ := os.ReadDir(filepath.Join(e.podDir(id), "libcontainer")); len(ents) != 0 {
		t.Fatalf("containers left: %d", len(ents))
	}
	if left := appLeftovers(e, id); len(left) > 0 {
		t.Fatalf("left by removed apps:\n%s", strings.Join(left, "\n"))
	}
	// Still running and answering.
	if st := e.status(id); st["state"] != "running" {
		t.Fatalf("sandbox after the removes: %v", st)
	}
	e.must("app", "add", id, e.aci, "--name=after", "--exec=/bin/true")
	e.must("app", "start", id, "--app=after")
	if st := e.waitApp(id, "after", "exited"); st["reason"] != "Completed" {
		t.Fatalf("an app added after: %v", st)
	}
}

// A sandbox on a CNI network, in a network and mount namespace of its own that stands for
// the host (as TestPodNetworks): an app added later serves through the sandbox's port
// forward and has the pod's address; then the supervisor is killed with SIGKILL while the app
// runs, and rkt gc, run from another network namespace, leaves nothing: no mounts, cgroups,
// processes, links, leases, nat or masquerade rules.
func TestSandboxNetworks(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "iptables")
	for _, p := range []string{"ptp", "host-local", "portmap", "loopback"} {
		testenv.RequireFile(t, "/usr/lib/cni/"+p)
	}
	rktBinary(t) // once, here, rather than in the namespace
	env := []string{netHostEnv + "=sandbox"}
	if os.Getenv("CAIRN_BIN") == "" {
		env = append(env, "CAIRN_BIN="+filepath.Dir(rktPath))
	}
	t.Logf("%s", testenv.InPrivateHost(t, "TestSandboxNetworksInHost", env...))
}

// TestSandboxNetworksInHost is the inner half of TestSandboxNetworks.
func TestSandboxNetworksInHost(t *testing.T) {
	if os.Getenv(netHostEnv) != "sandbox" {
		t.Skip("runs only inside TestSandboxNetworks' namespaces")
	}
	testenv.SetUpPrivateHost(t, "/var/lib/cni", "/run/flannel")
	n := &netEnv{env: newEnv(t), conf: t.TempDir()}
	os.MkdirAll(filepath.Join(n.conf, "net.d"), 0o755)
	web := webImage(t, n)
	// One pod with a port forward first: portmap makes some chains once and keeps them.
	if r := n.runT(append([]string{"run"}, n.podArgs("--net=default", "--port=http:9000", web, "--exec=/bin/true")...)...); r.code != 0 {
		t.Fatalf("warm-up pod: %d %s", r.code, r.err)
	}
	before := hostNetLeftovers(t)
	sb := n.sandbox(n.podArgs("--net=default", "--port=http:tcp:80:0.0.0.0:8899")...)
	id := sb.uuid
	rule := "rkt-" + id + " default eth0"
	if rules, err := network.MasqRules(); err != nil || !slices.Contains(rules, rule) {
		t.Fatalf("masquerade rules %q, %v; want %q", rules, err, rule)
	}
	ip := n.ip(id, "default")
	n.must(n.podArgs("app", "add", id, web, "--name=web")...)
	n.must("app", "start", id, "--app=web")
	if body, err := testenv.HTTPGet(context.Background(), "http://127.0.0.1:8899/"); err != nil || body != "hello from the pod\n" {
		t.Fatalf("GET through the sandbox's port forward: %q %v", body, err)
	}
	if r := n.runT("enter", "--app=web", id, "/bin/sh", "-c", "ip -o -4 addr show eth0"); r.code != 0 || !strings.Contains(r.out, "inet "+ip+"/") {
		t.Fatalf("the added app's address: %d %q %q, want %s", r.code, r.out, r.err, ip)
	}

	pid := int(n.status(id)["pid"].(float64))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	sb.wait()
	st := n.status(id)
	if apid, _ := st["pid"].(float64); st["state"] != "running" || apid == 0 || int(apid) == pid {
		t.Fatalf("sandbox whose supervisor (pid %d) was killed, its app alive: %v; want running with the app's pid", pid, st)
	}
	if r := n.runT("app", "add", id, n.aci); r.code == 0 || !strings.Contains(r.err, "supervisor is gone") {
		t.Fatalf("add to an orphaned sandbox: %d %q", r.code, r.err)
	}
	if left := n.podLeftovers(); len(left) == 0 {
		t.Fatal("a killed supervisor left nothing behind: the leftover check is blind")
	}
	gc := exec.Command("unshare", "--net", n.rkt, "--dir="+n.dir, "gc", "--grace-period=0s")
	if out, err := gc.CombinedOutput(); err != nil {
		t.Fatalf("gc from another network namespace: %v\n%s", err, out)
	}
	if rules, _ := network.MasqRules(); slices.Contains(rules, rule) {
		t.Fatalf("masquerade rule %q left after gc", rule)
	}
	if nat, _ := exec.Command("iptables", "-t", "nat", "-S").Output(); strings.Contains(string(nat), id) {
		t.Fatalf("nat rules of the pod left:\n%s", nat)
	}
	if left := n.pods(); len(left) > 0 {
		t.Fatalf("pods left after gc: %v", left)
	}
	if left := n.podLeftovers(); len(left) > 0 {
		t.Fatalf("left on the host:\n%s", strings.Join(left, "\n"))
	}
	if after, ok := sameLeftovers(t, before); !ok {
		t.Fatalf("leaked: before %s, after %s", before, after)
	}
}

// A sandbox's cgroup goes under the cgroup parent it is given (the CRI's CgroupParent):
// absolute from each hierarchy's root, or relative to rkt's own cgroup; each app has its own
// cgroup under the pod's, and gc removes the pod's.
func TestSandboxCgroupParent(t *testing.T) {
	e := newEnv(t)
	parent := fmt.Sprintf("/cairn-test-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + parent)
		for _, d := range dirs {
			syscall.Rmdir(d)
		}
	})
	for _, p := range []string{parent, "pods"} {
		sb := e.sandbox("--net=none", "--stop-timeout=1s", "--cgroup-parent="+p)
		id := sb.uuid
		e.must("app", "add", id, e.aci, "--name=sleeper", "--exec=/bin/sleep", "--", "1000")
		e.must("app", "start", id, "--app=sleeper")
		pid := int(e.waitApp(id, "sleeper", "running")["pid"].(float64))
		cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if err != nil {
			t.Fatal(err)
		}
		want := p + "/rkt-" + id + "/sleeper\n"
		if !strings.HasPrefix(p, "/") {
			want = "/" + want // under rkt's own cgroup, whatever it is
		}
		mem := ""
		for l := range strings.SplitSeq(string(cg), "\n") {
			if strings.Contains(l, ":memory:") || strings.HasPrefix(l, "0::") && mem == "" {
				mem = l + "\n"
			}
		}
		if !strings.HasSuffix(mem, want) || strings.HasPrefix(p, "/") && !strings.HasSuffix(mem, ":"+want) {
			t.Fatalf("--cgroup-parent=%s: the app's cgroup %q, want it to end in %q", p, mem, want)
		}
		e.must("stop", id)
		sb.wait()
		e.must("gc", "--grace-period=0s")
		if left, _ := filepath.Glob("/sys/fs/cgroup/*" + parent + "/rkt-" + id); len(left) > 0 {
			t.Fatalf("cgroups left: %v", left)
		}
		if left := e.podLeftovers(); len(left) > 0 {
			t.Fatalf("leftovers:\n%s", strings.Join(left, "\n"))
		}
	}
}
