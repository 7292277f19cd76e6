package updates_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/console/consoletest"
	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/console/store"
	"github.com/cairn-os/cairn/console/updates"
	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/update-engine/api"
	"github.com/cairn-os/cairn/update-engine/apply"
	"github.com/cairn-os/cairn/update-engine/engine"
	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/payload"
	"github.com/cairn-os/cairn/update-engine/slots"
	"github.com/cairn-os/cairn/update-engine/updateconf"
)

// machine is an Omaha client as Cairn's engine talks: one machine id, its version, track.
type machine struct {
	t       *testing.T
	c       *omaha.Client
	appID   string
	id      string
	version string
	track   string
	source  string
}

func newMachine(t *testing.T, c *consoletest.Console, id, version string) *machine {
	return &machine{t: t, c: &omaha.Client{URL: c.UpdateURL()}, appID: consoletest.AppID, id: id, version: version, track: "stable",
		source: omaha.InstallSourceScheduler}
}

func (m *machine) do(check bool, events ...*omaha.EventRequest) *omaha.AppResponse {
	m.t.Helper()
	app := &omaha.AppRequest{ID: m.appID, Version: m.version, Track: m.track, MachineID: m.id, MachineAlias: "alias-" + m.id,
		Board: "amd64-usr", OEM: "qemu", Events: events}
	if check {
		app.Ping = &omaha.PingRequest{Active: 1}
		app.UpdateCheck = &omaha.UpdateCheck{}
	}
	resp, err := m.c.Do(context.Background(), &omaha.Request{Protocol: omaha.Protocol, InstallSource: m.source, Apps: []*omaha.AppRequest{app}})
	if err != nil {
		m.t.Fatal(err)
	}
	a, err := resp.App(m.appID)
	if err != nil {
		m.t.Fatal(err)
	}
	if len(a.Events) != len(events) {
		m.t.Fatalf("%d events acknowledged of %d", len(a.Events), len(events))
	}
	return a
}

// check asks for an update and returns the version offered ("" for none).
func (m *machine) check() string {
	m.t.Helper()
	u, err := m.do(true).FindUpdate()
	if err != nil {
		m.t.Fatal(err)
	}
	if u == nil {
		return ""
	}
	return u.Version
}

// update goes through an offered update's events up to installed, then runs the new version
// and reports it complete.
func (m *machine) update(to string) {
	m.t.Helper()
	m.do(false, omaha.DownloadStarted())
	m.do(false, omaha.DownloadFinished())
	m.do(false, omaha.Installed())
	from := m.version
	m.version = to
	m.do(false, omaha.Complete(from))
}

func history(t *testing.T, c *consoletest.Console, id string) string {
	t.Helper()
	h, err := c.Store.History(context.Background(), c.App.ID, id, 100)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, e := range slices.Backward(h) {
		x := string(e.Status)
		if e.ErrorCode != 0 {
			x += fmt.Sprintf(" %d", e.ErrorCode)
		}
		s = append(s, x)
	}
	return strings.Join(s, ", ")
}

