// Package pod keeps pods on disk the way rkt does, with no daemon: a pod is a directory named by
// its UUID under <dir>/pods/<phase>/, it moves between phases by atomic rename(2), and an
// exclusive flock(2) on the directory, held by the process that owns the phase (rkt prepare,
// rkt run, rkt gc), tells a live phase from an abandoned one. See rkt's
// Documentation/devel/pod-lifecycle.md; the phases and state names here follow it.
package pod

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Phase is the directory a pod lives in.
type Phase string

const (
	PhaseEmbryo        Phase = "embryo"
	PhasePrepare       Phase = "prepare"
	PhasePrepared      Phase = "prepared"
	PhaseRun           Phase = "run"
	PhaseExitedGarbage Phase = "exited-garbage"
	PhaseGarbage       Phase = "garbage"
)

// Phases in the order a pod goes through them.
var Phases = []Phase{PhaseEmbryo, PhasePrepare, PhasePrepared, PhaseRun, PhaseExitedGarbage, PhaseGarbage}

// State is what rkt list and rkt status show: the phase combined with the lock.
type State string

const (
	Embryo         State = "embryo"
	Preparing      State = "preparing"
	AbortedPrepare State = "aborted prepare"
	Prepared       State = "prepared"
	Running        State = "running"
	Exited         State = "exited"
	Deleting       State = "deleting"
	ExitedGarbage  State = "exited garbage"
	Garbage        State = "garbage"
)

// Sentinel errors, checked with errors.Is.
var (
	ErrNotFound  = errors.New("pod not found")
	ErrAmbiguous = errors.New("pod UUID prefix is ambiguous")
	ErrLocked    = errors.New("pod is locked by another process")
	ErrState     = errors.New("pod is not in the required state")
)

// Store is the pods directory, <dir>/pods.
type Store struct {
	Dir string
	// Alive, when set, reports whether any process of a pod still runs (stage1 looks in the
	// pod's cgroups). It is asked only about a pod in the run phase whose lock nobody holds:
	// one whose supervisor (rkt run) is gone. Such a pod whose apps run on is orphaned, and
	// is Running, not Exited. Without it, the lock alone decides.
	Alive func(p *Pod) bool
}

// NewStore returns the pod store of rkt's data directory (for example /var/lib/rkt).
func NewStore(dataDir string) *Store { return &Store{Dir: filepath.Join(dataDir, "pods")} }

// Pod is one pod directory as seen at one moment. A Pod returned locked (Create, LockPrepared,
// Lock) holds the directory's flock until Close.
type Pod struct {
	UUID  string
	Phase Phase
	store *Store
	fd    int // directory fd holding the flock; -1 when not held
	mode  int // unix.LOCK_EX or unix.LOCK_SH while held
}

// Path is the pod's directory in its current phase.
func (p *Pod) Path() string { return filepath.Join(p.store.Dir, string(p.Phase), p.UUID) }

// File is the path of a file inside the pod directory.
func (p *Pod) File(elem ...string) string {
	return filepath.Join(append([]string{p.Path()}, elem...)...)
}

// Locked reports whether this handle holds the pod's lock.
func (p *Pod) Locked() bool { return p.fd >= 0 }

// LockFD is the directory fd carrying the lock, for handing to a child that must keep it.
func (p *Pod) LockFD() int { return p.fd }

// Close releases the lock, if held.
func (p *Pod) Close() error {
	if p.fd < 0 {
		return nil
	}
	err := unix.Close(p.fd)
	p.fd = -1
	return err
}

// NewUUID returns a random RFC 4122 version 4 UUID.
func NewUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// ValidUUID reports whether s has the form of a pod UUID (so it is safe as a path element).
func ValidUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}

func (s *Store) phaseDir(ph Phase) string { return filepath.Join(s.Dir, string(ph)) }

func (s *Store) ensureDirs() error {
	for _, ph := range Phases {
		if err := os.MkdirAll(s.phaseDir(ph), 0o700); err != nil {
			return fmt.Errorf("pods directory: %w", err)
		}
	}
	return nil
}

