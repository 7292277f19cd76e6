package pod

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLifecycleByRenameAndLock(t *testing.T) {
	s := NewStore(t.TempDir())
	p, err := s.Create()
	if err != nil {
		t.Fatal(err)
	}
	if p.Phase != PhasePrepare || p.State() != Preparing {
		t.Fatalf("new pod %s/%s", p.Phase, p.State())
	}
	// Another handle sees the lock.
	q, _ := s.Get(p.UUID)
	if q.State() != Preparing {
		t.Fatalf("other view of a preparing pod: %s", q.State())
	}
	if err := p.MarkPrepared(); err != nil {
		t.Fatal(err)
	}
	if q, _ := s.Get(p.UUID); q.State() != Prepared {
		t.Fatalf("after prepare: %s", q.State())
	}
	r, err := s.LockPrepared(p.UUID[:8])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.LockPrepared(p.UUID); err == nil {
		t.Fatal("a prepared pod was locked twice")
	}
	if err := r.MarkRunning(); err != nil {
		t.Fatal(err)
	}
	if q, _ := s.Get(p.UUID); q.State() != Running {
		t.Fatalf("running pod seen as %s", q.State())
	}
	if err := s.Remove(context.Background(), p.UUID, nil); !errors.Is(err, ErrState) {
		t.Fatalf("rm of a running pod: %v", err)
	}
	res, _ := s.GC(context.Background(), GCOptions{})
	if len(res.Marked)+len(res.Removed) != 0 {
		t.Fatalf("gc touched a running pod: %+v", res)
	}
	r.Close() // the supervisor exits
	if q, _ := s.Get(p.UUID); q.State() != Exited {
		t.Fatalf("after exit: %s", q.State())
	}
	cleaned := 0
	clean := func(context.Context, *Pod) error { cleaned++; return nil }
	res, err = s.GC(context.Background(), GCOptions{GracePeriod: time.Hour, Clean: clean})
	if err != nil || len(res.Marked) != 1 || len(res.Removed) != 0 {
		t.Fatalf("gc with grace: %+v %v", res, err)
	}
	if q, _ := s.Get(p.UUID); q.State() != ExitedGarbage {
		t.Fatalf("marked pod: %s", q.State())
	}
	res, _ = s.GC(context.Background(), GCOptions{Clean: clean})
	if len(res.Removed) != 1 || cleaned != 1 {
		t.Fatalf("sweep: %+v cleaned %d", res, cleaned)
	}
	if _, err := s.Get(p.UUID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed pod still found: %v", err)
	}
}

func TestAbortedPrepareIsCollected(t *testing.T) {
	s := NewStore(t.TempDir())
	p, err := s.Create()
	if err != nil {
		t.Fatal(err)
	}
	p.Close() // rkt prepare died
	if q, _ := s.Get(p.UUID); q.State() != AbortedPrepare {
		t.Fatalf("state %s", q.State())
	}
	res, _ := s.GC(context.Background(), GCOptions{GracePeriod: time.Hour})
	if len(res.Removed) != 1 {
		t.Fatalf("aborted prepare not removed: %+v", res)
	}
}

func TestGetRejectsBadRefs(t *testing.T) {
	s := NewStore(t.TempDir())
	os.MkdirAll(filepath.Join(s.Dir, "run", "not-a-uuid"), 0o700)
	for _, ref := range []string{"", "../..", "not-a-uuid", "zzzz"} {
		if _, err := s.Get(ref); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q): %v", ref, err)
		}
	}
	a, _ := s.Create()
	b, _ := s.Create()
	defer a.Close()
	defer b.Close()
	if _, err := s.Get(""); err == nil {
		t.Error("empty ref matched")
	}
	if a.UUID[0] == b.UUID[0] {
		if _, err := s.Get(a.UUID[:1]); !errors.Is(err, ErrAmbiguous) {
			t.Errorf("ambiguous prefix: %v", err)
		}
	}
}

func TestExitRecord(t *testing.T) {
	s := NewStore(t.TempDir())
	p, _ := s.Create()
	defer p.Close()
	if _, ok, err := p.Exit("web"); ok || err != nil {
		t.Fatal("exit record before exit")
	}
	if err := p.WriteExit("web", AppExit{ExitCode: 137, Signal: "SIGKILL"}); err != nil {
		t.Fatal(err)
	}
	if e, ok, _ := p.Exit("web"); !ok || e.ExitCode != 137 || e.Signal != "SIGKILL" {
		t.Fatalf("%+v %v", e, ok)
	}
	if _, _, err := p.Exit("../x"); err == nil {
		t.Fatal("path in app name accepted")
	}
}

func TestUUID(t *testing.T) {
	for range 100 {
		u, err := NewUUID()
		if err != nil || !ValidUUID(u) || u[14] != '4' {
			t.Fatalf("%q %v", u, err)
		}
	}
	for _, bad := range []string{"", "0c5d4f4e-2b1a-4c8e-9a55-00000000000", "0C5D4F4E-2B1A-4C8E-9A55-000000000001", "0c5d4f4e/2b1a-4c8e-9a55-000000000001"} {
		if ValidUUID(bad) {
			t.Errorf("%q valid", bad)
		}
	}
}
