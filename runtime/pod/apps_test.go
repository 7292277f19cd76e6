package pod

import (
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

func TestExitReason(t *testing.T) {
	for _, c := range []struct {
		code int
		oom  bool
		want string
	}{{0, false, ReasonCompleted}, {1, false, ReasonError}, {137, false, ReasonError}, {137, true, ReasonOOMKilled}, {0, true, ReasonOOMKilled}} {
		if got := ExitReason(c.code, c.oom); got != c.want {
			t.Errorf("ExitReason(%d, %v) = %s, want %s", c.code, c.oom, got, c.want)
		}
	}
}

// A record read while its pod runs is the supervisor's word; once the pod no longer runs
// (its supervisor killed, nothing left in its cgroups), no app runs or waits.
func TestSupervisedRecord(t *testing.T) {
	marked := time.Unix(1000, 0)
	fin := time.Unix(900, 0)
	for _, c := range []struct {
		rec     AppRecord
		pod     State
		want    AppState
		wantFin time.Time
	}{
		{AppRecord{State: AppCreated}, Running, AppCreated, time.Time{}},
		{AppRecord{State: AppRunning, PID: 7}, Running, AppRunning, time.Time{}},
		{AppRecord{State: AppExited, FinishedAt: fin}, Running, AppExited, fin},
		{AppRecord{State: AppRunning, PID: 7}, Exited, AppExited, time.Time{}},
		{AppRecord{State: AppCreated}, ExitedGarbage, AppExited, marked},
		{AppRecord{State: AppExited, FinishedAt: fin}, ExitedGarbage, AppExited, fin},
		{AppRecord{State: AppRunning}, Deleting, AppExited, marked},
	} {
		m := time.Time{}
		if c.pod == ExitedGarbage || c.pod == Deleting {
			m = marked
		}
		got := supervised(c.rec, c.pod, m)
		if got.State != c.want || !got.FinishedAt.Equal(c.wantFin) || (got.State == AppExited && got.PID != 0) {
			t.Errorf("%+v in a %s pod: %+v", c.rec, c.pod, got)
		}
	}
}

func TestApps(t *testing.T) {
	s := NewStore(t.TempDir())
	p, err := s.Create()
	if err != nil {
		t.Fatal(err)
	}
	m := schema.BlankPodManifest()
	for _, n := range []string{"web", "db"} {
		m.Apps = append(m.Apps, schema.RuntimeApp{Name: types.ACName(n), Image: schema.RuntimeImage{ID: *types.NewHashSHA512([]byte(n))},
			App: &types.App{Exec: types.Exec{"/bin/true"}, User: "0", Group: "0"}})
	}
	if err := p.WriteManifest(m); err != nil {
		t.Fatal(err)
	}
	created := time.Now().UTC().Truncate(time.Millisecond)
	p.WriteTime(CreatedFile, created)
	if err := p.MarkRunning(); err != nil {
		t.Fatal(err)
	}
	// web is supervised (a sandbox's app), db is not (rkt run's).
	rec := AppRecord{Name: "web", State: AppRunning, CreatedAt: created, StartedAt: created, PID: 42, LogPath: "/l", Stdin: "stream"}
	if err := p.WriteAppRecord(rec); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteAppRecord(AppRecord{Name: "../x"}); err == nil {
		t.Fatal("a record for a path")
	}
	apps, err := p.Apps()
	if err != nil || len(apps) != 2 {
		t.Fatalf("%v %+v", err, apps)
	}
	if a := apps[0]; a.Name != "web" || a.State != AppRunning || a.PID != 42 || a.Runtime.Name != "web" {
		t.Fatalf("supervised app: %+v", a)
	}
	if a := apps[1]; a.Name != "db" || a.State != AppRunning || !a.CreatedAt.Equal(created) {
		t.Fatalf("rkt run's app: %+v", a)
	}
	p.WriteExit("db", AppExit{ExitCode: 3, FinishedAt: created})
	p.Close() // the supervisor is gone, nothing alive
	q, _ := s.Get(p.UUID)
	apps, err = q.Apps()
	if err != nil {
		t.Fatal(err)
	}
	if a := apps[0]; a.State != AppExited || a.PID != 0 || a.ExitKnown {
		t.Fatalf("supervised app of an exited pod: %+v", a)
	}
	if a := apps[1]; a.State != AppExited || a.ExitCode != 3 || !a.ExitKnown {
		t.Fatalf("exited app of rkt run: %+v", a)
	}
}