// Create makes a new pod: an embryo directory, locked exclusively, then renamed into the
// prepare phase. The returned pod holds the lock; the caller prepares it and then calls
// MarkPrepared (rkt prepare) or MarkRunning (rkt run).
func (s *Store) Create() (*Pod, error) {
	if err := s.ensureDirs(); err != nil {
		return nil, err
	}
	// A gc with no grace period may take the embryo in the instant between its mkdir and its
	// lock: it then holds the lock (ErrLocked) while it removes the directory, or has removed
	// it (ErrNotFound). Either way the embryo is gc's: start again with a new one.
	for try := 0; ; try++ {
		p, err := s.create()
		if err == nil || !(errors.Is(err, ErrNotFound) || errors.Is(err, ErrLocked)) || try == 2 {
			return p, err
		}
	}
}

func (s *Store) create() (*Pod, error) {
	id, err := NewUUID()
	if err != nil {
		return nil, err
	}
	p := &Pod{UUID: id, Phase: PhaseEmbryo, store: s, fd: -1}
	if err := os.Mkdir(p.Path(), 0o700); err != nil {
		return nil, fmt.Errorf("pod %s: create: %w", id, err)
	}
	if err := p.lock(unix.LOCK_EX | unix.LOCK_NB); err != nil {
		if !errors.Is(err, ErrLocked) { // a locked embryo is gc's to remove
			os.Remove(p.Path())
		}
		return nil, err
	}
	if err := p.move(PhasePrepare); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// MarkPrepared moves a pod in the prepare phase to prepared and releases its lock.
func (p *Pod) MarkPrepared() error {
	if err := p.move(PhasePrepared); err != nil {
		return err
	}
	return p.Close()
}

// MarkRunning moves a locked pod from prepare (rkt run) or prepared (rkt run-prepared) to run,
// keeping the lock, which the caller then holds for the pod's whole life.
func (p *Pod) MarkRunning() error {
	if p.Phase != PhasePrepare && p.Phase != PhasePrepared {
		return fmt.Errorf("pod %s: %w: cannot run from %s", p.UUID, ErrState, p.Phase)
	}
	return p.move(PhaseRun)
}

// LockPrepared takes the exclusive lock of a prepared pod, for rkt run-prepared.
func (s *Store) LockPrepared(uuid string) (*Pod, error) {
	p, err := s.Get(uuid)
	if err != nil {
		return nil, err
	}
	if p.Phase != PhasePrepared {
		return nil, fmt.Errorf("pod %s: %w: it is %s, not prepared", p.UUID, ErrState, p.Phase)
	}
	if err := p.lock(unix.LOCK_EX | unix.LOCK_NB); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Pod) lock(how int) error {
	fd, err := unix.Open(p.Path(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("pod %s: %w", p.UUID, ErrNotFound)
		}
		return fmt.Errorf("pod %s: open: %w", p.UUID, err)
	}
	if err := unix.Flock(fd, how); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("pod %s: %w", p.UUID, ErrLocked)
		}
		return fmt.Errorf("pod %s: flock: %w", p.UUID, err)
	}
	p.fd = fd
	p.mode = how &^ unix.LOCK_NB
	return nil
}

// Lock takes the pod's lock exclusively (or shared), failing with ErrLocked if another process
// holds it and wait is false.
func (p *Pod) Lock(exclusive, wait bool) error {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if !wait {
		how |= unix.LOCK_NB
	}
	return p.lock(how)
}

// move renames the pod directory into another phase. The lock, held on the directory's inode,
// moves with it.
func (p *Pod) move(to Phase) error {
	dst := filepath.Join(p.store.Dir, string(to), p.UUID)
	if err := os.Rename(p.Path(), dst); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("pod %s: %w (moved by another process)", p.UUID, ErrNotFound)
		}
		return fmt.Errorf("pod %s: move to %s: %w", p.UUID, to, err)
	}
	p.Phase = to
	return nil
}

// probe reports whether another process holds the pod's lock.
func (p *Pod) probe() (held bool, err error) {
	fd, err := unix.Open(p.Path(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return true, nil
		}
		return false, err
	}
	return false, nil
}

