package engine

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/update-engine/api"
	"github.com/cairn-os/cairn/update-engine/apply"
	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/omaha/omahatest"
	"github.com/cairn-os/cairn/update-engine/payload"
	"github.com/cairn-os/cairn/update-engine/slots"
	"github.com/cairn-os/cairn/update-engine/updateconf"
)

const appID = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}"

type machine struct {
	t       *testing.T
	dir     string
	cmdline string
	srv     *omahatest.Server
	url     string
	keys    []ed25519.PublicKey
	priv    ed25519.PrivateKey
	slots   *slots.Slots

	mu       sync.Mutex
	requests []*omaha.Request // every Omaha request the server answered, in order
}

func newMachine(t *testing.T) *machine {
	m := &machine{t: t, dir: t.TempDir()}
	privPEM, pubPEM, _ := payload.GenerateKey()
	m.priv, _ = payload.ParsePrivateKey(privPEM)
	m.keys, _ = payload.ParsePublicKeys(pubPEM)
	for _, s := range []string{"A", "B"} {
		os.WriteFile(filepath.Join(m.dir, "usr-"+s), make([]byte, 1<<20), 0o644)
	}
	m.cmdline = filepath.Join(m.dir, "cmdline")
	m.boot(disklayout.SlotA)
	esp := slots.DirESP{Root: filepath.Join(m.dir, "esp")}
	esp.Create(context.Background(), "EFI/Linux/cairn-1.0.0-A.efi", strings.NewReader("A"))
	m.slots = &slots.Slots{ESP: esp, Cmdline: m.cmdline, BootEnv: filepath.Join(m.dir, "no-boot.env"), EFIVars: filepath.Join(m.dir, "none"),
		PartitionPath: func(s disklayout.Slot) (string, error) { return filepath.Join(m.dir, "usr-"+string(s)), nil }}
	m.srv = &omahatest.Server{Dir: filepath.Join(m.dir, "payloads"), AppID: appID}
	inner := m.srv.Handler()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			if req, err := omaha.ParseRequest(bytes.NewReader(body)); err == nil {
				m.mu.Lock()
				m.requests = append(m.requests, req)
				m.mu.Unlock()
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	m.url = hs.URL + omahatest.UpdatePath
	return m
}

func (m *machine) boot(s disklayout.Slot) {
	os.WriteFile(m.cmdline, []byte("mount.usr=PARTUUID="+s.Partition().GUID), 0o644)
}

func (m *machine) publish(version string, key ed25519.PrivateKey) {
	dir := filepath.Join(m.srv.Dir, "stable")
	os.MkdirAll(dir, 0o755)
	f, _ := os.Create(filepath.Join(dir, version+".cairn"))
	defer f.Close()
	src := func(name string, b []byte) payload.Source {
		return payload.Source{Name: name, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
	}
	if _, err := payload.Build(f, payload.BuildOptions{Version: version, Board: "amd64-usr",
		USR: src("usr", bytes.Repeat([]byte(version), 50000)), UKI: src("uki", []byte("uki "+version)), TempDir: m.t.TempDir()}, key); err != nil {
		m.t.Fatal(err)
	}
}

func (m *machine) engine(version string) *Engine {
	return &Engine{
		Omaha:   &omaha.Client{URL: m.url},
		Applier: &apply.Applier{Slots: m.slots, StateDir: filepath.Join(m.dir, "state"), Keys: m.keys, Board: "amd64-usr", CurrentVersion: version},
		Slots:   m.slots, AppID: appID, Group: "stable", Board: "amd64-usr", MachineID: "machine-1", Version: version,
		Schedule: updateconf.Schedule{Initial: time.Hour, Interval: time.Hour},
	}
}

// sent returns the Omaha requests the server has answered so far.
func (m *machine) sent() []*omaha.Request {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*omaha.Request(nil), m.requests...)
}

func (m *machine) events() string {
	var s []string
	for _, e := range m.srv.Events() {
		x := e.Type.String()
		switch e.Result {
		case omaha.EventResultSuccessReboot:
			x += "/reboot"
		case omaha.EventResultError:
			x += "/error"
		}
		if e.ErrorCode != 0 {
			x += "/" + strconv.Itoa(int(e.ErrorCode))
		}
		if e.PreviousVersion != "" {
			x += "/from " + e.PreviousVersion
		}
		s = append(s, x)
	}
	return strings.Join(s, ", ")
}

func TestUpdateRebootReport(t *testing.T) {
	m := newMachine(t)
	ctx := context.Background()
	e := m.engine("1.0.0")
	if res, err := e.Update(ctx, omaha.InstallSourceScheduler, false); err != nil || res != api.ResultNoUpdate {
		t.Fatalf("nothing published: %v %v", res, err)
	}
	m.publish("2.0.0", m.priv)
	res, err := e.Update(ctx, omaha.InstallSourceScheduler, false)
	if err != nil || res != api.ResultUpdated {
		t.Fatalf("update: %v %v", res, err)
	}
	if st := e.Status(); st.CurrentOperation != api.OpNeedReboot || st.NewVersion != "2.0.0" || st.Progress != 1 {
		t.Fatalf("status %+v", st)
	}
	if got, want := m.events(), "download started, download finished, update installed"; got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	// update_engine restarts before the reboot: still "need reboot", and nothing to report.
	e2 := m.engine("1.0.0")
	if err := e2.ReportBoot(ctx); err != nil || e2.Status().CurrentOperation != api.OpNeedReboot {
		t.Fatalf("after restart: %v %+v", err, e2.Status())
	}
	// A client's update before the restarted engine has looked: the same, and no check (a
	// server holding the machine as installed would refuse it).
	before := len(m.sent())
	e4 := m.engine("1.0.0")
	if res, err := e4.Update(ctx, omaha.InstallSourceOnDemand, false); err != nil || res != api.ResultAlreadyUpdated || len(m.sent()) != before ||
		e4.Status().CurrentOperation != api.OpNeedReboot || e4.Status().NewVersion != "2.0.0" {
		t.Fatalf("update after restart: %v %v, %d requests, status %+v", res, err, len(m.sent())-before, e4.Status())
	}
	// The reboot: the loader takes B (one try used), the new version runs on trial: nothing
	// is reported, and no update may overwrite slot A, the one to fall back to.
	m.slots.CountBootAttempt(ctx, disklayout.SlotB)
	m.boot(disklayout.SlotB)
	e3 := m.engine("2.0.0")
	if err := e3.ReportBoot(ctx); !errors.Is(err, ErrOnTrial) {
		t.Fatalf("report on trial: %v, want ErrOnTrial", err)
	}
	m.publish("3.0.0", m.priv)
	if res, err := e3.Update(ctx, omaha.InstallSourceOnDemand, false); !errors.Is(err, ErrOnTrial) || res != api.ResultNoUpdate {
		t.Fatalf("update on trial: %v %v, want ErrOnTrial", res, err)
	}
	if got, want := m.events(), "download started, download finished, update installed"; got != want {
		t.Fatalf("events on trial %q, want %q", got, want)
	}
	// systemd-bless-boot marks B good: the update is complete.
	if err := m.slots.MarkGood(ctx, disklayout.SlotB); err != nil {
		t.Fatal(err)
	}
	if err := e3.ReportBoot(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := m.events(), "download started, download finished, update installed, update complete/reboot/from 1.0.0"; got != want {
		t.Fatalf("events after the bless %q, want %q", got, want)
	}
	if p, _ := apply.ReadPending(e3.Applier.StateDir); p != nil {
		t.Fatal("pending record kept after the report")
	}
	if a, _ := readAttempt(e3.Applier.StateDir); a != nil {
		t.Fatalf("attempt record kept after the report: %+v", a)
	}
}

func TestRollbackReported(t *testing.T) {
	m := newMachine(t)
	ctx := context.Background()
	m.publish("2.0.0", m.priv)
	if _, err := m.engine("1.0.0").Update(ctx, omaha.InstallSourceScheduler, false); err != nil {
		t.Fatal(err)
	}
	for range 3 { // three failed boots of B, then the loader falls back to A
		m.slots.CountBootAttempt(ctx, disklayout.SlotB)
	}
	e := m.engine("1.0.0")
	if err := e.ReportBoot(ctx); err != nil {
		t.Fatal(err)
	}
	reported := m.events()
	if !strings.HasSuffix(reported, "update installed, update complete/error/44/from 2.0.0") {
		t.Fatalf("events: %s", reported)
	}
	// With the boot counter of the slot it fell back from: three tries, none left.
	reqs := m.sent()
	if ev := reqs[len(reqs)-1].Apps[0].Events[0]; ev.TriesDone != 3 || ev.TriesLeft != 0 {
		t.Fatalf("rollback event %+v", ev)
	}
	// Offered 2.0.0 again (as Nebraska offers it; the console only to a check asked for on
	// the machine), the engine does not take it: no update, nothing downloaded, the status says why, and the
	// server hears that the machine declines it (35), so that it holds no update in progress.
	if res, err := e.Update(ctx, omaha.InstallSourceOnDemand, false); err != nil || res != api.ResultNoUpdate {
		t.Fatalf("2.0.0 offered again: %v %v, want no update", res, err)
	}
	if got, want := m.events(), reported+", update complete/error/35"; got != want {
		t.Fatalf("events after the refusal: %s, want %s", got, want)
	}
	if st := e.Status(); st.CurrentOperation != api.OpIdle || st.NewVersion != "" || !strings.Contains(st.LastError, ErrRolledBack.Error()) {
		t.Fatalf("status after the refusal: %+v", st)
	}
	// An operator can force it.
	if res, err := e.Update(ctx, omaha.InstallSourceOnDemand, true); err != nil || res != api.ResultUpdated {
		t.Fatalf("forced: %v %v", res, err)
	}
}

// The new version boots once, is never blessed good (boot-complete.target is not reached),
// and the loader falls back after its last try: the rollback is reported, and no "complete"
// came before it, so that the server still had the update in progress when it heard.
func TestRollbackAfterBootingTheNewVersion(t *testing.T) {
	m := newMachine(t)
	ctx := context.Background()
	m.publish("2.0.0", m.priv)
	if _, err := m.engine("1.0.0").Update(ctx, omaha.InstallSourceScheduler, false); err != nil {
		t.Fatal(err)
	}
	m.slots.CountBootAttempt(ctx, disklayout.SlotB)
	m.boot(disklayout.SlotB)
	if err := m.engine("2.0.0").ReportBoot(ctx); !errors.Is(err, ErrOnTrial) {
		t.Fatalf("first boot of B: %v, want ErrOnTrial", err)
	}
	for range 2 {
		m.slots.CountBootAttempt(ctx, disklayout.SlotB)
	}
	m.boot(disklayout.SlotA)
	if err := m.engine("1.0.0").ReportBoot(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := m.events(), "download started, download finished, update installed, update complete/error/44/from 2.0.0"; got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
}

// An attempt the server has not heard the end of is reported by the next start: interrupted
// (the process died mid-update), installed (the machine went down before the event went
// out), or undone (reset_status).
func TestAttemptEndReported(t *testing.T) {
	ctx := context.Background()
	t.Run("interrupted", func(t *testing.T) {
		m := newMachine(t)
		m.publish("2.0.0", m.priv)
		m.srv.Rate = 10 << 10 // slow enough for the cancel to come mid-download
		e := m.engine("1.0.0")
		// The download is cancelled half-way, as a stopped daemon's is.
		uctx, cancel := context.WithCancel(ctx)
		ch, stop := e.Subscribe()
		go func() {
			defer stop()
			for s := range ch {
				if s.CurrentOperation == api.OpDownloading {
					cancel()
					return
				}
			}
		}()
		if _, err := e.Update(uctx, omaha.InstallSourceScheduler, false); err == nil {
			t.Fatal("cancelled update succeeded")
		}
		if got := m.events(); got != "download started" {
			t.Fatalf("events %q", got)
		}
		if err := m.engine("1.0.0").ReportBoot(ctx); err != nil {
			t.Fatal(err)
		}
		if got, want := m.events(), "download started, update complete/error/1005"; got != want {
			t.Fatalf("events %q, want %q", got, want)
		}
		// Once.
		if err := m.engine("1.0.0").ReportBoot(ctx); err != nil || m.events() != "download started, update complete/error/1005" {
			t.Fatalf("reported again: %v %s", err, m.events())
		}
	})
	t.Run("installed", func(t *testing.T) {
		m := newMachine(t)
		m.publish("2.0.0", m.priv)
		e := m.engine("1.0.0")
		if _, err := e.Update(ctx, omaha.InstallSourceScheduler, false); err != nil {
			t.Fatal(err)
		}
		// As if the installed event had never left: the record is there again.
		if err := writeAttempt(e.Applier.StateDir, attempt{Version: "2.0.0"}); err != nil {
			t.Fatal(err)
		}
		if err := m.engine("1.0.0").ReportBoot(ctx); err != nil {
			t.Fatal(err)
		}
		if got, want := m.events(), "download started, download finished, update installed, update installed"; got != want {
			t.Fatalf("events %q, want %q", got, want)
		}
	})
	t.Run("undone", func(t *testing.T) {
		m := newMachine(t)
		m.publish("2.0.0", m.priv)
		e := m.engine("1.0.0")
		if _, err := e.Update(ctx, omaha.InstallSourceScheduler, false); err != nil {
			t.Fatal(err)
		}
		if err := e.ResetStatus(ctx); err != nil {
			t.Fatal(err)
		}
		if err := e.ReportBoot(ctx); err != nil {
			t.Fatal(err)
		}
		if got, want := m.events(), "download started, download finished, update installed, update complete/error/1004"; got != want {
			t.Fatalf("events %q, want %q", got, want)
		}
	})
}

// The request carries what Nebraska shows of a machine: its alias, OEM and OEM version, and
// the version it was first installed with.
func TestRequestAttributes(t *testing.T) {
	m := newMachine(t)
	e := m.engine("1.0.0")
	e.MachineAlias, e.OEM, e.OEMVersion = "node-1", "qemu", "0.3"
	aleph, err := AlephVersion(e.Applier.StateDir, "0.9.0")
	if err != nil || aleph != "0.9.0" {
		t.Fatalf("aleph %q %v", aleph, err)
	}
	// Written once: a later version does not replace it.
	if aleph, err = AlephVersion(e.Applier.StateDir, "1.0.0"); err != nil || aleph != "0.9.0" {
		t.Fatalf("aleph after an update %q %v", aleph, err)
	}
	e.AlephVersion = aleph
	if _, err := e.Update(context.Background(), omaha.InstallSourceScheduler, false); err != nil {
		t.Fatal(err)
	}
	reqs := m.sent()
	if len(reqs) != 1 || len(reqs[0].Apps) != 1 {
		t.Fatalf("requests %+v", reqs)
	}
	a := reqs[0].Apps[0]
	if a.MachineAlias != "node-1" || a.OEM != "qemu" || a.OEMVersion != "0.3" || a.AlephVersion != "0.9.0" || a.MachineID != "machine-1" || a.Version != "1.0.0" {
		t.Fatalf("request app %+v", a)
	}
}

func TestFailedUpdateReportsError(t *testing.T) {
	m := newMachine(t)
	other, _, _ := payload.GenerateKey()
	otherKey, _ := payload.ParsePrivateKey(other)
	m.publish("2.0.0", otherKey)
	e := m.engine("1.0.0")
	if _, err := e.Update(context.Background(), omaha.InstallSourceScheduler, false); err == nil {
		t.Fatal("payload signed by an unknown key applied")
	}
	if got, want := m.events(), "download started, download finished, update complete/error/18"; got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	if st := e.Status(); st.CurrentOperation != api.OpIdle || !strings.Contains(st.LastError, "signature") {
		t.Fatalf("status %+v", st)
	}
}

func TestResetStatusUndoesUnbootedUpdate(t *testing.T) {
	m := newMachine(t)
	ctx := context.Background()
	m.publish("2.0.0", m.priv)
	e := m.engine("1.0.0")
	if _, err := e.Update(ctx, omaha.InstallSourceScheduler, false); err != nil {
		t.Fatal(err)
	}
	if err := e.ResetStatus(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ := m.slots.Status(ctx)
	if st.Next != disklayout.SlotA || st.Slot(disklayout.SlotB).State != slots.StateEmpty || e.Status().CurrentOperation != api.OpIdle {
		t.Fatalf("after reset: %+v %+v", st, e.Status())
	}
}

func TestSocket(t *testing.T) {
	m := newMachine(t)
	m.publish("2.0.0", m.priv)
	e := m.engine("1.0.0")
	sock := filepath.Join(t.TempDir(), "ue.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	go (&Server{Engine: e, Trigger: make(chan struct{}, 1)}).Serve(ctx, ln)
	var last api.Reply
	var ops []string
	if err := api.Dial(ctx, sock, api.Call{Method: api.MethodUpdate}, func(r api.Reply) bool {
		last = r
		if r.Status != nil {
			ops = append(ops, r.Status.CurrentOperation)
		}
		return !r.Done
	}); err != nil {
		t.Fatal(err)
	}
	if !last.Done || last.Result != "updated" || last.Error != "" {
		t.Fatalf("final reply %+v", last)
	}
	if s := strings.Join(ops, " "); !strings.Contains(s, api.OpDownloading) || !strings.Contains(s, api.OpFinalizing) {
		t.Fatalf("operations seen: %s", s)
	}
	var slotsReply api.Reply
	api.Dial(ctx, sock, api.Call{Method: api.MethodSlots}, func(r api.Reply) bool { slotsReply = r; return false })
	if slotsReply.Slots == nil || slotsReply.Slots.Next != string(disklayout.SlotB) {
		t.Fatalf("slots %+v", slotsReply)
	}
	if err := api.Dial(ctx, sock, api.Call{Method: "Nope"}, func(api.Reply) bool { return false }); err == nil {
		t.Fatal("unknown method accepted")
	}
}

func TestRunLoopOnDemand(t *testing.T) {
	m := newMachine(t)
	m.publish("2.0.0", m.priv)
	e := m.engine("1.0.0")
	ctx := t.Context()
	trigger := make(chan struct{}, 1)
	ch, stop := e.Subscribe()
	defer stop()
	go e.Run(ctx, trigger)
	trigger <- struct{}{}
	deadline := time.After(20 * time.Second)
	for {
		select {
		case s := <-ch:
			if s.CurrentOperation == api.OpNeedReboot {
				if m.srv.Events()[0].Type != omaha.EventTypeUpdateDownloadStarted {
					t.Fatalf("events %+v", m.srv.Events())
				}
				return
			}
		case <-deadline:
			t.Fatalf("no update after AttemptUpdate; status %+v", e.Status())
		}
	}
}

func TestSocketUpdateWhileBusyFollows(t *testing.T) {
	m := newMachine(t)
	m.publish("2.0.0", m.priv)
	e := m.engine("1.0.0")
	sock := filepath.Join(t.TempDir(), "ue.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	go (&Server{Engine: e, Trigger: make(chan struct{}, 1)}).Serve(ctx, ln)
	// The scheduler holds the engine: a client's Update must wait for that run's result.
	if err := e.begin(); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		e.end()
		e.setStatus(func(s *api.Status) { s.CurrentOperation = api.OpNeedReboot })
	}()
	var last api.Reply
	if err := api.Dial(ctx, sock, api.Call{Method: api.MethodUpdate}, func(r api.Reply) bool { last = r; return !r.Done }); err != nil {
		t.Fatal(err)
	}
	if last.Result != "updated" || last.Error != "" {
		t.Fatalf("final reply %+v", last)
	}
}

// TestBootReportRetried: after the reboot into an update the version is blessed good a
// little later, and the network may not be up when the engine starts; the report must
// still reach the server, without waiting for a check.
func TestBootReportRetried(t *testing.T) {
	m := newMachine(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m.publish("2.0.0", m.priv)
	if _, err := m.engine("1.0.0").Update(ctx, omaha.InstallSourceScheduler, false); err != nil {
		t.Fatal(err)
	}
	m.slots.CountBootAttempt(ctx, disklayout.SlotB)
	m.boot(disklayout.SlotB)
	// Blessed good a moment after the engine starts, as systemd-bless-boot does once
	// boot-complete.target is reached.
	go func() {
		time.Sleep(300 * time.Millisecond)
		m.slots.MarkGood(ctx, disklayout.SlotB)
	}()
	var mu sync.Mutex
	refused := 0
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		first := refused == 0
		if first {
			refused++
		}
		mu.Unlock()
		if first {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		m.srv.Handler().ServeHTTP(w, r)
	}))
	defer flaky.Close()
	e := m.engine("2.0.0")
	e.Omaha.URL = flaky.URL + omahatest.UpdatePath
	e.BlessPoll = 100 * time.Millisecond
	done := make(chan struct{})
	go func() { e.Run(ctx, nil); close(done) }()
	for !strings.HasSuffix(m.events(), "update complete/reboot/from 1.0.0") {
		select {
		case <-ctx.Done():
			t.Fatalf("the boot report never arrived; events: %s", m.events())
		case <-time.After(100 * time.Millisecond):
		}
	}
	cancel()
	<-done
	if refused != 1 {
		t.Fatalf("the server refused %d reports, want 1", refused)
	}
}