// Check → offer → download (whole, and resumed with Range) → events → complete, with what
// the console keeps of each step.
func TestCheckOfferDownloadComplete(t *testing.T) {
	c := consoletest.Start(t, consoletest.Options{})
	m := newMachine(t, c, "m1", "1.0.0")
	if v := m.check(); v != "" {
		t.Fatalf("offered %s before any package", v)
	}
	if in := c.Instance("m1"); in.Alias != "alias-m1" || in.Version != "1.0.0" || in.IP != "127.0.0.1" || in.Track != "stable" || in.GroupID != "" ||
		!strings.Contains(in.HoldReason, `no group of Cairn has track "stable"`) {
		t.Fatalf("instance of an unknown track: %+v", in)
	}
	path := c.Payload("2.0.0", nil, nil)
	c.Publish("stable", path)
	u, err := m.do(true).FindUpdate()
	if err != nil || u == nil || u.Version != "2.0.0" {
		t.Fatalf("offer: %+v %v", u, err)
	}
	file, _ := os.ReadFile(path)
	sum := sha256.Sum256(file)
	if u.SHA256 != hex.EncodeToString(sum[:]) || u.Size != int64(len(file)) || !strings.HasSuffix(u.URL, "/cairn-2.0.0.cairn") {
		t.Fatalf("offer %+v", u)
	}
	// Download it, then its second half again as a resumed download does.
	res, err := http.Get(u.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !bytes.Equal(body, file) {
		t.Fatalf("download: %s, %d bytes", res.Status, len(body))
	}
	req, _ := http.NewRequest("GET", u.URL, nil)
	req.Header.Set("Range", "bytes=100-")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusPartialContent || !bytes.Equal(body, file[100:]) {
		t.Fatalf("range: %s, %d bytes", res.Status, len(body))
	}
	for _, bad := range []string{"/v1/payloads/nope", "/v1/payloads/" + strings.Split(strings.TrimPrefix(u.URL, c.URL+"/v1/payloads/"), "/")[0] + "/other.cairn",
		"/v1/payloads/../../etc/passwd"} {
		res, err := http.Get(c.URL + bad)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				t.Errorf("%s served", bad)
			}
		}
	}
	// The same machine asks again before its first event: the same grant.
	if v := m.check(); v != "2.0.0" {
		t.Fatalf("asked again: %q", v)
	}
	m.do(false, omaha.DownloadStarted())
	if v := m.check(); v != "" {
		t.Fatalf("offered again while downloading: %q", v)
	}
	m.do(false, omaha.DownloadFinished())
	m.do(false, omaha.Installed())
	if in := c.Instance("m1"); in.Status != rollout.StatusInstalled || !in.UpdateInProgress || in.GrantedVersion != "2.0.0" {
		t.Fatalf("installed: %+v", in)
	}
	m.version = "2.0.0"
	m.do(false, omaha.Complete("1.0.0"))
	if v := m.check(); v != "" {
		t.Fatalf("offered %q on 2.0.0", v)
	}
	in := c.Instance("m1")
	if in.Status != rollout.StatusComplete || in.UpdateInProgress || in.Version != "2.0.0" || in.HoldReason != "" {
		t.Fatalf("complete: %+v", in)
	}
	if h := history(t, c, "m1"); h != "granted, downloading, downloaded, installed, complete" {
		t.Fatalf("history %s", h)
	}
	var kinds []string
	for _, e := range c.Events() {
		kinds = append(kinds, string(e.Kind()))
	}
	if strings.Join(kinds, " ") != "downloading downloaded installed complete" {
		t.Fatalf("events %v", kinds)
	}
	act, _ := c.Store.ActivityLog(context.Background(), store.ActivityFilter{Kind: "rollout.started"})
	if len(act) != 1 || act[0].Version != "2.0.0" {
		t.Fatalf("rollout started: %+v", act)
	}
}

// testMachine is Cairn's real engine on files: the partitions are files, the ESP a
// directory (as update-engine/engine's own tests set it up).
type testMachine struct {
	dir, cmdline string
	slots        *slots.Slots
	keys         string
}