// State samples the pod's state: its phase combined with whether its lock is held. A handle
// that holds the lock itself reports the state its owner sees.
func (p *Pod) State() State {
	held := p.fd >= 0 && p.mode == unix.LOCK_EX
	if p.fd < 0 {
		h, err := p.probe()
		if err != nil {
			return State("unknown")
		}
		held = h
	}
	switch p.Phase {
	case PhaseEmbryo:
		return Embryo
	case PhasePrepare:
		if held {
			return Preparing
		}
		return AbortedPrepare
	case PhasePrepared:
		return Prepared
	case PhaseRun:
		if held || p.store.orphaned(p) {
			return Running
		}
		return Exited
	case PhaseExitedGarbage:
		if held {
			return Deleting
		}
		return ExitedGarbage
	case PhaseGarbage:
		if held {
			return Deleting
		}
		return Garbage
	}
	return State("unknown")
}

// orphaned reports whether a run-phase pod whose lock is free has processes left.
func (s *Store) orphaned(p *Pod) bool {
	return p.Phase == PhaseRun && s.Alive != nil && s.Alive(p)
}

// Orphaned reports whether the pod runs without its supervisor: it is in the run phase, no
// process holds its lock (rkt run was killed), and its apps still run. Nothing will record
// their exits or stop them at a timeout, so rkt stop signals them itself, and rkt gc
// collects the pod, killing them.
func (p *Pod) Orphaned() bool {
	if p.Phase != PhaseRun {
		return false
	}
	if p.fd < 0 {
		if held, err := p.probe(); err != nil || held {
			return false
		}
	}
	return p.store.orphaned(p)
}

// List returns every pod in every phase, sorted by UUID. A pod that moves while it is listed
// appears once, in one of its phases.
func (s *Store) List() ([]*Pod, error) {
	seen := map[string]bool{}
	var pods []*Pod
	for _, ph := range Phases {
		ents, err := os.ReadDir(s.phaseDir(ph))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("list pods: %w", err)
		}
		for _, e := range ents {
			if !e.IsDir() || !ValidUUID(e.Name()) || seen[e.Name()] {
				continue
			}
			seen[e.Name()] = true
			pods = append(pods, &Pod{UUID: e.Name(), Phase: ph, store: s, fd: -1})
		}
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].UUID < pods[j].UUID })
	return pods, nil
}

// Get finds a pod by UUID or unique UUID prefix, in whatever phase it is. A pod moving between
// phases while it is looked up is retried.
func (s *Store) Get(ref string) (*Pod, error) {
	ref = strings.ToLower(strings.TrimSpace(ref))
	if ref == "" {
		return nil, fmt.Errorf("empty pod UUID: %w", ErrNotFound)
	}
	for range 3 {
		if ValidUUID(ref) {
			for _, ph := range Phases {
				p := &Pod{UUID: ref, Phase: ph, store: s, fd: -1}
				if _, err := os.Stat(p.Path()); err == nil {
					return p, nil
				}
			}
			continue
		}
		pods, err := s.List()
		if err != nil {
			return nil, err
		}
		var match []*Pod
		for _, p := range pods {
			if strings.HasPrefix(p.UUID, ref) {
				match = append(match, p)
			}
		}
		switch len(match) {
		case 1:
			return match[0], nil
		case 0:
			continue
		default:
			return nil, fmt.Errorf("pod %q: %w (%d pods match)", ref, ErrAmbiguous, len(match))
		}
	}
	return nil, fmt.Errorf("pod %q: %w", ref, ErrNotFound)
}

// Refresh finds the pod's current phase after another process may have moved it.
func (p *Pod) Refresh() error {
	q, err := p.store.Get(p.UUID)
	if err != nil {
		return err
	}
	p.Phase = q.Phase
	return nil
}

// ChangeTime is the ctime of the pod directory: rename sets it, so in exited-garbage it is the
// moment the pod was marked, the start of its grace period.
func (p *Pod) ChangeTime() (time.Time, error) {
	var st unix.Stat_t
	if err := unix.Stat(p.Path(), &st); err != nil {
		return time.Time{}, err
	}
	return time.Unix(st.Ctim.Sec, st.Ctim.Nsec), nil
}
