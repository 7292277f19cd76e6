package web_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-os/cairn/console/consoletest"
	"github.com/cairn-os/cairn/console/server"
	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/update-engine/locksmith"
	"github.com/cairn-os/cairn/update-engine/omaha"
)

// ScreenshotsEnv names the directory the browser test saves a screenshot of each page to
// (a temporary one when unset). make screenshots copies the main ones to console/docs.
const ScreenshotsEnv = "CAIRN_CONSOLE_SCREENSHOTS"

// chromium starts a headless Chromium of the test's own (a fresh profile, no network
// services of its own: the machine's network is closed) and returns a tab's context. The
// browser is killed when the test ends.
func chromium(t *testing.T) context.Context {
	t.Helper()
	testenv.SkipShort(t, "drives a browser")
	bin := testenv.RequireCommand(t, "chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("font-render-hinting", "none"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // kills the browser and waits for it
	})
	// The first action starts the browser, which lives as long as the context it is given:
	// ctx itself, with the deadline kept by a timer.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx, chromedp.Navigate("about:blank")) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting chromium: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("chromium did not start within a minute")
	}
	// A script error on any page fails the test.
	go func() {
		for ev, err := range chromedp.Events(ctx, cdpruntime.ExceptionThrown) {
			if err != nil {
				return
			}
			d := ev.ExceptionDetails
			desc := d.Text
			if d.Exception != nil {
				desc += " " + d.Exception.Description
			}
			t.Errorf("JavaScript error at %s:%d: %s", d.URL, d.LineNumber+1, desc)
		}
	}()
	return ctx
}

// tab drives the browser with a deadline for each step, and saves screenshots.
type tab struct {
	t      *testing.T
	ctx    context.Context
	base   string
	shot   string
	cancel context.CancelFunc // a tab of newTab's
}

// newTab opens another tab of the same browser (the same session).
func (b *tab) newTab() *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	nt := &tab{t: b.t, ctx: ctx, base: b.base, shot: b.shot, cancel: cancel}
	// The tab lives as long as the context of its first action: its own.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		b.t.Fatalf("opening a tab: %v", err)
	}
	return nt
}

func (b *tab) close() {
	if b.cancel != nil {
		b.cancel()
	}
}

func (b *tab) step(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, d)
}

func (b *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.step(30 * time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// open loads a page of the console and waits for it.
func (b *tab) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path))
}

// submit clicks a form's button and waits for the page it leads to.
func (b *tab) submit(sel string) {
	b.t.Helper()
	ctx, cancel := b.step(30 * time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel)))); err != nil {
		b.t.Fatalf("submit %s: %v", sel, err)
	}
}

// confirm clicks a button whose form asks first, and confirms in the dialog.
func (b *tab) confirm(sel, wantTitle string) {
	b.t.Helper()
	b.do("click "+sel, chromedp.Click(chromedp.CSS(sel)), chromedp.WaitVisible(chromedp.CSS("#confirm-dialog")))
	if title := b.text("#confirm-dialog .confirm-title"); !strings.Contains(title, wantTitle) {
		b.t.Errorf("confirmation of %s: %q, want %q", sel, title, wantTitle)
	}
	b.submit("#confirm-dialog .confirm-ok")
}

