package pod

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"golang.org/x/sys/unix"
)

// AnnotationOwner, in a pod manifest, names the program that owns the pod: a CRI server
// (rktlet) that keeps its stopped sandboxes until it is told to remove them. While the
// owner runs (it holds its owner lock, ClaimOwner), gc does not remove the pod.
const AnnotationOwner = "cairn-os.org/owner"

// ownersDir holds the owners' locks, beside the phase directories.
const ownersDir = "owners"

var ownerName = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// ClaimOwner takes owner's lock, held for as long as the owner runs: an exclusive flock on
// <pods>/owners/<owner>.lock, which only one process can hold (ErrLocked: another instance
// runs). release gives it up; a process that dies gives it up too.
func (s *Store) ClaimOwner(owner string) (release func() error, err error) {
	if !ownerName.MatchString(owner) {
		return nil, fmt.Errorf("owner %q: want lower-case letters, digits and dashes", owner)
	}
	dir := filepath.Join(s.Dir, ownersDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("owner %s: %w", owner, err)
	}
	fd, err := unix.Open(filepath.Join(dir, owner+".lock"), unix.O_RDONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("owner %s: %w", owner, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("owner %s: %w (another one runs on %s)", owner, ErrLocked, s.Dir)
		}
		return nil, fmt.Errorf("owner %s: flock: %w", owner, err)
	}
	return func() error { return unix.Close(fd) }, nil
}

// OwnerAlive reports whether owner's lock is held: the owner runs.
func (s *Store) OwnerAlive(owner string) bool {
	if !ownerName.MatchString(owner) {
		return false
	}
	fd, err := unix.Open(filepath.Join(s.Dir, ownersDir, owner+".lock"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return errors.Is(unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB), unix.EWOULDBLOCK)
}

// Owner is the pod's owner (its AnnotationOwner), "" for none.
func (p *Pod) Owner() string {
	m, err := p.Manifest()
	if err != nil {
		return ""
	}
	v, _ := m.Annotations.Get(AnnotationOwner)
	return v
}

// owned reports whether the pod's owner runs.
func (p *Pod) owned() bool {
	o := p.Owner()
	return o != "" && p.store.OwnerAlive(o)
}

// Adopt takes over a pod whose exclusive lock another process took and handed down: fd is
// an inherited descriptor of the pod's directory that holds the lock (a CRI server prepares
// a sandbox and passes it to the supervisor it starts). The pod is returned holding it.
func (s *Store) Adopt(uuid string, fd int) (*Pod, error) {
	if !ValidUUID(uuid) {
		return nil, fmt.Errorf("pod %q: %w", uuid, ErrNotFound)
	}
	p, err := s.Get(uuid)
	if err != nil {
		return nil, err
	}
	var dir, held unix.Stat_t
	if err := unix.Stat(p.Path(), &dir); err != nil {
		return nil, fmt.Errorf("pod %s: %w", uuid, err)
	}
	if err := unix.Fstat(fd, &held); err != nil {
		return nil, fmt.Errorf("pod %s: descriptor %d: %w", uuid, fd, err)
	}
	if dir.Dev != held.Dev || dir.Ino != held.Ino {
		return nil, fmt.Errorf("pod %s: descriptor %d is not its directory", uuid, fd)
	}
	// Taking a lock that the descriptor's open file holds already is a no-op; any other
	// holder makes it fail.
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("pod %s: %w", uuid, ErrLocked)
		}
		return nil, fmt.Errorf("pod %s: flock: %w", uuid, err)
	}
	unix.CloseOnExec(fd)
	p.fd, p.mode = fd, unix.LOCK_EX
	return p, nil
}
