package rktdocs

import (
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/fixture"
)

const (
	// toolsEnv and rktEnv pass the directory of actool and the stand-ins, and the rkt binary, to
	// the inner test.
	toolsEnv = "CAIRN_RKTDOCS_TOOLS"
	rktEnv   = "CAIRN_RKTDOCS_RKT"
	// caseDeadline bounds each case, whatever it waits for: its commands are killed at the
	// deadline and its pods collected, so that a hung pod cannot hang a shared test run.
	caseDeadline = 2 * time.Minute
	// cleanupDeadline bounds the stop and gc that follow each case.
	cleanupDeadline = time.Minute
)

// TestDocReplay replays rkt's documented examples (see the package comment and inventory_test.go)
// in a network and mount namespace of its own that stands for the host.
func TestDocReplay(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireFile(t, fixture.BusyboxPath)
	for _, c := range []string{"umoci", "gpg", "script", "ip", "unshare", "find", "tar"} {
		testenv.RequireCommand(t, c)
	}
	for _, p := range []string{"ptp", "bridge", "host-local", "loopback", "portmap"} {
		testenv.RequireFile(t, "/usr/lib/cni/"+p)
	}
	tools := t.TempDir()
	rkt := filepath.Join(tools, "rkt")
	if d := os.Getenv("CAIRN_BIN"); d != "" {
		rkt = filepath.Join(d, "rkt")
		requireSeccomp(t, rkt)
	} else {
		goBuild(t, rkt, "github.com/cairn-os/cairn/runtime/cmd/rkt", "-tags", "seccomp")
		// rkt executes it, from beside itself, for fetch and trust.
		goBuild(t, filepath.Join(tools, "rkt-fetch"), "github.com/cairn-os/cairn/runtime/cmd/rkt-fetch", "-tags", "seccomp")
	}
	goBuild(t, filepath.Join(tools, "actool"), "github.com/appc/spec/actool")
	images := filepath.Join(tools, "images")
	if err := os.Mkdir(images, 0o755); err != nil {
		t.Fatal(err)
	}
	buildStandIns(t, filepath.Join(tools, "actool"), images)
	out := testenv.InPrivateHost(t, "TestDocReplayInHost", toolsEnv+"="+tools, rktEnv+"="+rkt)
	// The inner test's summary, without its file:line prefixes.
	summary := regexp.MustCompile(`^\s*\S+\.go:\d+: (rkt's documented examples: .*|\S+: intended difference .*)$`)
	for l := range strings.SplitSeq(out, "\n") {
		if m := summary.FindStringSubmatch(l); m != nil {
			t.Log(m[1])
		}
	}
}

// goBuild builds the command pkg into out.
func goBuild(t *testing.T, out, pkg string, flags ...string) {
	t.Helper()
	args := append(append([]string{"build", "-o", out}, flags...), pkg)
	if b, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// requireSeccomp refuses a rkt built without seccomp support: it would not run apps with the
// default filter.
func requireSeccomp(t *testing.T, rkt string) {
	t.Helper()
	bi, err := buildinfo.ReadFile(rkt)
	if err != nil {
		t.Fatalf("CAIRN_BIN: %v", err)
	}
	for _, s := range bi.Settings {
		if s.Key == "-tags" && slices.Contains(strings.Split(s.Value, ","), "seccomp") {
			return
		}
	}
	t.Fatalf("%s was built without -tags seccomp", rkt)
}

// TestDocReplayInHost is the inner half of TestDocReplay: it runs every case of the inventory.
func TestDocReplayInHost(t *testing.T) {
	tools := os.Getenv(toolsEnv)
	if tools == "" {
		t.Skip("runs only inside TestDocReplay's namespaces")
	}
	testenv.SetUpPrivateHost(t, "/var/lib/cni")
	// The paths the examples write to (/etc/rkt, /usr/lib/rkt, /srv, /opt, /run) are overlays
	// whose changes die with this mount namespace.
	for _, d := range []string{"/etc", "/usr/lib", "/srv", "/opt", "/run"} {
		privateOverlay(t, d)
	}
	r := newReplay(t, tools)
	outcomes := map[string]*outcome{}
	for _, name := range caseNames() {
		fn := cases[name]
		if fn == nil {
			t.Errorf("case %s: not written", name)
			continue
		}
		o := &outcome{}
		outcomes[name] = o
		t.Run(name, func(t *testing.T) {
			c := r.newCase(t)
			// Registered first, so it runs last: after the cleanup, which may fail the case.
			defer func() { o.passed, o.skipped, o.diffs = !t.Failed() && !t.Skipped(), t.Skipped(), c.diffs }()
			defer c.cleanup()
			fn(c)
			for _, stop := range c.stops {
				stop()
			}
		})
	}
	n := countExamples(outcomes)
	t.Logf("rkt's documented examples: %d rkt commands and files, %d runnable offline, %d pass, %d of them through an intended difference listed in README.md; %d skipped (a prerequisite missing here)",
		n.examples, n.offline, n.pass, n.intended, n.skipped)
	for _, name := range caseNames() {
		if o := outcomes[name]; o != nil && len(o.diffs) > 0 {
			t.Logf("%s: intended difference %s", name, strings.Join(o.diffs, ", "))
		}
	}
}

// TestCases checks that the inventory's cases and the written ones are the same.
func TestCases(t *testing.T) {
	names := caseNames()
	for _, n := range names {
		if cases[n] == nil {
			t.Errorf("the inventory names case %s, which is not written", n)
		}
	}
	for n := range cases {
		if !slices.Contains(names, n) {
			t.Errorf("case %s runs no example of the inventory", n)
		}
	}
}

// privateOverlay mounts an overlay over dir whose upper layer is a temporary directory.
func privateOverlay(t *testing.T, dir string) {
	t.Helper()
	tmp := t.TempDir()
	upper, work := filepath.Join(tmp, "upper"), filepath.Join(tmp, "work")
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := "lowerdir=" + dir + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", dir, "overlay", 0, opts); err != nil {
		t.Fatalf("private overlay over %s: %v", dir, err)
	}
}