// text is what a person reads in the element.
func (b *tab) text(sel string) string {
	b.t.Helper()
	ctx, cancel := b.step(30 * time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.Join(strings.Fields(s), " ")
}

// waitText waits until the element reads every one of want (in any case: labels are
// shown in capitals), and returns what it reads.
func (b *tab) waitText(sel string, d time.Duration, want ...string) string {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for {
		s := b.text(sel)
		missing := ""
		for _, w := range want {
			if !strings.Contains(strings.ToLower(s), strings.ToLower(w)) {
				missing = w
				break
			}
		}
		if missing == "" {
			return s
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s never read %q; it reads:\n%s", sel, missing, s)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// flash is the message the last form left.
func (b *tab) flash() string { return b.text(".flash") }

func (b *tab) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := b.step(30 * time.Second)
	defer cancel()
	// The picture shows the page at rest: no live update's highlight.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.getAnimations().forEach(a => { if (a.effect.getTiming().iterations !== Infinity) a.finish() })`)); err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shot, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// markPage tags the page a person has open; samePage says whether it is still that page
// and how many live updates it got.
func (b *tab) markPage() {
	b.t.Helper()
	b.do("mark the page", chromedp.Evaluate[chromedp.Void](`window.__opened = 1`))
}

func (b *tab) samePage() (bool, int) {
	b.t.Helper()
	ctx, cancel := b.step(10 * time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`[window.__opened === 1 ? 1 : 0, Number(document.body.dataset.updates || 0)]`))
	if err != nil || len(v) != 2 {
		b.t.Fatalf("reading the page's marks: %v", err)
	}
	return v[0] == 1, v[1]
}

// simMachine is a Cairn host as its Omaha client behaves: checks every interval, and when
// offered a version downloads it (reporting progress), installs it, reboots into it and
// reports it complete; or, for a version in bad, rolls back after three boot tries. Each
// machine talks from an address of its own on the loopback, as hosts of a network would.
type simMachine struct {
	id, alias, ip string
	version       string
	c             *omaha.Client
}

type simFleet struct {
	t        *testing.T
	machines []*simMachine
	bad      map[string]bool
	mu       sync.Mutex
	step     time.Duration
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	// gate, while open, holds the downloads that start after a first machine completed at
	// 45 %, so that a person (and a screenshot) sees machines mid-download.
	gate      chan struct{}
	completed int
}

// holdDownloads holds the downloads after the canary's until release.
func (f *simFleet) holdDownloads() (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := make(chan struct{})
	f.gate = g
	return sync.OnceFunc(func() { close(g) })
}

func (f *simFleet) gateFor() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.completed == 0 || f.gate == nil {
		return nil
	}
	return f.gate
}

func newSimFleet(t *testing.T, c *consoletest.Console, n int, step time.Duration) *simFleet {
	f := &simFleet{t: t, bad: map[string]bool{}, step: step}
	for i := 1; i <= n; i++ {
		ip := fmt.Sprintf("127.0.0.%d", 10+i)
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
		hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
		f.machines = append(f.machines, &simMachine{id: fmt.Sprintf("%032x", 0xa11ce0+i), alias: fmt.Sprintf("node-%d", i), ip: ip, version: "1.0.0",
			c: &omaha.Client{URL: c.UpdateURL(), HTTP: hc}})
	}
	return f
}

func (f *simFleet) setBad(v string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bad[v] = true
}

func (f *simFleet) isBad(v string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bad[v]
}

func (f *simFleet) start() {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	for _, m := range f.machines {
		f.wg.Go(func() { f.run(ctx, m) })
	}
	f.t.Cleanup(f.stop)
}

func (f *simFleet) stop() {
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
}

func (f *simFleet) send(ctx context.Context, m *simMachine, check bool, rep omaha.Report, evs ...*omaha.EventRequest) (*omaha.Update, error) {
	app := &omaha.AppRequest{ID: consoletest.AppID, Version: m.version, Track: "stable", MachineID: m.id, MachineAlias: m.alias, Board: "amd64-usr",
		OEM: "qemu", Events: evs, Report: rep}
	if check {
		app.UpdateCheck = &omaha.UpdateCheck{}
		app.Ping = &omaha.PingRequest{Active: 1}
		app.Pods = &omaha.Pods{Total: 2, Pods: []omaha.Pod{
			{UUID: "5f6a7c1e-" + m.id[24:], State: "running", Apps: []omaha.PodApp{{Name: "web", Image: "registry.example/web:1.4", State: "running"}}},
			{UUID: "0b1d2e3f-" + m.id[24:], State: "exited", Apps: []omaha.PodApp{{Name: "migrate", Image: "registry.example/migrate:1.4", State: "exited"}}},
		}}
	}
	resp, err := m.c.Do(ctx, &omaha.Request{Protocol: omaha.Protocol, InstallSource: omaha.InstallSourceScheduler, Apps: []*omaha.AppRequest{app}})
	if err != nil {
		return nil, err
	}
	a, err := resp.App(consoletest.AppID)
	if err != nil || !check {
		return nil, err
	}
	return a.FindUpdate()
}

func (f *simFleet) run(ctx context.Context, m *simMachine) {
	wait := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	report := func(op, step string, p float64, evs ...*omaha.EventRequest) bool {
		_, err := f.send(ctx, m, false, omaha.Report{Operation: op, Step: step, Progress: omaha.Fraction(p)}, evs...)
		if err != nil && ctx.Err() == nil {
			f.t.Errorf("%s: report: %v", m.alias, err)
		}
		return err == nil && wait(f.step)
	}
	for wait(f.step) {
		u, err := f.send(ctx, m, true, omaha.Report{})
		if err != nil && ctx.Err() == nil {
			f.t.Errorf("%s: update check: %v", m.alias, err)
		}
		if u == nil {
			continue
		}
		to := u.Version
		if !report("UPDATE_STATUS_DOWNLOADING", "download", 0, omaha.DownloadStarted()) {
			return
		}
		for _, p := range []float64{0.2, 0.45, 0.7, 0.95} {
			if !report("UPDATE_STATUS_DOWNLOADING", "download", p) {
				return
			}
			if g := f.gateFor(); p == 0.45 && g != nil {
				select {
				case <-ctx.Done():
					return
				case <-g:
				}
			}
		}
		if !report("UPDATE_STATUS_FINALIZING", "write-usr", 0.1, omaha.DownloadFinished()) ||
			!report("UPDATE_STATUS_FINALIZING", "write-usr", 0.6) ||
			!report("UPDATE_STATUS_UPDATED_NEED_REBOOT", "reboot", 1, omaha.Installed()) || !wait(2*f.step) {
			return
		}
		if f.isBad(to) {
			// Three boot tries of the new version, none blessed good: back on the old one.
			if _, err := f.send(ctx, m, false, omaha.Report{}, omaha.RolledBack(to, 3, 0)); err != nil {
				return
			}
			continue
		}
		from := m.version
		m.version = to
		if _, err := f.send(ctx, m, false, omaha.Report{}, omaha.Complete(from)); err != nil {
			return
		}
		f.mu.Lock()
		f.completed++
		f.mu.Unlock()
	}
}

// A person's session with the console, as the issue asks for it: log in, make a channel,
// upload and publish a payload, create a group with a rollout policy, watch five machines
// (real Omaha clients) update under it with the page updating itself, publish a version
// that rolls back until the group halts itself, read why, resume it; the cluster's reboot
// lock and leases from etcd, and the lock released. Every page is saved as a screenshot.
func TestBrowserRollout(t *testing.T) {
	ctx := chromium(t)
	etcdURL := testenv.Etcd(t)
	etcd, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcd.Close() })
	c := consoletest.Start(t, consoletest.Options{Config: func(cfg *server.Config) {
		cfg.Etcd, cfg.EtcdEndpoints = etcd, []string{etcdURL}
		cfg.ClusterInterval, cfg.LiveInterval, cfg.ReconcileInterval = 300*time.Millisecond, 250*time.Millisecond, 2*time.Second
	}})
	rctx, stopRun := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { c.Server.Run(rctx); close(runDone) }()
	t.Cleanup(func() { stopRun(); <-runDone })

	shots := os.Getenv(ScreenshotsEnv)
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	b := &tab{t: t, ctx: ctx, base: c.URL, shot: shots}
	app := "/apps/" + url.PathEscape(c.App.ProductID)
	fleet := newSimFleet(t, c, 5, 200*time.Millisecond)

	// The cluster as etcd has it: flannel's network and a lease for each host, and
	// locksmith's semaphore held by node-2 (a reboot that never came back).
	put := func(k, v string, opts ...clientv3.OpOption) {
		if _, err := etcd.Put(context.Background(), k, v, opts...); err != nil {
			t.Fatal(err)
		}
	}
	lease, err := etcd.Grant(context.Background(), 3600)
	if err != nil {
		t.Fatal(err)
	}
	put("/coreos.com/network/config", `{"Network":"10.5.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan"}}`)
	for i, m := range fleet.machines {
		put(fmt.Sprintf("/coreos.com/network/subnets/10.5.%d.0-24", 11+i),
			fmt.Sprintf(`{"PublicIP":%q,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:58:0a:05:%02x:01"}}`, m.ip, 11+i), clientv3.WithLease(lease.ID))
	}
	put(locksmith.SemaphoreOf, fmt.Sprintf(`{"semaphore":0,"max":1,"holders":[%q]}`, fleet.machines[1].id))

	// Log in.
	b.open("/")
	b.waitText("body", 10*time.Second, "User name", "Password", "Log in")
	b.screenshot("login")
	b.do("log in", chromedp.SendKeys(chromedp.ID("username"), "admin"), chromedp.SendKeys(chromedp.ID("password"), "admin-password"))
	b.submit("form[action='/login'] button[type=submit]")
	b.waitText(".page-head", 10*time.Second, "Cairn", "Fleet overview")

	// A channel, and 2.0.0 uploaded and published on it.
	b.open(app + "/packages")
	b.do("channel name", chromedp.SendKeys(chromedp.ID("ch-name"), "stable"))
	b.submit("#new-channel button[type=submit]")
	if f := b.flash(); f != "Created channel stable" {
		t.Fatalf("creating the channel: %q", f)
	}
	good := c.Payload("2.0.0", nil, nil)
	b.do("upload 2.0.0", chromedp.SetUploadFiles(chromedp.ID("up-file"), []string{good}),
		chromedp.SetValue(chromedp.ID("up-publish"), "stable"), chromedp.SendKeys(chromedp.ID("up-notes"), "Kernel 6.12.30, systemd 257"))
	b.submit("#upload button[type=submit]")
	if f := b.flash(); !strings.Contains(f, "Uploaded 2.0.0") || !strings.Contains(f, "signature verified, published on channel stable") {
		t.Fatalf("uploading 2.0.0: %q", f)
	}
	b.waitText("#p-packages", 5*time.Second, "2.0.0", "Verified", "stable")

	// A group with a rollout policy: one canary, two in flight, a halt after two failures.
	b.open(app + "/groups")
	b.do("group form", chromedp.SendKeys(chromedp.ID("gf-name"), "production"), chromedp.SendKeys(chromedp.ID("gf-track"), "stable"),
		chromedp.SendKeys(chromedp.ID("gf-desc"), "The web tier"))
	chID := b.text("#gf-channel option:nth-child(2)")
	if !strings.HasPrefix(chID, "stable") {
		t.Fatalf("the group form's channels: %q", chID)
	}
	b.do("group policy",
		chromedp.Evaluate[chromedp.Void](`document.getElementById('gf-channel').selectedIndex = 1`),
		chromedp.SetValue(chromedp.ID("pf-inflight"), "2"), chromedp.SetValue(chromedp.ID("pf-canaries"), "1"),
		chromedp.SetValue(chromedp.ID("pf-halterr"), "2"))
	b.submit("#new-group button[type=submit]")
	if f := b.flash(); f != "Created group production" {
		t.Fatalf("creating the group: %q", f)
	}
	b.waitText("#g-head", 5*time.Second, "production", "track stable", "2.0.0")
	b.waitText("#g-machines", 5*time.Second, "No machines in this group")

	// The fleet checks in and updates; the group page, open all along, shows it happen.
	b.markPage()
	release := fleet.holdDownloads()
	defer release()
	fleet.start()
	b.waitText("#g-machines", 20*time.Second, "node-1", "node-5")
	b.waitText("#g-machines", 30*time.Second, "Downloading", "waiting for canaries")
	b.waitText("#g-head", 60*time.Second, "Canaries 1 of 1 complete")
	b.waitText("#g-statuses", 10*time.Second, "Complete 1")
	// Two at a time after the canary: two held mid-download, two held back by the policy.
	b.waitText("#g-statuses", 30*time.Second, "Downloading 2")
	b.waitText("#g-machines", 10*time.Second, "45%", "2 updates in flight, the most the group allows")
	b.screenshot("group-rolling-out")
	// Meanwhile, in a second tab, the overview.
	ov := b.newTab()
	ov.open(app)
	ov.waitText("#ov-versions", 10*time.Second, "2.0.0", "1.0.0")
	ov.screenshot("overview")
	ov.close()
	release()
	text := b.waitText("#g-head", 90*time.Second, "Up to date", "On target 5 of 5")
	if same, updates := b.samePage(); !same || updates < 3 {
		t.Fatalf("the group page was reloaded (%v) or got %d live updates; it reads %q", same, updates, text)
	}
	b.waitText("#g-versions", 10*time.Second, "2.0.0", "5", "100%")
	b.waitText("#g-activity", 10*time.Second, "the rollout of 2.0.0 in group production started")
	b.screenshot("group-complete")

	// A machine's page: its history, its events, its pods, its lease, the reboot lock.
	b.open(app + "/instances/" + fleet.machines[1].id)
	b.waitText("#i-head", 5*time.Second, "node-2", "Complete", "2.0.0")
	b.waitText("#i-history", 5*time.Second, "Complete", "Installed", "Downloaded", "Downloading", "Update granted")
	b.waitText("#i-events", 5*time.Second, "complete (3/2)", "previous version 1.0.0", "installed (800/1)")
	b.waitText("#i-pods", 5*time.Second, "web", "registry.example/web:1.4", "running", "exited")
	b.waitText("#i-cluster", 10*time.Second, "10.5.12.0/24", "vxlan", "Holds it")
	b.screenshot("instance")

	// 3.0.0 rolls back everywhere: the canary and the next fail, and the group halts itself.
	fleet.setBad("3.0.0")
	b.open(app + "/packages")
	b.do("upload 3.0.0", chromedp.SetUploadFiles(chromedp.ID("up-file"), []string{c.Payload("3.0.0", nil, nil)}),
		chromedp.SetValue(chromedp.ID("up-publish"), "stable"))
	b.submit("#upload button[type=submit]")
	if f := b.flash(); !strings.Contains(f, "published on channel stable") {
		t.Fatalf("uploading 3.0.0: %q", f)
	}
	b.screenshot("packages")
	gid := groupID(t, c)
	b.open(app + "/groups/" + gid)
	b.markPage()
	banner := b.waitText("#g-banner", 90*time.Second, "Rollout halted", "2 of 2 attempts failed (rollbacks, errors, timeouts), the limit is 2")
	if !strings.Contains(banner, "Resume rollout") {
		t.Errorf("the halt banner offers no resume to an admin: %q", banner)
	}
	b.waitText("#g-head", 10*time.Second, "Halted")
	failures := b.waitText("#g-failures", 10*time.Second, "Rolled back from 3.0.0 after 3 boot tries", "back on 2.0.0")
	if n := strings.Count(failures, "Rolled back"); n != 2 {
		t.Errorf("%d rollbacks listed, want 2:\n%s", n, failures)
	}
	if same, _ := b.samePage(); !same {
		t.Error("the group page was reloaded while the group halted")
	}
	fleet.stop()
	b.screenshot("group-halted")
	b.open(app)
	b.waitText("#ov-halts", 5*time.Second, "Group production halted its rollout of 3.0.0", "2 of 2 attempts failed")
	b.waitText("#ov-tiles", 5*time.Second, "Machines 5", "Failed 2")
	b.screenshot("overview-halted")
	b.open(app + "/instances?status=error")
	b.waitText("#il-table", 5*time.Second, "2 machines match", "Error", "error 44")
	b.open(app + "/instances")
	b.waitText("#il-table", 5*time.Second, "5 machines")
	b.screenshot("instances")

	// Resume, after a confirmation; the failures before stop counting.
	b.open(app + "/groups/" + gid)
	b.confirm("#g-banner button[type=submit]", "Resume the rollout?")
	if f := b.flash(); !strings.HasPrefix(f, "Resumed the group") {
		t.Errorf("resume: %q", f)
	}
	if s := b.text("#g-banner"); s != "" {
		t.Errorf("a banner after the resume: %q", s)
	}
	b.waitText("#g-head", 5*time.Second, "Rolling out", "Failed attempts 0 of 0")
	b.waitText("#g-activity", 5*time.Second, "resumed group production (paused by rollout: 2 of 2 attempts failed")

	// The reboot lock node-2 never gave back, released by an admin.
	b.open("/cluster")
	b.waitText("#c-locks", 5*time.Second, "default", "node-2", "Release")
	b.waitText("#c-leases", 5*time.Second, "10.5.11.0/24", "127.0.0.11", "node-1", "10.5.15.0/24")
	b.screenshot("cluster")
	b.confirm("#c-locks button[type=submit]", "Release the reboot lock?")
	if f := b.flash(); !strings.Contains(f, "Released") {
		t.Errorf("release: %q", f)
	}
	b.waitText("#c-locks", 5*time.Second, "Free")

	b.open("/activity")
	b.waitText("#a-list", 5*time.Second, "released", "rolled back from 3.0.0", "halted its rollout", "created group production")
	b.screenshot("activity")
	b.open(app + "/groups")
	b.waitText("#gl-groups", 5*time.Second, "production", "Rolling out")
	b.screenshot("groups")
	b.open("/apps")
	b.waitText("main", 5*time.Second, "Applications", "io.github.cairn-os.cairn", "production")
	b.screenshot("apps")
	b.open("/admin")
	b.waitText("main", 5*time.Second, "Users", "API tokens")
	b.screenshot("admin")
	t.Logf("screenshots in %s", shots)
}
