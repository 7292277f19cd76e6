package pod

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/appc/spec/schema"
)

// Files inside a pod directory. The appc pod manifest is the contract between rkt and its
// stage1, as in rkt; the rest is the record rkt list and rkt status read without a daemon.
const (
	ManifestFile = "pod"     // appc pod manifest (rkt cat-manifest)
	CreatedFile  = "created" // RFC 3339 time the pod was prepared
	StartedFile  = "started" // RFC 3339 time the apps were started
	PIDFile      = "pid"     // pid of the rkt run process supervising the pod
	ReadyFile    = "ready"   // exists once every app has been started
	StatusDir    = "status"  // status/<app>: the app's exit record, JSON
)

// AppExit is an app's exit record, written by the supervisor when the app's process ends.
type AppExit struct {
	ExitCode   int       `json:"exitCode"`         // 128+signal when killed by a signal, as a shell reports it
	Signal     string    `json:"signal,omitempty"` // the signal that killed it, if any
	FinishedAt time.Time `json:"finishedAt"`
}

// WriteStateFile replaces a file of a pod directory atomically (temp file + rename), without
// fsync: a pod's files describe processes that a host crash ends anyway, and gc cleans what is
// left, so durability would only slow every rkt run down.
func WriteStateFile(path string, data []byte, perm os.FileMode) error {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, ".tmp-"+base+"-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WriteManifest stores the pod manifest.
func (p *Pod) WriteManifest(m *schema.PodManifest) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("pod %s: encode manifest: %w", p.UUID, err)
	}
	return WriteStateFile(p.File(ManifestFile), b, 0o644)
}

// ReadManifestBytes returns the stored pod manifest as written.
func (p *Pod) ReadManifestBytes() ([]byte, error) {
	b, err := os.ReadFile(p.File(ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("pod %s: manifest: %w", p.UUID, err)
	}
	return b, nil
}

// Manifest reads and parses the pod manifest.
func (p *Pod) Manifest() (*schema.PodManifest, error) {
	b, err := p.ReadManifestBytes()
	if err != nil {
		return nil, err
	}
	var m schema.PodManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("pod %s: parse manifest: %w", p.UUID, err)
	}
	return &m, nil
}

// WriteTime records a timestamp file (CreatedFile, StartedFile).
func (p *Pod) WriteTime(name string, t time.Time) error {
	return WriteStateFile(p.File(name), []byte(t.UTC().Format(time.RFC3339Nano)+"\n"), 0o644)
}

// Time reads a timestamp file; the zero time when it is absent.
func (p *Pod) Time(name string) time.Time {
	b, err := os.ReadFile(p.File(name))
	if err != nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
	return t
}

// WritePID records the supervisor's pid.
func (p *Pod) WritePID(pid int) error {
	return WriteStateFile(p.File(PIDFile), []byte(strconv.Itoa(pid)+"\n"), 0o644)
}

// PID reads the supervisor's pid.
func (p *Pod) PID() (int, error) {
	b, err := os.ReadFile(p.File(PIDFile))
	if err != nil {
		return 0, fmt.Errorf("pod %s: pid: %w", p.UUID, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pod %s: bad pid file %q", p.UUID, b)
	}
	return pid, nil
}

// MarkReady records that every app has been started.
func (p *Pod) MarkReady() error { return WriteStateFile(p.File(ReadyFile), nil, 0o644) }

// Ready reports whether the pod's apps have all been started.
func (p *Pod) Ready() bool {
	_, err := os.Stat(p.File(ReadyFile))
	return err == nil
}

// WriteExit records an app's exit.
func (p *Pod) WriteExit(app string, e AppExit) error {
	if err := os.MkdirAll(p.File(StatusDir), 0o755); err != nil {
		return err
	}
	b, _ := json.Marshal(e)
	return WriteStateFile(p.File(StatusDir, app), b, 0o644)
}

// Exit reads an app's exit record; ok is false while the app has not exited (or never will be
// recorded, when its supervisor was killed).
func (p *Pod) Exit(app string) (e AppExit, ok bool, err error) {
	if strings.ContainsRune(app, filepath.Separator) {
		return e, false, fmt.Errorf("bad app name %q", app)
	}
	b, err := os.ReadFile(p.File(StatusDir, app))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return e, false, nil
		}
		return e, false, err
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, false, fmt.Errorf("pod %s: app %s exit record: %w", p.UUID, app, err)
	}
	return e, true, nil
}