// replay is what the cases share: the binary, the stand-ins and the store they were fetched into.
type replay struct {
	rkt    string
	tools  string
	images string
	dir    string // the shared data directory
	home   string // HOME for the commands
}

func newReplay(t *testing.T, tools string) *replay {
	r := &replay{rkt: os.Getenv(rktEnv), tools: tools, images: filepath.Join(tools, "images"),
		dir: t.TempDir(), home: t.TempDir()}
	// The stand-ins' signing key is a vendor key for every image, where a distribution would put
	// it, so that /etc/rkt/trustedkeys is left to the examples.
	fp, err := os.ReadFile(filepath.Join(r.images, "replay.fingerprint"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(r.images, "replay.pub.asc"))
	if err != nil {
		t.Fatal(err)
	}
	root := "/usr/lib/rkt/trustedkeys/root.d"
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, string(fp)), key, 0o644); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, s := range standIns {
		if s.stored {
			files = append(files, s.file)
		}
	}
	if err := r.load(context.Background(), r.dir, files...); err != nil {
		t.Fatal(err)
	}
	return r
}

// load fetches stand-ins into the data directory dir as a user would: ACIs with their
// signatures checked, OCI layouts with --insecure-options=image.
func (r *replay) load(ctx context.Context, dir string, files ...string) error {
	for _, f := range files {
		var s *standIn
		for i := range standIns {
			if standIns[i].file == f {
				s = &standIns[i]
			}
		}
		if s == nil {
			return fmt.Errorf("no stand-in %s", f)
		}
		args := []string{"--dir=" + dir, "fetch", "--pull-policy=update", filepath.Join(r.images, f)}
		if s.oci() {
			args = append([]string{"--insecure-options=image"}, args...)
		}
		cmd := exec.CommandContext(ctx, r.rkt, args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("rkt %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// cases are the replay's cases by name (the inventory's kase).
var cases = map[string]func(*docCase){}

// docCase is one case: its deadline, its data directory (the shared one unless it asked for a
// fresh one), a working directory for the files examples name, and what it started.
type docCase struct {
	*testing.T
	r        *replay
	ctx      context.Context
	cancel   context.CancelFunc
	dir      string
	cwd      string
	dirs     []string // data directories to collect at the end
	pods     []*pod
	netConfs []string
	diffs    []string
	// stops end the pods the case served, once its checks are done.
	stops []func()
}

func (r *replay) newCase(t *testing.T) *docCase {
	ctx, cancel := context.WithTimeout(context.Background(), caseDeadline)
	c := &docCase{T: t, r: r, ctx: ctx, cancel: cancel, dir: r.dir, cwd: t.TempDir(), dirs: []string{r.dir}}
	return c
}

// differs records that the case meets the intended difference name, and checks that it is one.
func (c *docCase) differs(name string) {
	c.Helper()
	if _, ok := differences[name]; !ok {
		c.Fatalf("no intended difference %q", name)
	}
	if !slices.Contains(c.diffs, name) {
		c.diffs = append(c.diffs, name)
	}
}

// fresh switches the case to a new data directory holding only the stand-ins files.
func (c *docCase) fresh(files ...string) {
	c.Helper()
	c.dir = c.TempDir()
	c.dirs = append(c.dirs, c.dir)
	if err := c.r.load(c.ctx, c.dir, files...); err != nil {
		c.Fatal(err)
	}
}

// file copies a stand-in (with its signature) into the working directory and returns its name.
func (c *docCase) file(name string) string {
	c.Helper()
	for _, f := range []string{name, name + ".asc"} {
		b, err := os.ReadFile(filepath.Join(c.r.images, f))
		if errors.Is(err, os.ErrNotExist) && f != name {
			continue
		}
		if err != nil {
			c.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c.cwd, f), b, 0o644); err != nil {
			c.Fatal(err)
		}
	}
	return name
}

// netConf writes a network configuration into /etc/rkt/net.d for this case only.
func (c *docCase) netConf(name, conf string) {
	c.Helper()
	p := filepath.Join("/etc/rkt/net.d", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		c.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		c.Fatal(err)
	}
	c.netConfs = append(c.netConfs, p)
}

// result is a finished command.
type result struct {
	out, err string
	code     int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.out, r.err)
}

// opts are a command's stdin and extra environment.
type opts struct {
	stdin string
	env   []string
}

// command is rkt with the case's data directory, in its working directory, killed with its
// process group at the case's deadline.
func (c *docCase) command(ctx context.Context, o opts, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.r.rkt, append([]string{"--dir=" + c.dir}, args...)...)
	c.prepare(cmd, o)
	return cmd
}

func (c *docCase) prepare(cmd *exec.Cmd, o opts) {
	cmd.Dir = c.cwd
	cmd.Env = append(append(os.Environ(), "HOME="+c.r.home), o.env...)
	if o.stdin != "" {
		cmd.Stdin = strings.NewReader(o.stdin)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, unix.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
}

// rkt runs a rkt command to its end.
func (c *docCase) rkt(args ...string) result {
	c.Helper()
	return c.rktWith(opts{}, args...)
}

func (c *docCase) rktWith(o opts, args ...string) result {
	c.Helper()
	return c.exec(c.command(c.ctx, o, args...))
}

// sh runs a shell command line (the documents' other programs) in the working directory.
func (c *docCase) sh(line string, o opts) result {
	c.Helper()
	cmd := exec.CommandContext(c.ctx, "sh", "-c", line)
	c.prepare(cmd, o)
	return c.exec(cmd)
}

func (c *docCase) exec(cmd *exec.Cmd) result {
	c.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{out: out.String(), err: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		c.Fatalf("%s: %v", strings.Join(cmd.Args, " "), err)
	}
	if c.ctx.Err() != nil {
		c.Fatalf("%s: the case's deadline passed (%s)", strings.Join(cmd.Args, " "), r)
	}
	return r
}

// interactive runs a rkt command on a terminal (script(1) gives it one) and types lines into
// it; the output comes back with the terminal's \r\n folded to \n.
func (c *docCase) interactive(args []string, typed string) result {
	c.Helper()
	line := shellQuote(append([]string{c.r.rkt, "--dir=" + c.dir}, args...))
	cmd := exec.CommandContext(c.ctx, "script", "-qec", line, "/dev/null")
	c.prepare(cmd, opts{stdin: typed})
	r := c.exec(cmd)
	r.out = strings.ReplaceAll(r.out, "\r\n", "\n")
	return r
}

func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// pod is a `rkt run` in the background.
type pod struct {
	c        *docCase
	cmd      *exec.Cmd
	out      testenv.Buffer
	errb     testenv.Buffer
	uuidFile string
	done     chan struct{}
	res      result
}

// start starts `rkt run` with args in the background. Its UUID is saved with --uuid-file-save
// unless args save it already.
func (c *docCase) start(args ...string) *pod {
	c.Helper()
	uuidFile := ""
	for _, a := range args {
		if f, ok := strings.CutPrefix(a, "--uuid-file-save="); ok {
			uuidFile = f
		}
	}
	if uuidFile == "" {
		uuidFile = filepath.Join(c.TempDir(), "uuid")
		i := slices.Index(args, "run")
		args = slices.Insert(slices.Clone(args), i+1, "--uuid-file-save="+uuidFile)
	}
	return c.startWith(uuidFile, args...)
}

// startPrepared starts `rkt run-prepared` of the pod uuid (args include it) in the background.
func (c *docCase) startPrepared(uuid string, args ...string) *pod {
	c.Helper()
	f := filepath.Join(c.TempDir(), "uuid")
	if err := os.WriteFile(f, []byte(uuid), 0o644); err != nil {
		c.Fatal(err)
	}
	return c.startWith(f, args...)
}

func (c *docCase) startWith(uuidFile string, args ...string) *pod {
	c.Helper()
	p := &pod{c: c, done: make(chan struct{}), uuidFile: uuidFile}
	p.cmd = c.command(c.ctx, opts{}, args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errb
	if err := p.cmd.Start(); err != nil {
		c.Fatal(err)
	}
	c.pods = append(c.pods, p)
	go func() {
		err := p.cmd.Wait()
		p.res = result{out: p.out.String(), err: p.errb.String()}
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			p.res.code = ee.ExitCode()
		} else if err != nil {
			p.res.code = -1
		}
		close(p.done)
	}()
	return p
}

// await waits until the pod's output has a line matching re.
func (p *pod) await(re string) {
	p.c.Helper()
	rx := regexp.MustCompile(re)
	for {
		if rx.MatchString(p.out.String()) {
			return
		}
		select {
		case <-p.done:
			if rx.MatchString(p.out.String()) {
				return
			}
			p.c.Fatalf("rkt run ended (%s) before printing %q", p.res, re)
		case <-p.c.ctx.Done():
			p.c.Fatalf("no %q from the pod before the case's deadline: stdout %q stderr %q", re, p.out.String(), p.errb.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// uuid is the pod's UUID, once rkt run has saved it.
func (p *pod) uuid() string {
	p.c.Helper()
	for {
		if b, err := os.ReadFile(p.uuidFile); err == nil && len(bytes.TrimSpace(b)) == 36 {
			return string(bytes.TrimSpace(b))
		}
		select {
		case <-p.done:
			p.c.Fatalf("rkt run ended (%s) without saving its UUID", p.res)
		case <-p.c.ctx.Done():
			p.c.Fatal("no UUID before the case's deadline")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// wait waits for rkt run to end.
func (p *pod) wait() result {
	p.c.Helper()
	select {
	case <-p.done:
		return p.res
	case <-p.c.ctx.Done():
		p.c.Fatal("rkt run did not end before the case's deadline")
	}
	return result{}
}

func (p *pod) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// cleanup stops what the case left running and collects every pod of its data directories;
// a pod that gc cannot collect fails the case.
func (c *docCase) cleanup() {
	defer c.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), cleanupDeadline)
	defer cancel()
	for _, p := range c.pods {
		if !p.running() {
			continue
		}
		if b, err := os.ReadFile(p.uuidFile); err == nil {
			cmd := c.command(ctx, opts{}, "stop", "--force", string(bytes.TrimSpace(b)))
			cmd.Run()
		}
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			unix.Kill(-p.cmd.Process.Pid, unix.SIGKILL)
			<-p.done
		}
	}
	for _, dir := range c.dirs {
		c.dir = dir
		gc := c.command(ctx, opts{}, "gc", "--grace-period=0s", "--expire-prepared=0s")
		if out, err := gc.CombinedOutput(); err != nil {
			c.Errorf("rkt gc: %v\n%s", err, out)
		}
		out, _ := c.command(ctx, opts{}, "list", "--no-legend").Output()
		if strings.TrimSpace(string(out)) != "" {
			c.Errorf("pods left after gc in %s:\n%s", dir, out)
		}
	}
	for _, f := range c.netConfs {
		os.Remove(f)
	}
}

// lines are out's lines without trailing blanks, empty lines dropped.
func lines(out string) []string {
	var ls []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if l := strings.TrimRight(sc.Text(), " \t\r"); l != "" {
			ls = append(ls, l)
		}
	}
	return ls
}

// matchLines checks that out's lines match the patterns one by one (anchored regular
// expressions) and says where they do not.
func matchLines(out string, patterns ...string) error {
	ls := lines(out)
	for i, p := range patterns {
		if i >= len(ls) {
			return fmt.Errorf("line %d missing (want %q) in:\n%s", i+1, p, out)
		}
		if !regexp.MustCompile("^" + p + "$").MatchString(ls[i]) {
			return fmt.Errorf("line %d is %q, want %q, in:\n%s", i+1, ls[i], p, out)
		}
	}
	if len(ls) > len(patterns) {
		return fmt.Errorf("%d more lines than the documents show (%q) in:\n%s", len(ls)-len(patterns), ls[len(patterns):], out)
	}
	return nil
}

// hasLine reports whether a line of out matches the anchored pattern.
func hasLine(out, pattern string) bool {
	rx := regexp.MustCompile("^" + pattern + "$")
	return slices.ContainsFunc(lines(out), rx.MatchString)
}

// fields splits a tabbed table line into its columns.
func fields(line string) []string {
	var fs []string
	for f := range strings.SplitSeq(line, "\t") {
		if f = strings.TrimSpace(f); f != "" {
			fs = append(fs, f)
		}
	}
	return fs
}
