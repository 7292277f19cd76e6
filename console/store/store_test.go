package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/update-engine/omaha"
)

// suite is every store test; TestStore runs it on SQLite and on PostgreSQL, each test on
// a fresh database.
var suite = []struct {
	name string
	f    func(t *testing.T, s *Store)
}{
	{"migrate", testMigrate},
	{"apps", testApps},
	{"packages and channels", testPackagesChannels},
	{"groups", testGroups},
	{"check-ins and events", testCheckIns},
	{"reports: progress and pods", testReports},
	{"last checks in a batch", testTouchLastChecks},
	{"rollout stats", testRolloutStats},
	{"rollout failures", testRolloutFailures},
	{"instances list", testInstancesList},
	{"activity and audit", testActivity},
	{"users, sessions, tokens", testUsers},
	{"concurrent writers", testConcurrentWriters},
}

func TestStore(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		for _, c := range suite {
			t.Run(c.name, func(t *testing.T) {
				c.f(t, openTest(t, filepath.Join(t.TempDir(), "console.db")))
			})
		}
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := testenv.Postgres(t)
		admin := openTest(t, dsn)
		var n atomic.Int32
		for _, c := range suite {
			t.Run(c.name, func(t *testing.T) {
				db := fmt.Sprintf("t%d", n.Add(1))
				if _, err := admin.w.ExecContext(context.Background(), "CREATE DATABASE "+db); err != nil {
					t.Fatal(err)
				}
				c.f(t, openTest(t, strings.Replace(dsn, "dbname=test", "dbname="+db, 1)))
			})
		}
	})
}

// clock is a test's time, moved by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time                { return c.t }
func (c *clock) add(d time.Duration) time.Time { c.t = c.t.Add(d); return c.t }

