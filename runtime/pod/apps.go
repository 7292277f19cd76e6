package pod

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

// AppsDir holds a directory per app (apps/<name>/): its root, and for an app of a sandbox
// pod its state record.
const AppsDir = "apps"

// AppStateFile, in apps/<name>/, is the state record of an app of a sandbox pod, which its
// supervisor replaces (atomically) at every change: created, started, exited.
const AppStateFile = "state.json"

// AppState is an app's state in rkt's api/v1 terms.
type AppState string

// The app states.
const (
	AppUnknown AppState = "unknown"
	AppCreated AppState = "created"
	AppRunning AppState = "running"
	AppExited  AppState = "exited"
)

// Exit reasons, as the CRI names them.
const (
	ReasonCompleted = "Completed" // exit status 0
	ReasonError     = "Error"     // any other status, or a signal
	ReasonOOMKilled = "OOMKilled" // the kernel's OOM killer ended it (in its memory cgroup)
)

// ExitReason is the reason for an app's exit with status code; oom says the kernel's OOM
// killer killed a process of the app's cgroup.
func ExitReason(code int, oom bool) string {
	switch {
	case oom:
		return ReasonOOMKilled
	case code == 0:
		return ReasonCompleted
	}
	return ReasonError
}

// AppRecord is an app's state as its supervisor records it (apps/<name>/state.json).
type AppRecord struct {
	Name       string    `json:"name"`
	State      AppState  `json:"state"`
	ImageID    string    `json:"imageID,omitempty"`
	CreatedAt  time.Time `json:"createdAt,omitzero"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	ExitCode   int       `json:"exitCode"`
	Signal     string    `json:"signal,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	PID        int       `json:"pid,omitempty"`
	LogPath    string    `json:"logPath,omitempty"`
	Stdin      string    `json:"stdin,omitempty"`
}

func appFile(app string, elem ...string) ([]string, error) {
	if _, err := types.NewACName(app); err != nil {
		return nil, fmt.Errorf("bad app name %q: %w", app, err)
	}
	return append([]string{AppsDir, app}, elem...), nil
}

// WriteAppRecord replaces the app's state record.
func (p *Pod) WriteAppRecord(r AppRecord) error {
	elem, err := appFile(r.Name, AppStateFile)
	if err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p.File(elem[:2]...), 0o755); err != nil {
		return err
	}
	return WriteStateFile(p.File(elem...), b, 0o644)
}

// AppRecord reads the app's state record; ok is false when there is none (an app of a pod
// that rkt run runs, or one being added or removed).
func (p *Pod) AppRecord(app string) (r AppRecord, ok bool, err error) {
	elem, err := appFile(app, AppStateFile)
	if err != nil {
		return r, false, err
	}
	b, err := os.ReadFile(p.File(elem...))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return r, false, nil
		}
		return r, false, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, false, fmt.Errorf("pod %s: app %s state: %w", p.UUID, app, err)
	}
	return r, true, nil
}

// App is one app of a pod: its entry in the pod manifest and its state.
type App struct {
	AppRecord
	Runtime schema.RuntimeApp
	// ExitKnown says the app's exit status was recorded (ExitCode, Signal and FinishedAt
	// are its): an app found exited only because its pod no longer runs has none.
	ExitKnown bool
	// Supervised says the state is a sandbox supervisor's record, with the app's own times.
	Supervised bool
}

// Apps lists the pod's apps, as its manifest has them, each with its state. It is the one
// reader of app states (rkt list, status, app list, app status, a CRI server): an app of a
// sandbox pod has the record its supervisor keeps; an app of a pod that rkt run runs has
// its pod's state, its exit record once it exited, and its pod's times.
func (p *Pod) Apps() ([]App, error) { return p.AppsIn(p.State()) }

// AppsIn is Apps for a caller that has sampled the pod's state already.
func (p *Pod) AppsIn(s State) ([]App, error) {
	m, err := p.Manifest()
	if err != nil {
		return nil, err
	}
	created, started := p.Time(CreatedFile), p.Time(StartedFile)
	var marked time.Time
	if p.Phase == PhaseExitedGarbage {
		marked, _ = p.ChangeTime()
	}
	apps := make([]App, 0, len(m.Apps))
	for _, ra := range m.Apps {
		a := App{Runtime: ra}
		name := string(ra.Name)
		rec, ok, err := p.AppRecord(name)
		if err != nil {
			return nil, err
		}
		if ok {
			a.Supervised, a.ExitKnown = true, rec.State == AppExited
			a.AppRecord = supervised(rec, s, marked)
		} else {
			a.AppRecord = AppRecord{Name: name, State: podAppState(s)}
			e, ok, err := p.Exit(name)
			if err != nil {
				return nil, err
			}
			if ok {
				a.State, a.ExitKnown = AppExited, true
				a.ExitCode, a.Signal, a.FinishedAt = e.ExitCode, e.Signal, e.FinishedAt
			} else if a.State == AppExited {
				a.FinishedAt = marked
			}
			if a.State != AppUnknown {
				a.CreatedAt = created
			}
			if a.State == AppRunning || a.State == AppExited {
				a.StartedAt = started
			}
		}
		apps = append(apps, a)
	}
	return apps, nil
}

// podAppState is an app's state as rkt infers it from its pod's.
func podAppState(s State) AppState {
	switch s {
	case Prepared:
		return AppCreated
	case Running:
		return AppRunning
	case Deleting, Exited, ExitedGarbage, Garbage:
		return AppExited
	}
	return AppUnknown
}

// supervised is an app's record read while its pod is in state s: a pod that no longer runs
// has no app left that runs or waits to, whatever its supervisor (killed before it could say
// so) last wrote.
func supervised(r AppRecord, s State, marked time.Time) AppRecord {
	if s != Running && (r.State == AppCreated || r.State == AppRunning) {
		r.State = AppExited
		r.PID = 0
		if r.FinishedAt.IsZero() {
			r.FinishedAt = marked
		}
	}
	return r
}