func newTestMachine(t *testing.T, keyFile string) *testMachine {
	m := &testMachine{dir: t.TempDir(), keys: keyFile}
	for _, s := range []string{"A", "B"} {
		if err := os.WriteFile(filepath.Join(m.dir, "usr-"+s), make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m.cmdline = filepath.Join(m.dir, "cmdline")
	m.boot(disklayout.SlotA)
	esp := slots.DirESP{Root: filepath.Join(m.dir, "esp")}
	if err := esp.Create(context.Background(), "EFI/Linux/cairn-1.0.0-A.efi", strings.NewReader("A")); err != nil {
		t.Fatal(err)
	}
	m.slots = &slots.Slots{ESP: esp, Cmdline: m.cmdline, BootEnv: filepath.Join(m.dir, "no-boot.env"), EFIVars: filepath.Join(m.dir, "none"),
		PartitionPath: func(s disklayout.Slot) (string, error) { return filepath.Join(m.dir, "usr-"+string(s)), nil }}
	return m
}

func (m *testMachine) boot(s disklayout.Slot) {
	os.WriteFile(m.cmdline, []byte("mount.usr=PARTUUID="+s.Partition().GUID), 0o644)
}

func (m *testMachine) engine(t *testing.T, url, id, version string) *engine.Engine {
	keys, err := payload.LoadPublicKeys(m.keys)
	if err != nil {
		t.Fatal(err)
	}
	return &engine.Engine{
		Omaha:   &omaha.Client{URL: url},
		Applier: &apply.Applier{Slots: m.slots, StateDir: filepath.Join(m.dir, "state"), Keys: keys, Board: "amd64-usr", CurrentVersion: version},
		Slots:   m.slots, AppID: updateconf.Defaults["APP_ID"], Group: "stable", Board: "amd64-usr", MachineID: id, MachineAlias: "node-" + id,
		Version: version, Schedule: updateconf.Schedule{Initial: time.Hour, Interval: time.Hour},
	}
}

// Cairn's engine against the console: the whole update (check, download, verify, write,
// installed; reboot; complete once blessed good), and a rollback that halts the group.
func TestEngine(t *testing.T) {
	ctx := context.Background()
	c := consoletest.Start(t, consoletest.Options{})
	p := rollout.DefaultPolicy()
	p.HaltErrors = 1
	c.Group("stable", p)
	c.Publish("stable", c.Payload("2.0.0", nil, bytes.Repeat([]byte("/usr 2.0.0 "), 50000)))

	t.Run("complete", func(t *testing.T) {
		m := newTestMachine(t, c.PublicKeyFile)
		if res, err := m.engine(t, c.UpdateURL(), "good", "1.0.0").Update(ctx, omaha.InstallSourceScheduler, false); err != nil || res != api.ResultUpdated {
			t.Fatalf("update: %v %v", res, err)
		}
		if in := c.Instance("good"); in.Status != rollout.StatusInstalled || in.Alias != "node-good" {
			t.Fatalf("after the install: %+v", in)
		}
		m.slots.CountBootAttempt(ctx, disklayout.SlotB)
		m.boot(disklayout.SlotB)
		e := m.engine(t, c.UpdateURL(), "good", "2.0.0")
		if err := e.ReportBoot(ctx); !errors.Is(err, engine.ErrOnTrial) {
			t.Fatalf("on trial: %v", err)
		}
		m.slots.MarkGood(ctx, disklayout.SlotB)
		if err := e.ReportBoot(ctx); err != nil {
			t.Fatal(err)
		}
		if res, err := e.Update(ctx, omaha.InstallSourceScheduler, false); err != nil || res != api.ResultNoUpdate {
			t.Fatalf("check on 2.0.0: %v %v", res, err)
		}
		if in := c.Instance("good"); in.Status != rollout.StatusComplete || in.Version != "2.0.0" {
			t.Fatalf("complete: %+v", in)
		}
		if h := history(t, c, "good"); h != "granted, downloading, downloaded, installed, complete" {
			t.Fatalf("history %s", h)
		}
	})

	t.Run("rollback halts the group", func(t *testing.T) {
		m := newTestMachine(t, c.PublicKeyFile)
		if _, err := m.engine(t, c.UpdateURL(), "bad", "1.0.0").Update(ctx, omaha.InstallSourceScheduler, false); err != nil {
			t.Fatal(err)
		}
		for range 3 { // three boots of B that never reach boot-complete.target
			m.slots.CountBootAttempt(ctx, disklayout.SlotB)
		}
		e := m.engine(t, c.UpdateURL(), "bad", "1.0.0")
		if err := e.ReportBoot(ctx); err != nil {
			t.Fatal(err)
		}
		in := c.Instance("bad")
		if in.Status != rollout.StatusError || in.ErrorCode != 44 || in.RolledBackVersion != "2.0.0" || in.RollbackTries != 3 || in.RollbackTriesLeft != 0 {
			t.Fatalf("after the rollback: %+v", in)
		}
		g, _ := c.Store.Group(ctx, c.App.ID, "stable")
		if !g.Paused || g.PausedBy != store.ActorRollout || !strings.Contains(g.PausedReason, "1 of 2 attempts failed") {
			t.Fatalf("group after the rollback: %+v", g)
		}
		halted, _ := c.Store.ActivityLog(ctx, store.ActivityFilter{Kind: "rollout.halted"})
		rolled, _ := c.Store.ActivityLog(ctx, store.ActivityFilter{Kind: "instance.rolledback"})
		if len(halted) != 1 || !strings.Contains(halted[0].Message, "resume") || len(rolled) != 1 || !strings.Contains(rolled[0].Message, "node-bad rolled back from 2.0.0 to 1.0.0 after 3 boot tries") {
			t.Fatalf("activity: %+v %+v", halted, rolled)
		}
		// A new machine of the halted group is offered nothing, and told why.
		if v := newMachine(t, c, "new", "1.0.0").check(); v != "" {
			t.Fatalf("a halted group offered %s", v)
		}
		if in := c.Instance("new"); !strings.Contains(in.HoldReason, "group paused") {
			t.Fatalf("hold reason %q", in.HoldReason)
		}
		// Resumed: the old failure no longer counts, and the scheduled checks of the machine
		// that rolled back are not offered the version again.
		if _, err := c.API("POST", "/apps/"+c.App.ID+"/groups/stable/resume", nil, nil); err != nil {
			t.Fatal(err)
		}
		if v := newMachine(t, c, "new", "1.0.0").check(); v != "2.0.0" {
			t.Fatalf("resumed group offered %q", v)
		}
		if res, err := e.Update(ctx, omaha.InstallSourceScheduler, false); err != nil || res != api.ResultNoUpdate {
			t.Fatalf("the machine that rolled back: %v %v", res, err)
		}
		if in := c.Instance("bad"); !strings.Contains(in.HoldReason, "rolled back from 2.0.0") {
			t.Fatalf("hold reason %+v", in)
		}
	})
}

// A check's transaction reads what it needs on its own connection: a console whose pool
// of PostgreSQL connections every transaction holds (here the pool is one) still answers.
func TestPoolOfOne(t *testing.T) {
	dsn := testenv.Postgres(t)
	c := consoletest.Start(t, consoletest.Options{DSN: dsn})
	c.Group("stable", rollout.DefaultPolicy())
	c.Publish("stable", c.Payload("2.0.0", nil, nil))
	st, err := store.Open(context.Background(), dsn, store.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc := &updates.Service{Store: st}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e := &engine.Engine{AppID: consoletest.AppID, Group: "stable", Version: "1.0.0", MachineID: "pool-of-one"}
	for _, req := range []*omaha.Request{
		e.Request(omaha.InstallSourceScheduler, true, omaha.Report{}), // registers the machine, offers 2.0.0
		e.Request("", false, omaha.Report{}, omaha.DownloadStarted()),
		e.Request("", false, omaha.Report{}, omaha.Failed(omaha.ErrorCodeDownloadTransferError)), // evaluates the halt
	} {
		if _, _, err := svc.Answer(ctx, req, "192.0.2.1", "http://console"); err != nil {
			t.Fatalf("answer with a pool of one connection: %v", err)
		}
	}
	if in := c.Instance("pool-of-one"); in.Status != rollout.StatusError || in.GrantedVersion != "2.0.0" {
		t.Errorf("instance %+v", in)
	}
}

// A rollout of 1 canary, then at most 2 in flight, against machines that report at once;
// on SQLite and on PostgreSQL, where concurrent checks are separate transactions.
func TestCanariesAndLimits(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { canariesAndLimits(t, "") })
	t.Run("postgres", func(t *testing.T) { canariesAndLimits(t, testenv.Postgres(t)) })
}

func canariesAndLimits(t *testing.T, dsn string) {
	c := consoletest.Start(t, consoletest.Options{DSN: dsn})
	p := rollout.DefaultPolicy()
	p.Canaries, p.MaxInFlight = 1, 2
	c.Group("stable", p)
	c.Publish("stable", c.Payload("2.0.0", nil, nil))
	var ms []*machine
	for i := range 10 {
		ms = append(ms, newMachine(t, c, fmt.Sprintf("m%d", i), "1.0.0"))
	}
	offered := func() []string {
		var got []string
		for _, m := range ms {
			if m.version == "1.0.0" && m.check() == "2.0.0" {
				got = append(got, m.id)
			}
		}
		return got
	}
	if got := offered(); strings.Join(got, " ") != "m0" {
		t.Fatalf("canary phase offered %v", got)
	}
	if in := c.Instance("m1"); !strings.Contains(in.HoldReason, "waiting for canaries: 0 of 1 complete, 1 in flight") {
		t.Fatalf("hold reason %q", in.HoldReason)
	}
	ms[0].update("2.0.0")
	if got := offered(); strings.Join(got, " ") != "m1 m2" {
		t.Fatalf("after the canary offered %v", got)
	}
	if in := c.Instance("m3"); !strings.Contains(in.HoldReason, "2 updates in flight") {
		t.Fatalf("hold reason %q", in.HoldReason)
	}
	ms[1].update("2.0.0")
	if got := offered(); strings.Join(got, " ") != "m2 m3" { // m2's grant again, m3 new
		t.Fatalf("then offered %v", got)
	}
	// Concurrent checks of six machines never grant more than the limit.
	ms[2].update("2.0.0")
	ms[3].update("2.0.0")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var got []string
	for _, m := range ms[4:] {
		for range 3 {
			wg.Go(func() {
				if v, _ := m.do(true).FindUpdate(); v != nil {
					mu.Lock()
					got = append(got, m.id)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	sum, _ := c.Store.Summary(context.Background(), c.App.ID)
	if sum.Groups[0].InFlight != 2 || sum.Groups[0].OnTarget != 4 {
		t.Fatalf("summary %+v", sum.Groups[0])
	}
	if len(got) < 2 {
		t.Fatalf("concurrent checks offered %v", got)
	}
}

// A group halts itself at x% of failed attempts, judged on a minimum sample; the
// machines' errors of every kind count, a timeout too.
func TestHaltAtShare(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := consoletest.Start(t, consoletest.Options{Now: clock})
	p := rollout.DefaultPolicy()
	p.HaltPercent, p.HaltMinSample, p.UpdateTimeout = 50, 4, rollout.Duration(10*time.Minute)
	c.Group("stable", p)
	c.Publish("stable", c.Payload("2.0.0", nil, nil))
	var ms []*machine
	for i := range 4 {
		m := newMachine(t, c, fmt.Sprintf("m%d", i), "1.0.0")
		if v := m.check(); v != "2.0.0" {
			t.Fatalf("%s offered %q", m.id, v)
		}
		ms = append(ms, m)
	}
	ms[0].update("2.0.0")
	ms[1].do(false, omaha.Failed(omaha.ErrorCodeNewRootfsVerification))
	g, _ := c.Store.Group(ctx, c.App.ID, "stable")
	if g.Paused {
		t.Fatalf("1 of 4 failed: halted at 50%%: %+v", g)
	}
	// m2 goes silent: its update times out, which the rollout loop finds.
	mu.Lock()
	now = now.Add(11 * time.Minute)
	mu.Unlock()
	ms[3].update("2.0.0")
	if err := c.Server.Updates.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if in := c.Instance("m2"); in.Status != rollout.StatusTimedOut || in.UpdateInProgress {
		t.Fatalf("silent machine: %+v", in)
	}
	g, _ = c.Store.Group(ctx, c.App.ID, "stable")
	if !g.Paused || !strings.Contains(g.PausedReason, "2 of 4 attempts failed (50%)") {
		t.Fatalf("2 of 4 failed: %+v", g)
	}
	// Reconciling again changes nothing.
	before, _ := c.Store.ActivityLog(ctx, store.ActivityFilter{})
	if err := c.Server.Updates.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	after, _ := c.Store.ActivityLog(ctx, store.ActivityFilter{})
	if len(after) != len(before) {
		t.Fatalf("a second reconcile wrote %d entries", len(after)-len(before))
	}
}

// Machines whose download fails, that retry at their next check and then complete, still
// count towards the halt, each once however often it failed: the group halts at the report
// of the third machine's failure. After a resume, the failures before it no longer count.
func TestHaltOnRetriedFailures(t *testing.T) {
	ctx := context.Background()
	c := consoletest.Start(t, consoletest.Options{})
	p := rollout.DefaultPolicy()
	p.HaltErrors = 3
	c.Group("stable", p)
	c.Publish("stable", c.Payload("2.0.0", nil, nil))
	paused := func() *store.Group {
		t.Helper()
		g, err := c.Store.Group(ctx, c.App.ID, "stable")
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	// fail has the machine offered 2.0.0 and its download fail.
	fail := func(m *machine) {
		t.Helper()
		if v := m.check(); v != "2.0.0" {
			t.Fatalf("%s offered %q, want 2.0.0 (%s)", m.id, v, c.Instance(m.id).HoldReason)
		}
		m.do(false, omaha.DownloadStarted())
		m.do(false, omaha.Failed(omaha.ErrorCodeDownloadTransferError))
	}
	retry := func(m *machine) {
		t.Helper()
		if v := m.check(); v != "2.0.0" {
			t.Fatalf("%s offered %q again, want 2.0.0 (%s)", m.id, v, c.Instance(m.id).HoldReason)
		}
		m.update("2.0.0")
	}
	m0, m1, m2, m3 := newMachine(t, c, "m0", "1.0.0"), newMachine(t, c, "m1", "1.0.0"), newMachine(t, c, "m2", "1.0.0"), newMachine(t, c, "m3", "1.0.0")
	fail(m0)
	fail(m0) // twice: one machine
	retry(m0)
	fail(m1)
	retry(m1)
	if g := paused(); g.Paused {
		t.Fatalf("halted after two machines failed: %s", g.PausedReason)
	}
	if in := c.Instance("m0"); in.Status != rollout.StatusComplete {
		t.Fatalf("m0 after its retry: %s", in.Status)
	}
	fail(m2)
	g := paused()
	if !g.Paused || g.PausedBy != store.ActorRollout || !strings.Contains(g.PausedReason, "3 of 3 attempts failed") {
		t.Fatalf("after the third machine failed: paused %v by %q: %q", g.Paused, g.PausedBy, g.PausedReason)
	}
	if v := m3.check(); v != "" || c.Instance("m3").Hold != rollout.ReasonPaused {
		t.Fatalf("m3 offered %q in a halted group: %s", v, c.Instance("m3").HoldReason)
	}
	// Resumed: judged afresh, the group grants again instead of halting at once, and counts
	// the failures after the resume.
	if err := c.Store.Resume(ctx, c.App.ID, g.ID); err != nil {
		t.Fatal(err)
	}
	retry(m2)
	fail(m3)
	if g := paused(); g.Paused {
		t.Fatalf("halted again after a resume and one failure: %s", g.PausedReason)
	}
}

// Admin approval and an update window hold a group back, each with its reason.
func TestApprovalAndWindow(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC) // a Thursday
	c := consoletest.Start(t, consoletest.Options{Now: func() time.Time { return now }})
	p := rollout.DefaultPolicy()
	p.Approval, p.WindowStart, p.WindowLength = rollout.ApprovalAdmin, "Thu 09:00", "2h"
	c.Group("stable", p)
	c.Publish("stable", c.Payload("2.0.0", nil, nil))
	m := newMachine(t, c, "m1", "1.0.0")
	if v := m.check(); v != "" || !strings.Contains(c.Instance("m1").HoldReason, "awaits an admin's approval") {
		t.Fatalf("unapproved: %q %q", v, c.Instance("m1").HoldReason)
	}
	if _, err := c.API("POST", "/apps/"+c.App.ID+"/groups/stable/approve", nil, nil); err != nil {
		t.Fatal(err)
	}
	if v := m.check(); v != "2.0.0" {
		t.Fatalf("approved, in the window: %q %q", v, c.Instance("m1").HoldReason)
	}
	now = now.Add(2 * time.Hour)
	if v := newMachine(t, c, "m2", "1.0.0").check(); v != "" || !strings.Contains(c.Instance("m2").HoldReason, "outside the update window") {
		t.Fatalf("outside the window: %q %q", v, c.Instance("m2").HoldReason)
	}
}

// What stock update_engine and other clients send: Flatcar's app id and events, an
// unknown application, a request without a machine id, garbage.
func TestOtherClients(t *testing.T) {
	ctx := context.Background()
	c := consoletest.Start(t, consoletest.Options{})
	flatcar, err := c.Server.EnsureApp(ctx, "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}", "Flatcar")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Server.EnsureGroup(ctx, flatcar.ID, "stable"); err != nil {
		t.Fatal(err)
	}
	// update_engine's first request after a start: a 3/2 without a previous version, which
	// tells nothing, with a ping and a check, in capitals and braces.
	body := `<?xml version="1.0" encoding="UTF-8"?>
<request protocol="3.0" version="update_engine-0.4.10" updaterversion="update_engine-0.4.10" installsource="scheduler" ismachine="1">
<os version="Chateau" platform="CoreOS" sp="3033.2.0_x86_64"></os>
<app appid="{E96281A6-D1AF-4BDE-9A0A-97B76E56DC57}" version="3033.2.0" track="stable" bootid="{b5c8}" oem="ami" oemversion="0.1"
 alephversion="2905.2.0" machineid="f0cc" machinealias="" lang="en-US" board="amd64-usr" hardware_class="" delta_okay="false">
<ping active="1"></ping><updatecheck targetversionprefix=""></updatecheck>
<event eventtype="3" eventresult="2" previousversion=""></event>
</app></request>`
	res, err := http.Post(c.UpdateURL(), "text/xml", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := omaha.ParseResponse(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	a := resp.Apps[0]
	if a.Status != "ok" || a.UpdateCheck.Status != "noupdate" || len(a.Events) != 1 || a.Ping == nil {
		t.Fatalf("answer %+v", a)
	}
	in, err := c.Store.Instance(ctx, flatcar.ID, "f0cc")
	if err != nil || in.Version != "3033.2.0" || in.OEM != "ami" || in.AlephVersion != "2905.2.0" || in.Status != rollout.StatusUndefined {
		t.Fatalf("flatcar instance %+v %v", in, err)
	}
	// Unknown application.
	resp, err = (&omaha.Client{URL: c.UpdateURL()}).Do(ctx, &omaha.Request{Protocol: "3.0", Apps: []*omaha.AppRequest{{ID: "{other}", MachineID: "x",
		UpdateCheck: &omaha.UpdateCheck{}}}})
	if err != nil || resp.Apps[0].Status != omaha.StatusUnknownApplication {
		t.Fatalf("unknown app: %+v %v", resp, err)
	}
	// No machine id: answered, nothing recorded.
	m := newMachine(t, c, "", "1.0.0")
	if v := m.check(); v != "" {
		t.Fatal(v)
	}
	// Garbage is a 400.
	for _, bad := range []string{"<request", `<request protocol="2.0"/>`, strings.Repeat("x", 2<<20)} {
		res, err := http.Post(c.UpdateURL(), "text/xml", strings.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("%.20q: %s", bad, res.Status)
		}
	}
}

// A routine check that changes nothing is answered without a write: the last check time is
// kept to within a minute, and anything new (an attribute, a hold of another kind, an
// offer) goes to the write path at once.
func TestRoutineChecksDoNotWrite(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	at := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c := consoletest.Start(t, consoletest.Options{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	p := rollout.DefaultPolicy()
	p.MaxInFlight = 1
	c.Group("stable", p)
	c.Publish("stable", c.Payload("2.0.0", nil, nil))
	a, b := newMachine(t, c, "a", "1.0.0"), newMachine(t, c, "b", "1.0.0")
	if a.check() != "2.0.0" || b.check() != "" {
		t.Fatal("the first machine is not the one in flight")
	}
	first := c.Instance("b")
	if first.Hold != rollout.ReasonMaxInFlight || first.LastCheckAt != now {
		t.Fatalf("held %+v", first)
	}
	at(30 * time.Second)
	if b.check() != "" {
		t.Fatal("offered")
	}
	if in := c.Instance("b"); in.LastCheckAt != first.LastCheckAt {
		t.Fatalf("a routine check wrote: last check %v", in.LastCheckAt)
	}
	// A new alias is written at once.
	app := &omaha.AppRequest{ID: consoletest.AppID, Version: "1.0.0", Track: "stable", MachineID: "b", MachineAlias: "renamed",
		UpdateCheck: &omaha.UpdateCheck{}}
	if _, err := b.c.Do(ctx, &omaha.Request{Protocol: "3.0", Apps: []*omaha.AppRequest{app}}); err != nil {
		t.Fatal(err)
	}
	if in := c.Instance("b"); in.Alias != "renamed" || in.LastCheckAt != now {
		t.Fatalf("a new alias not written: %+v", in)
	}
	// A minute on, the last check is written again.
	at(61 * time.Second)
	b.check()
	if in := c.Instance("b"); in.LastCheckAt != now {
		t.Fatalf("last check %v after a minute, want %v", in.LastCheckAt, now)
	}
	// Another minute on, with nothing else new: the check is a read, and its time is written
	// with the others of its batch.
	at(61 * time.Second)
	b.check()
	if in := c.Instance("b"); in.LastCheckAt.Equal(now) {
		t.Fatal("a routine check wrote its last check time itself")
	}
	if err := c.Server.Updates.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if in := c.Instance("b"); in.LastCheckAt != now {
		t.Fatalf("last check %v after the batch, want %v", in.LastCheckAt, now)
	}
	// Paused: another kind of hold, written at once.
	at(time.Second)
	if _, err := c.API("POST", "/apps/"+c.App.ID+"/groups/stable/pause", nil, nil); err != nil {
		t.Fatal(err)
	}
	b.check()
	if in := c.Instance("b"); in.Hold != rollout.ReasonPaused || !strings.Contains(in.HoldReason, "paused by admin") {
		t.Fatalf("after the pause %+v", in)
	}
	// Resumed, and the slot free: an offer, at once.
	if _, err := c.API("POST", "/apps/"+c.App.ID+"/groups/stable/resume", nil, nil); err != nil {
		t.Fatal(err)
	}
	a.update("2.0.0")
	if v := b.check(); v != "2.0.0" {
		t.Fatalf("a free slot: offered %q", v)
	}
}

// What Cairn's engine reports beyond Omaha: pods with its checks (a list that did not change
// is no write), the operation, step and progress of its update in events and in reports of
// their own, cleared by the completion and by a check; the boot tries of a rollback.
func TestReports(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	at := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c := consoletest.Start(t, consoletest.Options{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	c.Group("stable", rollout.DefaultPolicy())
	m := newMachine(t, c, "m1", "1.0.0")
	send := func(check bool, r omaha.Report, events ...*omaha.EventRequest) {
		t.Helper()
		app := &omaha.AppRequest{ID: m.appID, Version: m.version, Track: m.track, MachineID: m.id, Events: events, Report: r}
		if check {
			app.Ping, app.UpdateCheck = &omaha.PingRequest{Active: 1}, &omaha.UpdateCheck{}
		}
		if _, err := m.c.Do(context.Background(), &omaha.Request{Protocol: omaha.Protocol, Apps: []*omaha.AppRequest{app}}); err != nil {
			t.Fatal(err)
		}
	}
	pods := omaha.BoundPods([]omaha.Pod{{UUID: "u1", State: "running", Apps: []omaha.PodApp{{Name: "web", Image: "example.com/web:1", State: "running"}}}})
	send(true, omaha.Report{Pods: pods})
	first := c.Instance("m1")
	if len(first.Pods) != 1 || first.Pods[0].Apps[0].Image != "example.com/web:1" || first.PodsTotal != 1 || first.PodsAt != now {
		t.Fatalf("pods %+v", first)
	}
	at(10 * time.Second)
	send(true, omaha.Report{Pods: pods})
	if in := c.Instance("m1"); in.LastCheckAt != first.LastCheckAt || in.PodsAt != first.PodsAt {
		t.Fatalf("the same pods again wrote: %+v", in)
	}
	at(10 * time.Second)
	send(true, omaha.Report{Pods: omaha.BoundPods(nil)})
	if in := c.Instance("m1"); len(in.Pods) != 0 || in.PodsAt != now {
		t.Fatalf("no pods: %+v", in)
	}

	c.Publish("stable", c.Payload("2.0.0", nil, nil))
	if v := m.check(); v != "2.0.0" {
		t.Fatalf("offered %q", v)
	}
	send(false, omaha.Report{Operation: "UPDATE_STATUS_DOWNLOADING", Step: "download"}, omaha.DownloadStarted())
	at(10 * time.Second)
	send(false, omaha.Report{Operation: "UPDATE_STATUS_DOWNLOADING", Step: "download", Progress: 0.5})
	if in := c.Instance("m1"); in.Status != rollout.StatusDownloading || in.Operation != "UPDATE_STATUS_DOWNLOADING" || in.Step != "download" ||
		in.Progress != 0.5 || in.ProgressAt != now {
		t.Fatalf("downloading: %+v", in)
	}
	send(false, omaha.Report{Operation: "UPDATE_STATUS_FINALIZING", Step: "write-usr", Progress: 0.25})
	send(false, omaha.Report{Operation: "UPDATE_STATUS_UPDATED_NEED_REBOOT", Progress: 1}, omaha.Installed())
	if in := c.Instance("m1"); in.Status != rollout.StatusInstalled || in.Operation != "UPDATE_STATUS_UPDATED_NEED_REBOOT" || in.Progress != 1 {
		t.Fatalf("installed: %+v", in)
	}
	m.version = "2.0.0"
	send(false, omaha.Report{}, omaha.Complete("1.0.0"))
	if in := c.Instance("m1"); in.Status != rollout.StatusComplete || in.Operation != "" || in.Step != "" || in.Progress != 0 {
		t.Fatalf("complete: %+v", in)
	}

	// A failure keeps where it failed, until the next check.
	c.Publish("stable", c.Payload("3.0.0", nil, nil))
	if v := m.check(); v != "3.0.0" {
		t.Fatalf("offered %q", v)
	}
	send(false, omaha.Report{Operation: "UPDATE_STATUS_REPORTING_ERROR_EVENT", Step: "verify-usr", Progress: 0.75}, omaha.Failed(omaha.ErrorCodeNewRootfsVerification))
	if in := c.Instance("m1"); in.Status != rollout.StatusError || in.Step != "verify-usr" || in.Progress != 0.75 {
		t.Fatalf("failed: %+v", in)
	}
	c.Unpublish("stable")
	send(true, omaha.Report{})
	if in := c.Instance("m1"); in.Operation != "" || in.Step != "" {
		t.Fatalf("checked after the failure: %+v", in)
	}
}
