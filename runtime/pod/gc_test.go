package pod

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// runPod makes a pod in the run phase and returns it locked, as rkt run holds it.
func runPod(t *testing.T, s *Store) *Pod {
	t.Helper()
	p, err := s.Create()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.MarkRunning(); err != nil {
		t.Fatal(err)
	}
	return p
}

// preparedPod makes a prepared pod (unlocked, as rkt prepare leaves it).
func preparedPod(t *testing.T, s *Store) *Pod {
	t.Helper()
	p, err := s.Create()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.MarkPrepared(); err != nil {
		t.Fatal(err)
	}
	return p
}

func phaseOf(t *testing.T, s *Store, uuid string) Phase {
	t.Helper()
	p, err := s.Get(uuid)
	if errors.Is(err, ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return p.Phase
}

func TestGCMarkOnly(t *testing.T) {
	s := NewStore(t.TempDir())
	exited := runPod(t, s)
	exited.Close()
	aborted, _ := s.Create()
	aborted.Close()
	prepared := preparedPod(t, s)
	cleaned := 0
	res, err := s.GC(context.Background(), GCOptions{MarkOnly: true, Clean: func(context.Context, *Pod) error { cleaned++; return nil }})
	if err != nil || len(res.Marked) != 2 || len(res.Removed)+len(res.Expired) != 0 || cleaned != 0 {
		t.Fatalf("gc --mark-only: %+v %v, cleaned %d; want two pods marked and nothing removed", res, err, cleaned)
	}
	for uuid, want := range map[string]Phase{exited.UUID: PhaseExitedGarbage, aborted.UUID: PhaseGarbage, prepared.UUID: PhasePrepared} {
		if got := phaseOf(t, s, uuid); got != want {
			t.Errorf("pod %s in %q after gc --mark-only, want %q", uuid, got, want)
		}
	}
	// A second pass without --mark-only removes what was marked.
	res, err = s.GC(context.Background(), GCOptions{ExpirePrepared: -1})
	if err != nil || len(res.Removed) != 2 || phaseOf(t, s, prepared.UUID) != PhasePrepared {
		t.Fatalf("gc after --mark-only: %+v %v", res, err)
	}
}

func TestGCExpirePrepared(t *testing.T) {
	for _, tc := range []struct {
		name    string
		expire  time.Duration
		expired bool
	}{
		{"rkt's default, a fresh pod", 24 * time.Hour, false},
		{"zero expires every prepared pod", 0, true},
		{"negative expires none", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewStore(t.TempDir())
			p := preparedPod(t, s)
			res, err := s.GC(context.Background(), GCOptions{ExpirePrepared: tc.expire})
			if err != nil {
				t.Fatal(err)
			}
			if got := slices.Contains(res.Expired, p.UUID); got != tc.expired {
				t.Fatalf("expired %v, want %v (%+v)", got, tc.expired, res)
			}
			// An expired pod goes to garbage/, which the same pass empties.
			if gone := phaseOf(t, s, p.UUID) == ""; gone != tc.expired {
				t.Fatalf("pod removed %v, want %v", gone, tc.expired)
			}
		})
	}
	// A prepared pod that rkt run-prepared holds is not expired from under it.
	s := NewStore(t.TempDir())
	p := preparedPod(t, s)
	q, err := s.LockPrepared(p.UUID)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if res, _ := s.GC(context.Background(), GCOptions{}); len(res.Expired) != 0 {
		t.Fatalf("a locked prepared pod expired: %+v", res)
	}
}

func TestGCKeptWithinGrace(t *testing.T) {
	s := NewStore(t.TempDir())
	p := runPod(t, s)
	p.Close()
	if res, _ := s.GC(context.Background(), GCOptions{GracePeriod: time.Hour}); len(res.Marked) != 1 || len(res.Kept) != 1 {
		t.Fatalf("first pass: %+v; want the pod marked and kept", res)
	}
	if res, _ := s.GC(context.Background(), GCOptions{GracePeriod: time.Hour}); len(res.Kept) != 1 || len(res.Removed) != 0 {
		t.Fatalf("second pass: %+v; want the pod kept", res)
	}
}

// A pod whose supervisor is gone but whose apps run is Running (orphaned), rm refuses it,
// and gc cleans it (killing the apps) before it marks it.
func TestOrphanedPod(t *testing.T) {
	s := NewStore(t.TempDir())
	alive := map[string]bool{}
	s.Alive = func(p *Pod) bool { return alive[p.UUID] }
	p := runPod(t, s)
	uuid := p.UUID
	alive[uuid] = true
	if q, _ := s.Get(uuid); q.State() != Running || q.Orphaned() {
		t.Fatalf("supervised pod: state %s, orphaned %v", q.State(), q.Orphaned())
	}
	p.Close() // rkt run killed; its apps run on
	q, _ := s.Get(uuid)
	if q.State() != Running || !q.Orphaned() {
		t.Fatalf("pod whose supervisor is gone, apps alive: state %s, orphaned %v; want running, orphaned", q.State(), q.Orphaned())
	}
	if err := s.Remove(context.Background(), uuid, nil); !errors.Is(err, ErrState) {
		t.Fatalf("rm of an orphaned pod: %v, want ErrState", err)
	}
	var cleaned []Phase
	clean := func(_ context.Context, p *Pod) error {
		cleaned = append(cleaned, p.Phase)
		alive[p.UUID] = false
		return nil
	}
	res, err := s.GC(context.Background(), GCOptions{GracePeriod: time.Hour, Clean: clean})
	if err != nil || len(res.Marked) != 1 || !slices.Equal(cleaned, []Phase{PhaseRun}) {
		t.Fatalf("gc of an orphaned pod: %+v %v, cleaned in %v; want it cleaned in run/, then marked", res, err, cleaned)
	}
	if q, _ := s.Get(uuid); q.State() != ExitedGarbage {
		t.Fatalf("after gc: %s", q.State())
	}
	// A cleaner that fails leaves the pod where it is, for the next pass.
	r := runPod(t, s)
	r.Close()
	alive[r.UUID] = true
	res, _ = s.GC(context.Background(), GCOptions{GracePeriod: time.Hour, Clean: func(context.Context, *Pod) error { return errors.New("stuck") }})
	if len(res.Errors) != 1 || phaseOf(t, s, r.UUID) != PhaseRun {
		t.Fatalf("failed clean: %+v, pod in %s", res, phaseOf(t, s, r.UUID))
	}
	// Without apps alive the pod is exited, as before.
	alive[r.UUID] = false
	if q, _ := s.Get(r.UUID); q.State() != Exited || q.Orphaned() {
		t.Fatalf("pod with no processes: %s", q.State())
	}
}