func openTest(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func must[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func testMigrate(t *testing.T, s *Store) {
	ctx := context.Background()
	ms, _ := Migrations()
	if v, err := s.SchemaVersion(ctx); err != nil || v != len(ms) {
		t.Fatalf("schema version %d %v, want %d", v, err, len(ms))
	}
	// Again: nothing to do.
	if applied, err := s.Migrate(ctx); err != nil || len(applied) != 0 {
		t.Fatalf("second migrate: %v %v", applied, err)
	}
	if err := s.CheckSchema(ctx); err != nil {
		t.Fatal(err)
	}
	// A newer console's database is refused, by Migrate and by CheckSchema.
	if err := s.Write(ctx, func(tx *Tx) error {
		_, err := tx.exec(ctx, `INSERT INTO schema_version (version, name, applied_at) VALUES (?, 'from-the-future', 0)`, len(ms)+1)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Migrate(ctx); !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), "newer cairn-console") {
		t.Fatalf("migrate of a newer schema: %v", err)
	}
	if err := s.CheckSchema(ctx); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("check of a newer schema: %v", err)
	}
}

func testApps(t *testing.T, s *Store) {
	ctx := context.Background()
	cairn := must[*App](t)(s.CreateApp(ctx, App{ProductID: "io.github.cairn-os.cairn", Name: "Cairn"}))
	flatcar := must[*App](t)(s.CreateApp(ctx, App{ID: "{E96281A6-D1AF-4BDE-9A0A-97B76E56DC57}", Name: "Flatcar"}))
	if flatcar.ID != "e96281a6-d1af-4bde-9a0a-97b76e56dc57" {
		t.Fatalf("app id kept as %q", flatcar.ID)
	}
	for ref, want := range map[string]string{
		"io.github.cairn-os.cairn": cairn.ID, "IO.GITHUB.CAIRN-OS.CAIRN": cairn.ID, cairn.ID: cairn.ID,
		"{e96281a6-d1af-4bde-9a0a-97b76e56dc57}": flatcar.ID, "E96281A6-D1AF-4BDE-9A0A-97B76E56DC57": flatcar.ID,
	} {
		if a, err := s.App(ctx, ref); err != nil || a.ID != want {
			t.Errorf("App(%q) = %+v %v, want %s", ref, a, err, want)
		}
	}
	if _, err := s.App(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown app: %v", err)
	}
	for _, dup := range []App{{ID: flatcar.ID, Name: "x"}, {ProductID: "io.github.cairn-os.cairn", Name: "x"}, {ID: "io.github.cairn-os.cairn", Name: "x"}} {
		if _, err := s.CreateApp(ctx, dup); !errors.Is(err, ErrConflict) {
			t.Errorf("duplicate %+v: %v", dup, err)
		}
	}
	if _, err := s.CreateApp(ctx, App{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("no name: %v", err)
	}
	if a, err := s.UpdateApp(ctx, cairn.ID, "Cairn OS", "the OS"); err != nil || a.Name != "Cairn OS" || a.ProductID != "io.github.cairn-os.cairn" {
		t.Fatalf("update: %+v %v", a, err)
	}
	if apps := must[[]*App](t)(s.Apps(ctx)); len(apps) != 2 || apps[0].Name != "Cairn OS" {
		t.Fatalf("apps %+v", apps)
	}
	// Deleting an application takes what is in it.
	pkg := must[*Package](t)(s.CreatePackage(ctx, Package{AppID: flatcar.ID, Version: "1.0.0", Filename: "f", SHA256: "aa", Signature: SignatureVerified}))
	must[*Channel](t)(s.CreateChannel(ctx, flatcar.ID, "stable", pkg.ID))
	if err := s.DeleteApp(ctx, flatcar.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PackageByID(ctx, pkg.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("package of a deleted app: %v", err)
	}
}

func newApp(t *testing.T, s *Store) *App {
	t.Helper()
	return must[*App](t)(s.CreateApp(context.Background(), App{ProductID: "io.github.cairn-os.cairn", Name: "Cairn"}))
}

func testPackagesChannels(t *testing.T, s *Store) {
	ctx := context.Background()
	app := newApp(t, s)
	good := must[*Package](t)(s.CreatePackage(ctx, Package{AppID: app.ID, Version: "2.0.0", Board: "amd64-usr", Filename: "cairn-2.0.0.cairn",
		File: "aa.cairn", Size: 10, SHA256: "aa", SHA1: "x", Signature: SignatureVerified, ReleaseNotes: "fixes", CreatedBy: "alice"}))
	bad := must[*Package](t)(s.CreatePackage(ctx, Package{AppID: app.ID, Version: "2.0.1", Filename: "cairn-2.0.1.cairn", File: "bb.cairn",
		Size: 10, SHA256: "bb", Signature: SignatureUnverified, SignatureError: "signed by an unknown key"}))
	// The same file again is the same package; other content under the version is refused.
	if again, err := s.CreatePackage(ctx, Package{AppID: app.ID, Version: "2.0.0", Filename: "x", SHA256: "aa", Signature: SignatureVerified}); err != nil || again.ID != good.ID {
		t.Fatalf("same package again: %+v %v", again, err)
	}
	if _, err := s.CreatePackage(ctx, Package{AppID: app.ID, Version: "2.0.0", Filename: "x", SHA256: "cc", Signature: SignatureVerified}); !errors.Is(err, ErrConflict) ||
		!strings.Contains(err.Error(), "immutable") {
		t.Fatalf("other content for 2.0.0: %v", err)
	}
	ch := must[*Channel](t)(s.CreateChannel(ctx, app.ID, "stable", good.ID))
	if ch.Version != "2.0.0" || ch.PackageID != good.ID {
		t.Fatalf("channel %+v", ch)
	}
	if _, err := s.CreateChannel(ctx, app.ID, "stable", ""); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate channel: %v", err)
	}
	// An unverified package cannot be published, and the error says what to do.
	err := s.SetChannelPackage(ctx, app.ID, ch.ID, bad.ID)
	if !errors.Is(err, ErrNotVerified) || !strings.Contains(err.Error(), "unknown key") || !strings.Contains(err.Error(), "-keys") {
		t.Fatalf("publishing an unverified package: %v", err)
	}
	if _, err := s.CreateChannel(ctx, app.ID, "beta", bad.ID); !errors.Is(err, ErrNotVerified) {
		t.Fatalf("a channel made on an unverified package: %v", err)
	}
	if _, err := s.Channel(ctx, app.ID, "beta"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the refused channel was made: %v", err)
	}
	// A published package cannot be deleted; an unpublished one can.
	if _, err := s.DeletePackage(ctx, app.ID, good.ID); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "stable") {
		t.Fatalf("deleting a published package: %v", err)
	}
	pkgs := must[[]*Package](t)(s.Packages(ctx, app.ID))
	if len(pkgs) != 2 || strings.Join(pkgs[1].Channels, ",") != "stable" && strings.Join(pkgs[0].Channels, ",") != "stable" {
		t.Fatalf("packages %+v", pkgs)
	}
	if p := must[*Package](t)(s.Package(ctx, app.ID, "2.0.0")); p.ID != good.ID || p.ReleaseNotes != "fixes" || p.CreatedBy != "alice" || len(p.Channels) != 1 {
		t.Fatalf("package by version: %+v", p)
	}
	if err := s.SetChannelPackage(ctx, app.ID, ch.ID, ""); err != nil {
		t.Fatal(err)
	}
	if d, err := s.DeletePackage(ctx, app.ID, good.ID); err != nil || d.File != "aa.cairn" {
		t.Fatalf("delete: %+v %v", d, err)
	}
	if used, _ := s.FileInUse(ctx, "aa.cairn"); used {
		t.Fatal("deleted package's file still in use")
	}
	if err := s.RenameChannel(ctx, app.ID, ch.ID, "lts"); err != nil {
		t.Fatal(err)
	}
	if chs := must[[]*Channel](t)(s.Channels(ctx, app.ID)); len(chs) != 1 || chs[0].Name != "lts" || chs[0].Version != "" {
		t.Fatalf("channels %+v", chs)
	}
	if err := s.DeleteChannel(ctx, app.ID, ch.ID); err != nil {
		t.Fatal(err)
	}
}

// published makes an application with 2.0.0 on channel stable and a group on it.
func published(t *testing.T, s *Store, policy rollout.Policy) (*App, *Group) {
	t.Helper()
	ctx := context.Background()
	app := newApp(t, s)
	pkg := must[*Package](t)(s.CreatePackage(ctx, Package{AppID: app.ID, Version: "2.0.0", Filename: "f", SHA256: "aa", Signature: SignatureVerified}))
	ch := must[*Channel](t)(s.CreateChannel(ctx, app.ID, "stable", pkg.ID))
	g := must[*Group](t)(s.CreateGroup(ctx, app.ID, GroupSpec{Name: "Stable", Track: "stable", ChannelID: ch.ID, Policy: policy}))
	return app, g
}

func testGroups(t *testing.T, s *Store) {
	ctx := context.Background()
	p := rollout.DefaultPolicy()
	p.MaxInFlight, p.WindowStart, p.WindowLength = 5, "Thu 04:00", "2h"
	app, g := published(t, s, p)
	if g.Version != "2.0.0" || g.Channel != "stable" || g.Policy != p || g.Track != "stable" || g.Paused {
		t.Fatalf("group %+v", g)
	}
	for _, ref := range []string{g.ID, "stable", "Stable"} {
		if got, err := s.Group(ctx, app.ID, ref); err != nil || got.ID != g.ID {
			t.Errorf("Group(%q): %+v %v", ref, got, err)
		}
	}
	if _, err := s.CreateGroup(ctx, app.ID, GroupSpec{Name: "Other", Track: "stable", Policy: p}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second group on a track: %v", err)
	}
	bad := p
	bad.HaltPercent = 300
	if _, err := s.CreateGroup(ctx, app.ID, GroupSpec{Name: "Bad", Policy: bad}); !errors.Is(err, ErrInvalid) || !errors.Is(err, rollout.ErrPolicy) {
		t.Fatalf("invalid policy: %v", err)
	}
	if _, err := s.CreateGroup(ctx, app.ID, GroupSpec{Name: "Lost", ChannelID: "no-such-channel", Policy: p}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown channel: %v", err)
	}
	beta := must[*Group](t)(s.CreateGroup(ctx, app.ID, GroupSpec{Name: "beta", Policy: p}))
	if beta.Track != "beta" || beta.Version != "" {
		t.Fatalf("track defaults to the name: %+v", beta)
	}
	p.Canaries = 2
	up := must[*Group](t)(s.UpdateGroup(ctx, app.ID, g.ID, GroupSpec{Name: "Stable", Description: "production", Track: "stable", Policy: p}))
	if up.Policy.Canaries != 2 || up.ChannelID != "" || up.Description != "production" {
		t.Fatalf("updated %+v", up)
	}
	if err := s.Pause(ctx, app.ID, g.ID, "3 of 5 attempts failed", ActorRollout); err != nil {
		t.Fatal(err)
	}
	paused := must[*Group](t)(s.Group(ctx, app.ID, g.ID))
	if !paused.Paused || paused.PausedBy != ActorRollout || paused.PausedReason != "3 of 5 attempts failed" || paused.PausedAt.IsZero() {
		t.Fatalf("paused %+v", paused)
	}
	if err := s.Resume(ctx, app.ID, g.ID); err != nil {
		t.Fatal(err)
	}
	resumed := must[*Group](t)(s.Group(ctx, app.ID, g.ID))
	if resumed.Paused || resumed.PausedReason != "" || resumed.ResumedAt.IsZero() {
		t.Fatalf("resumed %+v", resumed)
	}
	if err := s.Approve(ctx, app.ID, g.ID, "2.0.0"); err != nil {
		t.Fatal(err)
	}
	if g := must[*Group](t)(s.Group(ctx, app.ID, g.ID)); g.ApprovedVersion != "2.0.0" {
		t.Fatalf("approved %+v", g)
	}
	if gs := must[[]*Group](t)(s.Groups(ctx, app.ID)); len(gs) != 2 {
		t.Fatalf("groups %+v", gs)
	}
	if err := s.DeleteGroup(ctx, app.ID, beta.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Pause(ctx, app.ID, beta.ID, "", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("pause of a deleted group: %v", err)
	}
}

func checkIn(t *testing.T, s *Store, c CheckIn) *Instance {
	t.Helper()
	var in *Instance
	if err := s.Write(context.Background(), func(tx *Tx) error {
		var err error
		in, err = tx.CheckIn(context.Background(), c)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return in
}

func testCheckIns(t *testing.T, s *Store) {
	ctx := context.Background()
	app, g := published(t, s, rollout.DefaultPolicy())
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	in := checkIn(t, s, CheckIn{AppID: app.ID, MachineID: "m1", GroupID: g.ID, Track: "stable", Alias: "node-1", IP: "10.0.0.1", Version: "1.0.0",
		OEM: "qemu", OEMVersion: "0.3", AlephVersion: "0.9.0", Check: true, Time: t0})
	if in.Status != rollout.StatusUndefined || in.Alias != "node-1" || in.LastCheckAt != t0 || in.CreatedAt != t0 || in.GroupID != g.ID {
		t.Fatalf("first check-in %+v", in)
	}
	// An empty alias or OEM keeps the known one; an event alone does not count as a check.
	in = checkIn(t, s, CheckIn{AppID: app.ID, MachineID: "m1", GroupID: g.ID, Track: "stable", IP: "10.0.0.2", Version: "1.0.0", Time: t0.Add(time.Minute)})
	if in.Alias != "node-1" || in.OEM != "qemu" || in.AlephVersion != "0.9.0" || in.IP != "10.0.0.2" || in.LastCheckAt != t0 {
		t.Fatalf("second check-in %+v", in)
	}
	at := t0.Add(2 * time.Minute)
	err := s.Write(ctx, func(tx *Tx) error {
		if err := tx.Grant(ctx, in, "2.0.0", at); err != nil {
			return err
		}
		for _, st := range []rollout.Status{rollout.StatusDownloading, rollout.StatusDownloaded, rollout.StatusInstalled} {
			if err := tx.SetStatus(ctx, in, st, 0, at); err != nil {
				return err
			}
		}
		if err := tx.AddEvent(ctx, &Event{AppID: app.ID, InstanceID: in.ID, GroupID: g.ID, Type: omaha.EventTypeUpdateComplete,
			Result: omaha.EventResultError, ErrorCode: omaha.ErrorCodeRollback, PreviousVersion: "2.0.0", Version: "1.0.0", CreatedAt: at}); err != nil {
			return err
		}
		if err := tx.SetRolledBack(ctx, in, "2.0.0", 3, 0, at); err != nil {
			return err
		}
		return tx.SetStatus(ctx, in, rollout.StatusError, int(omaha.ErrorCodeRollback), at)
	})
	if err != nil {
		t.Fatal(err)
	}
	got := must[*Instance](t)(s.Instance(ctx, app.ID, "m1"))
	if got.Status != rollout.StatusError || got.ErrorCode != 44 || got.UpdateInProgress || got.GrantedVersion != "2.0.0" ||
		got.GrantedAt != at || got.RolledBackVersion != "2.0.0" || got.RolledBackAt != at || got.RollbackTries != 3 || got.RollbackTriesLeft != 0 {
		t.Fatalf("after the rollback %+v", got)
	}
	var hist []string
	for _, h := range must[[]*HistoryEntry](t)(s.History(ctx, app.ID, "m1", 10)) {
		hist = append([]string{string(h.Status)}, hist...)
	}
	if strings.Join(hist, " ") != "granted downloading downloaded installed error" {
		t.Fatalf("history %v", hist)
	}
	evs := must[[]*Event](t)(s.Events(ctx, EventFilter{AppID: app.ID, InstanceID: "m1"}))
	if len(evs) != 1 || evs[0].Kind() != omaha.KindError || evs[0].ErrorCode != omaha.ErrorCodeRollback || evs[0].PreviousVersion != "2.0.0" ||
		!evs[0].CreatedAt.Equal(at) || evs[0].ID == 0 {
		t.Fatalf("events %+v", evs)
	}
	if after := must[[]*Event](t)(s.Events(ctx, EventFilter{AfterID: evs[0].ID})); len(after) != 0 {
		t.Fatalf("events after the last: %+v", after)
	}
	if err := s.SetProgress(ctx, app.ID, "m1", "write-usr", 0.5); err != nil {
		t.Fatal(err)
	}
	if err := s.SetProgress(ctx, app.ID, "m2", "write-usr", 0.5); !errors.Is(err, ErrNotFound) {
		t.Fatalf("progress of an unknown instance: %v", err)
	}
	sum := must[*Summary](t)(s.Summary(ctx, app.ID))
	if sum.Instances != 1 || len(sum.Groups) != 1 || sum.Groups[0].Instances != 1 || sum.Statuses[0].Key != "error" || sum.Versions[0].Key != "1.0.0" {
		t.Fatalf("summary %+v", sum)
	}
}

func testRolloutStats(t *testing.T, s *Store) {
	ctx := context.Background()
	p := rollout.DefaultPolicy()
	p.MaxUpdatesPerPeriod, p.Period, p.HaltPercent = 100, rollout.Duration(time.Hour), 50
	app, g := published(t, s, p)
	c := &clock{t: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
	s.Now = c.now
	stats := func() rollout.Stats {
		t.Helper()
		var st rollout.Stats
		if err := s.Write(ctx, func(tx *Tx) error {
			g, err := tx.Group(ctx, g.ID)
			if err != nil {
				return err
			}
			st, err = tx.RolloutStats(ctx, g, c.now())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return st
	}
	set := func(id string, f func(tx *Tx, in *Instance) error) {
		t.Helper()
		in := checkIn(t, s, CheckIn{AppID: app.ID, MachineID: id, GroupID: g.ID, Track: "stable", Version: "1.0.0", Check: true, Time: c.now()})
		if err := s.Write(ctx, func(tx *Tx) error { return f(tx, in) }); err != nil {
			t.Fatal(err)
		}
	}
	grant := func(tx *Tx, in *Instance) error { return tx.Grant(ctx, in, "2.0.0", c.now()) }
	to := func(st rollout.Status) func(tx *Tx, in *Instance) error {
		return func(tx *Tx, in *Instance) error {
			if err := grant(tx, in); err != nil {
				return err
			}
			return tx.SetStatus(ctx, in, st, 0, c.now())
		}
	}
	if err := s.Write(ctx, func(tx *Tx) error { return tx.StartRollout(ctx, g.ID, "2.0.0", c.now()) }); err != nil {
		t.Fatal(err)
	}
	set("a", grant)
	set("b", to(rollout.StatusDownloading))
	set("c", to(rollout.StatusComplete))
	set("d", to(rollout.StatusError))
	set("idle", func(*Tx, *Instance) error { return nil })
	if got, want := stats(), (rollout.Stats{InFlight: 2, GrantedInPeriod: 4, Completed: 1, Attempts: 4, Failures: 1}); got != want {
		t.Fatalf("stats %+v, want %+v", got, want)
	}
	// 90 minutes on: the grants are out of the period and the in-flight ones timed out.
	c.add(90 * time.Minute)
	if got, want := stats(), (rollout.Stats{InFlight: 0, GrantedInPeriod: 0, Completed: 1, Attempts: 4, Failures: 1}); got != want {
		t.Fatalf("stats later %+v, want %+v", got, want)
	}
	var timedOut []string
	s.Write(ctx, func(tx *Tx) error {
		ins, err := tx.TimedOut(ctx, g.ID, c.now().Add(-time.Hour))
		for _, in := range ins {
			timedOut = append(timedOut, in.ID)
		}
		return err
	})
	if strings.Join(timedOut, " ") != "a b" && strings.Join(timedOut, " ") != "b a" {
		t.Fatalf("timed out %v", timedOut)
	}
	// A resume starts the count of failures afresh.
	c.add(time.Minute)
	if err := s.Resume(ctx, app.ID, g.ID); err != nil {
		t.Fatal(err)
	}
	c.add(time.Minute)
	set("e", to(rollout.StatusError))
	if got, want := stats(), (rollout.Stats{InFlight: 0, GrantedInPeriod: 1, Completed: 1, Attempts: 1, Failures: 1}); got != want {
		t.Fatalf("stats after the resume %+v, want %+v", got, want)
	}
}

// The failures that count towards a halt are machines, each once, that failed the
// rollout's version since it started or the group was resumed, whether or not they were
// offered it again since; the same as rollout.CountFailures over the recorded failures.
func testRolloutFailures(t *testing.T, s *Store) {
	ctx := context.Background()
	p := rollout.DefaultPolicy()
	p.HaltErrors = 100
	app, g := published(t, s, p)
	c := &clock{t: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
	s.Now = c.now
	write := func(f func(tx *Tx) error) {
		t.Helper()
		if err := s.Write(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	group := func() *Group {
		t.Helper()
		return must[*Group](t)(s.Group(ctx, app.ID, g.ID))
	}
	check := func(what string, want rollout.Stats) {
		t.Helper()
		g := group()
		got, err := s.RolloutStats(ctx, g, c.now())
		if err != nil {
			t.Fatal(err)
		}
		got.InFlight, got.GrantedInPeriod, got.Completed = 0, 0, 0
		if got != want {
			t.Errorf("%s: stats %+v, want %+v", what, got, want)
		}
		fs, err := s.Failures(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		if since, ok := rollout.CountSince(g.RolloutState(), g.Version); ok {
			n = rollout.CountFailures(fs, g.Version, since)
		}
		if n != got.Failures {
			t.Errorf("%s: %d failures counted in SQL, %d by rollout.CountFailures over %v", what, got.Failures, n, fs)
		}
	}
	machine := func(id string) *Instance {
		return checkIn(t, s, CheckIn{AppID: app.ID, MachineID: id, GroupID: g.ID, Track: "stable", Version: "1.0.0", Check: true, Time: c.now()})
	}
	grant := func(id, version string) {
		t.Helper()
		in := machine(id)
		write(func(tx *Tx) error { return tx.Grant(ctx, in, version, c.now()) })
	}
	status := func(id string, st rollout.Status, code int) {
		t.Helper()
		in := machine(id)
		write(func(tx *Tx) error { return tx.SetStatus(ctx, in, st, code, c.now()) })
	}

	// Before the rollout started, nothing counts: a failure recorded now would be another
	// rollout's.
	grant("early", "2.0.0")
	status("early", rollout.StatusError, 7)
	check("before the rollout started", rollout.Stats{})

	c.add(time.Minute)
	write(func(tx *Tx) error { return tx.StartRollout(ctx, g.ID, "2.0.0", c.now()) })
	check("at the start", rollout.Stats{})

	c.add(time.Minute)
	grant("a", "2.0.0")
	status("a", rollout.StatusError, 7) // a failed download
	check("a failed", rollout.Stats{Attempts: 1, Failures: 1})

	// a is offered 2.0.0 again and downloads it: its failure still counts.
	c.add(time.Minute)
	grant("a", "2.0.0")
	status("a", rollout.StatusDownloading, 0)
	check("a retried", rollout.Stats{Attempts: 1, Failures: 1})

	// a fails again: still one machine.
	status("a", rollout.StatusError, 7)
	check("a failed twice", rollout.Stats{Attempts: 1, Failures: 1})

	// b completes after a failure; r rolls back; late times out; slow times out and then
	// completes, which is no failure: it was slow.
	grant("b", "2.0.0")
	status("b", rollout.StatusError, 7)
	grant("b", "2.0.0")
	status("b", rollout.StatusComplete, 0)
	grant("r", "2.0.0")
	status("r", rollout.StatusInstalled, 0)
	status("r", rollout.StatusError, int(omaha.ErrorCodeRollback))
	grant("late", "2.0.0")
	status("late", rollout.StatusTimedOut, 0)
	grant("slow", "2.0.0")
	status("slow", rollout.StatusTimedOut, 0)
	status("slow", rollout.StatusComplete, 0)
	grant("ok", "2.0.0")
	status("ok", rollout.StatusComplete, 0)
	check("six attempts", rollout.Stats{Attempts: 6, Failures: 4})

	// Another version's failures, in this group or another, do not count.
	other := must[*Group](t)(s.CreateGroup(ctx, app.ID, GroupSpec{Name: "Beta", Track: "beta", ChannelID: g.ChannelID, Policy: p}))
	in := checkIn(t, s, CheckIn{AppID: app.ID, MachineID: "beta", GroupID: other.ID, Track: "beta", Version: "1.0.0", Check: true, Time: c.now()})
	write(func(tx *Tx) error {
		if err := tx.Grant(ctx, in, "2.0.0", c.now()); err != nil {
			return err
		}
		return tx.SetStatus(ctx, in, rollout.StatusError, 7, c.now())
	})
	grant("old", "1.5.0")
	status("old", rollout.StatusError, 7)
	check("other groups and versions", rollout.Stats{Attempts: 6, Failures: 4})

	// A resume judges afresh: the failures before it do not count, a is counted again when
	// it fails again.
	c.add(time.Minute)
	if err := s.Resume(ctx, app.ID, g.ID); err != nil {
		t.Fatal(err)
	}
	check("after the resume", rollout.Stats{})
	c.add(time.Minute)
	grant("a", "2.0.0")
	status("a", rollout.StatusError, 7)
	grant("c", "2.0.0")
	check("a failed after the resume", rollout.Stats{Attempts: 2, Failures: 1})

	// Another version's rollout, then 2.0.0's again: its first rollout's failures are
	// not this one's.
	c.add(time.Minute)
	write(func(tx *Tx) error { return tx.StartRollout(ctx, g.ID, "3.0.0", c.now()) })
	check("3.0.0's rollout", rollout.Stats{})
	c.add(time.Minute)
	write(func(tx *Tx) error { return tx.StartRollout(ctx, g.ID, "2.0.0", c.now()) })
	check("2.0.0's second rollout", rollout.Stats{})
	c.add(time.Minute)
	grant("d", "2.0.0")
	status("d", rollout.StatusError, 7)
	check("d failed in the second rollout", rollout.Stats{Attempts: 1, Failures: 1})
}

func testInstancesList(t *testing.T, s *Store) {
	ctx := context.Background()
	app, g := published(t, s, rollout.DefaultPolicy())
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	for i := range 25 {
		v := "1.0.0"
		if i%5 == 0 {
			v = "2.0.0"
		}
		checkIn(t, s, CheckIn{AppID: app.ID, MachineID: fmt.Sprintf("m%02d", i), GroupID: g.ID, Track: "stable", Alias: fmt.Sprintf("Rack-%d_x", i%3),
			IP: fmt.Sprintf("10.0.0.%d", i), Version: v, Check: true, Time: t0.Add(time.Duration(i) * time.Second)})
	}
	list := func(f InstanceFilter) ([]string, int) {
		t.Helper()
		ins, total, err := s.Instances(ctx, app.ID, f)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, in := range ins {
			ids = append(ids, in.ID)
		}
		return ids, total
	}
	if ids, total := list(InstanceFilter{PerPage: 10, Page: 3, Sort: "id"}); total != 25 || strings.Join(ids, " ") != "m20 m21 m22 m23 m24" {
		t.Fatalf("page 3: %v of %d", ids, total)
	}
	if ids, total := list(InstanceFilter{Version: "2.0.0", Sort: "id", Desc: true}); total != 5 || ids[0] != "m20" {
		t.Fatalf("version 2.0.0: %v of %d", ids, total)
	}
	if ids, _ := list(InstanceFilter{}); ids[0] != "m00" {
		t.Fatalf("default order (last check): %v", ids)
	}
	// Search is a substring of id, alias or IP, in any case; % and _ are literal.
	if _, total := list(InstanceFilter{Search: "rack-1_X"}); total != 8 {
		t.Fatalf("search by alias: %d", total)
	}
	if _, total := list(InstanceFilter{Search: "%"}); total != 0 {
		t.Fatalf("search for %%: %d", total)
	}
	if ids, _ := list(InstanceFilter{Search: "10.0.0.24"}); strings.Join(ids, " ") != "m24" {
		t.Fatalf("search by IP: %v", ids)
	}
	if _, total := list(InstanceFilter{Status: rollout.StatusUndefined, GroupID: g.ID}); total != 25 {
		t.Fatalf("by status and group: %d", total)
	}
	for _, bad := range []InstanceFilter{{Sort: "password"}, {Status: "bored"}} {
		if _, _, err := s.Instances(ctx, app.ID, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

func testActivity(t *testing.T, s *Store) {
	ctx := context.Background()
	app, g := published(t, s, rollout.DefaultPolicy())
	// A change and its audit entry commit together.
	actx := WithAudit(ctx, Activity{AppID: app.ID, GroupID: g.ID, Kind: "group.paused", Actor: "alice", Message: "paused Stable"})
	if err := s.Pause(actx, app.ID, g.ID, "maintenance", "alice"); err != nil {
		t.Fatal(err)
	}
	// ... or not at all.
	fctx := WithAudit(ctx, Activity{AppID: app.ID, Kind: "group.paused", Actor: "bob", Message: "paused nothing"})
	if err := s.Pause(fctx, app.ID, "no-such-group", "x", "bob"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if err := s.AddActivity(ctx, &Activity{AppID: app.ID, GroupID: g.ID, Severity: SeverityError, Kind: "rollout.halted", Actor: ActorRollout, Message: "halted"}); err != nil {
		t.Fatal(err)
	}
	log := must[[]*Activity](t)(s.ActivityLog(ctx, ActivityFilter{AppID: app.ID}))
	if len(log) != 2 || log[0].Kind != "rollout.halted" || log[1].Actor != "alice" || log[1].Severity != SeverityInfo || log[1].CreatedAt.IsZero() {
		t.Fatalf("activity %+v", log)
	}
	if older := must[[]*Activity](t)(s.ActivityLog(ctx, ActivityFilter{BeforeID: log[0].ID})); len(older) != 1 || older[0].ID != log[1].ID {
		t.Fatalf("older %+v", older)
	}
	if errs := must[[]*Activity](t)(s.ActivityLog(ctx, ActivityFilter{Severity: SeverityError})); len(errs) != 1 {
		t.Fatalf("errors %+v", errs)
	}
}

func testUsers(t *testing.T, s *Store) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
	s.Now = c.now
	alice := must[*User](t)(s.CreateUser(ctx, "alice", "hash-a", RoleAdmin))
	if _, err := s.CreateUser(ctx, "alice", "h", RoleViewer); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate user: %v", err)
	}
	for _, bad := range []struct{ name, role string }{{"", RoleAdmin}, {"a b", RoleAdmin}, {"bob", "root"}} {
		if _, err := s.CreateUser(ctx, bad.name, "h", bad.role); !errors.Is(err, ErrInvalid) {
			t.Errorf("user %+v: %v", bad, err)
		}
	}
	if err := s.CreateSession(ctx, "sess-hash", alice.ID, "csrf-1", c.now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	se := must[*Session](t)(s.Session(ctx, "sess-hash"))
	if se.User.Username != "alice" || se.CSRF != "csrf-1" || se.User.PasswordHash != "hash-a" {
		t.Fatalf("session %+v", se)
	}
	c.add(2 * time.Hour)
	if _, err := s.Session(ctx, "sess-hash"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired session: %v", err)
	}
	if err := s.CreateSession(ctx, "sess-2", alice.ID, "csrf-2", c.now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// A new password ends the sessions.
	if err := s.UpdateUser(ctx, alice.ID, "hash-b", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, "sess-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("session after a new password: %v", err)
	}
	if u := must[*User](t)(s.User(ctx, "alice")); u.PasswordHash != "hash-b" || u.Role != RoleAdmin {
		t.Fatalf("updated %+v", u)
	}
	tok := must[*Token](t)(s.CreateToken(ctx, alice.ID, "ci", RoleViewer, "tok-hash", time.Time{}))
	gotTok, owner, err := s.TokenByHash(ctx, "tok-hash")
	if err != nil || gotTok.ID != tok.ID || owner.Username != "alice" || gotTok.Role != RoleViewer || gotTok.LastUsedAt.IsZero() && false {
		t.Fatalf("token %+v %+v %v", gotTok, owner, err)
	}
	if ts := must[[]*Token](t)(s.Tokens(ctx, "")); len(ts) != 1 || ts[0].LastUsedAt != c.now() {
		t.Fatalf("tokens %+v", ts)
	}
	if _, _, err := s.TokenByHash(ctx, "other"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown token: %v", err)
	}
	exp := must[*Token](t)(s.CreateToken(ctx, alice.ID, "short", RoleAdmin, "exp-hash", c.now().Add(time.Minute)))
	c.add(2 * time.Minute)
	if _, _, err := s.TokenByHash(ctx, "exp-hash"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired token %s: %v", exp.ID, err)
	}
	if err := s.DeleteToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.TokenByHash(ctx, "tok-hash"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoked token: %v", err)
	}
	must[*Token](t)(s.CreateToken(ctx, alice.ID, "again", RoleAdmin, "again-hash", time.Time{}))
	if err := s.DeleteUser(ctx, alice.ID); err != nil {
		t.Fatal(err)
	}
	if ts := must[[]*Token](t)(s.Tokens(ctx, "")); len(ts) != 0 {
		t.Fatalf("tokens of a deleted user: %+v", ts)
	}
}

// Many goroutines check in and grant at once: every write lands, none fails on a lock.
func testConcurrentWriters(t *testing.T, s *Store) {
	ctx := context.Background()
	app, g := published(t, s, rollout.DefaultPolicy())
	errs := make(chan error, 16)
	for w := range 16 {
		go func() {
			var err error
			for i := range 25 {
				err = s.Write(ctx, func(tx *Tx) error {
					in, err := tx.CheckIn(ctx, CheckIn{AppID: app.ID, MachineID: fmt.Sprintf("w%d-%d", w, i), GroupID: g.ID, Track: "stable",
						Version: "1.0.0", Check: true, Time: time.Now()})
					if err != nil {
						return err
					}
					gr, err := tx.Group(ctx, g.ID)
					if err != nil {
						return err
					}
					if _, err := tx.RolloutStats(ctx, gr, time.Now()); err != nil {
						return err
					}
					return tx.Grant(ctx, in, "2.0.0", time.Now())
				})
				if err != nil {
					break
				}
				if _, _, err = s.Instances(ctx, app.ID, InstanceFilter{}); err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if _, total, _ := s.Instances(ctx, app.ID, InstanceFilter{}); total != 400 {
		t.Fatalf("%d instances, want 400", total)
	}
}

// What Cairn's engine reports beyond Omaha: written when it changed, cleared by a grant;
// pods bounded, the same list written once.
func testReports(t *testing.T, s *Store) {
	ctx := context.Background()
	app, g := published(t, s, rollout.DefaultPolicy())
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	in := checkIn(t, s, CheckIn{AppID: app.ID, MachineID: "m1", GroupID: g.ID, Track: "stable", Version: "1.0.0", Check: true, Time: t0})
	if in.Operation != "" || in.Pods != nil || !in.ProgressAt.IsZero() || !in.PodsAt.IsZero() {
		t.Fatalf("new instance %+v", in)
	}
	write := func(f func(tx *Tx) error) {
		t.Helper()
		if err := s.Write(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	var pods []omaha.Pod
	for i := range omaha.MaxPods + 5 {
		pods = append(pods, omaha.Pod{UUID: fmt.Sprintf("pod-%03d", i), State: "running", Apps: []omaha.PodApp{{Name: "app", Image: "img"}}})
	}
	write(func(tx *Tx) error {
		if err := tx.SetReport(ctx, in, "UPDATE_STATUS_DOWNLOADING", "download", 0.25, t0); err != nil {
			return err
		}
		return tx.SetPods(ctx, in, &omaha.Pods{Total: omaha.Int(len(pods)), Pods: pods}, t0)
	})
	got := must[*Instance](t)(s.Instance(ctx, app.ID, "m1"))
	if got.Operation != "UPDATE_STATUS_DOWNLOADING" || got.Step != "download" || got.Progress != 0.25 || got.ProgressAt != t0 ||
		len(got.Pods) != omaha.MaxPods || got.PodsTotal != omaha.MaxPods+5 || got.PodsAt != t0 || got.Pods[0].Apps[0].Image != "img" {
		t.Fatalf("reported %+v", got)
	}
	// The same list again, in another order: nothing changes, nothing is written.
	slices.Reverse(pods)
	if got.PodsChanged(&omaha.Pods{Total: omaha.Int(len(pods)), Pods: pods}) {
		t.Fatal("the same pods in another order changed the list")
	}
	write(func(tx *Tx) error {
		return tx.SetPods(ctx, got, &omaha.Pods{Total: omaha.Int(len(pods)), Pods: pods}, t0.Add(time.Hour))
	})
	if again := must[*Instance](t)(s.Instance(ctx, app.ID, "m1")); again.PodsAt != t0 {
		t.Fatalf("unchanged pods written: %v", again.PodsAt)
	}
	// No pods at all is a list too.
	write(func(tx *Tx) error { return tx.SetPods(ctx, got, &omaha.Pods{}, t0.Add(time.Hour)) })
	if again := must[*Instance](t)(s.Instance(ctx, app.ID, "m1")); again.Pods == nil || len(again.Pods) != 0 || again.PodsTotal != 0 || again.PodsAt != t0.Add(time.Hour) {
		t.Fatalf("no pods: %+v", again)
	}
	// A grant starts over.
	write(func(tx *Tx) error { return tx.Grant(ctx, got, "2.0.0", t0.Add(2*time.Hour)) })
	if again := must[*Instance](t)(s.Instance(ctx, app.ID, "m1")); again.Operation != "" || again.Step != "" || again.Progress != 0 {
		t.Fatalf("after a grant: %+v", again)
	}
}

// Last check times written in a batch move forward only.
func testTouchLastChecks(t *testing.T, s *Store) {
	ctx := context.Background()
	app, g := published(t, s, rollout.DefaultPolicy())
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	var checks []LastCheck
	for i := range 1200 { // three statements' worth
		id := fmt.Sprintf("m%04d", i)
		checkIn(t, s, CheckIn{AppID: app.ID, MachineID: id, GroupID: g.ID, Track: "stable", Version: "1.0.0", Check: true, Time: t0})
		checks = append(checks, LastCheck{AppID: app.ID, ID: id, At: t0.Add(time.Duration(i) * time.Second)})
	}
	// m0001 checked again meanwhile, later than its batched time.
	checkIn(t, s, CheckIn{AppID: app.ID, MachineID: "m0001", GroupID: g.ID, Track: "stable", Version: "1.0.0", Check: true, Time: t0.Add(time.Hour)})
	checks = append(checks, LastCheck{AppID: app.ID, ID: "unknown", At: t0})
	if err := s.TouchLastChecks(ctx, checks); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]time.Time{"m0000": t0, "m0001": t0.Add(time.Hour), "m0002": t0.Add(2 * time.Second), "m1199": t0.Add(1199 * time.Second)} {
		if in := must[*Instance](t)(s.Instance(ctx, app.ID, id)); in.LastCheckAt != want {
			t.Errorf("%s: last check %v, want %v", id, in.LastCheckAt, want)
		}
	}
}

// A database of the first schema, with a machine in it, migrates to the newest; the
// machine is kept, with nothing reported.
func TestMigrateFromFirst(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { migrateFromFirst(t, filepath.Join(t.TempDir(), "console.db")) })
	t.Run("postgres", func(t *testing.T) { migrateFromFirst(t, testenv.Postgres(t)) })
}

func migrateFromFirst(t *testing.T, dsn string) {
	ctx := context.Background()
	s, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, func(tx *Tx) error {
		if _, err := tx.schemaVersion(ctx); err != nil {
			return err
		}
		for _, q := range []string{s.dialectSQL(ms[0].SQL), `INSERT INTO schema_version (version, name, applied_at) VALUES (1, 'init', 0)`,
			`INSERT INTO applications (id, name, created_at) VALUES ('a', 'A', 0)`,
			`INSERT INTO instances (app_id, id, version, status, created_at) VALUES ('a', 'm1', '1.0.0', 'complete', 0)`} {
			if _, err := tx.exec(ctx, q); err != nil {
				return fmt.Errorf("%.40s: %w", q, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	applied, err := s.Migrate(ctx)
	if err != nil || len(applied) != len(ms)-1 || applied[0] != 2 {
		t.Fatalf("migrated %v %v", applied, err)
	}
	in, err := s.Instance(ctx, "a", "m1")
	if err != nil || in.Version != "1.0.0" || in.Status != rollout.StatusComplete || in.Operation != "" || in.Pods != nil || in.RollbackTries != 0 {
		t.Fatalf("instance after the migration: %+v %v", in, err)
	}
}
