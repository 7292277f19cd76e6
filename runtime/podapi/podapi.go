// Package podapi is the control protocol of a sandbox pod's supervisor (rkt app sandbox): the
// requests that add, start, stop and remove apps, attach to their stdio, resize their
// terminals and reopen their logs, the replies, and a Go client. The supervisor listens on a
// unix socket in the pod directory (SocketName); a request is one JSON line, answered by one
// JSON reply line, after which an attach connection carries the app's streams.
//
// It depends on the standard library and the appc schema only, so that a CRI server can
// drive sandboxes in-process with the same client the rkt command line uses.
package podapi

import (
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

// SocketName is the supervisor's socket, in the pod directory.
const SocketName = "supervisor.sock"

// Method names a request.
type Method string

// The methods.
const (
	MethodAdd        Method = "add"        // prepare an app up to just before its exec
	MethodStart      Method = "start"      // exec a created app
	MethodStop       Method = "stop"       // SIGTERM, SIGKILL after a timeout; returns once it exited
	MethodRemove     Method = "remove"     // stop, then take the app out of the pod
	MethodAttach     Method = "attach"     // after the reply, the connection carries the app's stdio
	MethodResize     Method = "resize"     // a tty app's window size
	MethodReopenLogs Method = "reopenLogs" // reopen log files after they were moved
	MethodStatus     Method = "status"     // the supervisor's view of its apps
	MethodUpdate     Method = "update"     // change a created or running app's cgroup limits
)

// StdinMode is what an app's stdin is.
type StdinMode string

// The stdin modes, as rkt's --stdin named them.
const (
	StdinNull   StdinMode = "null"   // /dev/null (the default)
	StdinStream StdinMode = "stream" // a pipe that attach writes to
	StdinTTY    StdinMode = "tty"    // a terminal: stdin, stdout and stderr are one pty
)

// AppState is an app's state.
type AppState string

// The app states: created (ready to exec), running, exited.
const (
	AppCreated AppState = "created"
	AppRunning AppState = "running"
	AppExited  AppState = "exited"
)

// Image is where an app's root comes from: the image's read-only trees, lowest first.
type Image struct {
	Name    string   `json:"name"`
	ImageID string   `json:"imageID"`
	Layers  []string `json:"layers"`
}

// AddRequest is an app to add: its entry in the pod manifest, its image, the volumes that
// come with it (its implicit empty volumes and per-app volumes), its stdin, and where its
// log goes ("" for the supervisor's default, <pod>/logs/<app>.log).
type AddRequest struct {
	App     schema.RuntimeApp `json:"app"`
	Image   Image             `json:"image"`
	Volumes []types.Volume    `json:"volumes,omitempty"`
	Stdin   StdinMode         `json:"stdin,omitempty"`
	LogPath string            `json:"logPath,omitempty"`
	// Linux is what the container gets beyond its appc app; nil leaves stage1's defaults.
	Linux *Linux `json:"linux,omitempty"`
}

// Request is one request line.
type Request struct {
	Method Method `json:"method"`
	// App names the app for every method but add (whose app is Add.App) and status;
	// reopenLogs without one reopens every app's log.
	App string      `json:"app,omitempty"`
	Add *AddRequest `json:"add,omitempty"`
	// Timeout, for stop and remove, is how long the app gets between SIGTERM and SIGKILL;
	// nil is the pod's stop timeout, 0 is SIGKILL at once.
	Timeout *time.Duration `json:"timeout,omitempty"`
	// Attach: which streams. Stdin needs an app added with a stdin (stream or tty).
	Stdin  bool `json:"stdin,omitempty"`
	Stdout bool `json:"stdout,omitempty"`
	Stderr bool `json:"stderr,omitempty"`
	// CloseStdin, for attach, closes the app's stdin when the client's input ends (the
	// CRI's stdin_once); otherwise the app's stdin stays open for the next attach.
	CloseStdin bool `json:"closeStdin,omitempty"`
	// Rows and Cols, for resize.
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
	// Resources, for update, replace the app's cgroup limits.
	Resources *Resources `json:"resources,omitempty"`
}

// AppStatus is an app as its supervisor sees it; the same record is in the pod directory
// (apps/<name>/state.json), where readers find it without asking.
type AppStatus struct {
	Name       string    `json:"name"`
	State      AppState  `json:"state"`
	ImageID    string    `json:"imageID,omitempty"`
	CreatedAt  time.Time `json:"createdAt,omitzero"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	ExitCode   int       `json:"exitCode"`
	Signal     string    `json:"signal,omitempty"`
	// Reason is why an exited app ended: Completed (status 0), OOMKilled, Error.
	Reason  string    `json:"reason,omitempty"`
	PID     int       `json:"pid,omitempty"`
	LogPath string    `json:"logPath,omitempty"`
	Stdin   StdinMode `json:"stdin,omitempty"`
}

// Reply is one reply line.
type Reply struct {
	Error string    `json:"error,omitempty"`
	Code  ErrorCode `json:"code,omitempty"`
	// App is the app after add, start and stop.
	App *AppStatus `json:"app,omitempty"`
	// Apps, for status.
	Apps []AppStatus `json:"apps,omitempty"`
	// TTY, for attach, says the stream that follows is the app's terminal, raw bytes both
	// ways; otherwise output comes in frames (WriteFrame) and input as raw bytes.
	TTY bool `json:"tty,omitempty"`
}
