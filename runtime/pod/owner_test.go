package pod

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"
)

// ownedPod makes an exited pod whose manifest names owner.
func ownedPod(t *testing.T, s *Store, owner string) *Pod {
	t.Helper()
	p := runPod(t, s)
	m := schema.BlankPodManifest()
	m.Annotations.Set(types.ACIdentifier(AnnotationOwner), owner)
	if err := p.WriteManifest(m); err != nil {
		t.Fatal(err)
	}
	p.Close()
	return p
}

// A running owner keeps its exited pods from gc; once it is gone, gc takes them as any other.
func TestGCKeepsOwnedPods(t *testing.T) {
	s := NewStore(t.TempDir())
	owned := ownedPod(t, s, "rktlet")
	other := runPod(t, s)
	other.Close()
	if s.OwnerAlive("rktlet") {
		t.Fatal("owner alive before it claimed its lock")
	}
	release, err := s.ClaimOwner("rktlet")
	if err != nil {
		t.Fatal(err)
	}
	if !s.OwnerAlive("rktlet") {
		t.Fatal("owner not alive while it holds its lock")
	}
	if _, err := s.ClaimOwner("rktlet"); !errors.Is(err, ErrLocked) {
		t.Fatalf("a second owner of the same name: %v, want ErrLocked", err)
	}
	if q, _ := s.Get(owned.UUID); q.Owner() != "rktlet" {
		t.Fatalf("owner %q", q.Owner())
	}
	res, err := s.GC(context.Background(), GCOptions{})
	if err != nil || !slices.Equal(res.Owned, []string{owned.UUID}) || !slices.Equal(res.Removed, []string{other.UUID}) {
		t.Fatalf("gc with the owner running: %+v %v; want the owned pod kept, the other removed", res, err)
	}
	if phaseOf(t, s, owned.UUID) != PhaseExitedGarbage {
		t.Fatalf("owned pod in %s, want marked and kept", phaseOf(t, s, owned.UUID))
	}
	// rkt rm is the owner's (or the user's) explicit removal: it is not gc's to refuse.
	if err := release(); err != nil {
		t.Fatal(err)
	}
	res, err = s.GC(context.Background(), GCOptions{})
	if err != nil || !slices.Equal(res.Removed, []string{owned.UUID}) {
		t.Fatalf("gc with the owner gone: %+v %v", res, err)
	}
	for _, bad := range []string{"", "Rktlet", "a/b", "../x", "-a"} {
		if _, err := s.ClaimOwner(bad); err == nil {
			t.Errorf("owner name %q accepted", bad)
		}
	}
}

// Adopt takes a pod whose lock a parent took and handed down as a descriptor.
func TestAdopt(t *testing.T) {
	s := NewStore(t.TempDir())
	p, err := s.Create()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(p.LockFD())
	if err != nil {
		t.Fatal(err)
	}
	p.Close() // the parent's copy; the open file keeps the lock through fd
	if q, _ := s.Get(p.UUID); q.State() != Preparing {
		t.Fatalf("pod after the parent closed its copy: %s, want preparing", q.State())
	}
	q, err := s.Adopt(p.UUID, fd)
	if err != nil {
		t.Fatal(err)
	}
	if !q.Locked() || q.State() != Preparing {
		t.Fatalf("adopted pod: locked %v, state %s", q.Locked(), q.State())
	}
	if err := q.MarkRunning(); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Get(p.UUID); r.State() != Running {
		t.Fatalf("adopted pod marked running: %s", r.State())
	}
	q.Close()

	// A descriptor of another directory, or one without the lock, is refused.
	other, _ := s.Create()
	defer other.Close()
	wrong, _ := unix.Dup(other.LockFD())
	defer unix.Close(wrong)
	if _, err := s.Adopt(p.UUID, wrong); err == nil {
		t.Fatal("adopted a pod through another pod's descriptor")
	}
	plain, err := unix.Open(other.Path(), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(plain)
	if _, err := s.Adopt(other.UUID, plain); !errors.Is(err, ErrLocked) {
		t.Fatalf("adopting a pod another process holds: %v, want ErrLocked", err)
	}
	if _, err := s.Adopt("not-a-uuid", plain); !errors.Is(err, ErrNotFound) {
		t.Fatalf("adopting by a bad UUID: %v", err)
	}
}
