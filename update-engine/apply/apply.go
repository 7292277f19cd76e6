// Package apply installs a payload into the inactive slot as a list of named, restartable
// steps: download (resumable) → verify → invalidate the inactive slot → write /usr → verify
// the written bytes → write the UKI → stage the host's system extensions for the new version →
// record → make it the next boot with limited tries → clean up.
//
// Safety argument: nothing is written to a slot before the payload's signature, board,
// version and hashes check out; the inactive slot's boot entry is removed before its
// partition is touched; the only step that makes the new slot bootable is the last rename
// (set-next). A process killed anywhere leaves the active slot as it was and the inactive slot
// without a boot entry; the next run starts again from the top, resuming only the download.
// Extensions are staged in the new version's own directory of the store, which only the new
// slot's /usr links to, and before set-next: the running slot keeps its own, and the new slot
// never boots without the extensions the host activated.
package apply

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/cairn-os/cairn/internal/atomicfile"
	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/update-engine/extensions"
	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/payload"
	"github.com/cairn-os/cairn/update-engine/slots"
)

// Sentinel errors for the refusals.
var (
	ErrWrongBoard = errors.New("payload is for another board")
	ErrNotNewer   = errors.New("payload version is not newer than the running version")
	ErrTooOld     = errors.New("running version is older than the payload's minimum source version")
	ErrMismatch   = errors.New("payload does not match what the update server announced")
	ErrBusy       = errors.New("another update is being applied")
)

// Request is what to install: where the payload is and what the server said about it.
type Request struct {
	URL     string
	Size    int64
	SHA256  string // hex, of the whole payload file
	Version string
}

// RequestFromOmaha converts an update check's answer.
func RequestFromOmaha(u *omaha.Update) Request {
	return Request{URL: u.URL, Size: u.Size, SHA256: u.SHA256, Version: u.Version}
}

// Phase is the part of the flow a step belongs to: what the engine reports as its current
// operation, and what it tells the update server about (the download's end).
type Phase int

const (
	PhaseDownload Phase = iota + 1 // fetching the payload
	PhaseVerify                    // checking it; nothing is written to a slot yet
	PhaseFinalize                  // installing it into the inactive slot
)

func (p Phase) String() string {
	switch p {
	case PhaseDownload:
		return "download"
	case PhaseVerify:
		return "verify"
	case PhaseFinalize:
		return "finalize"
	}
	return "Phase(" + strconv.Itoa(int(p)) + ")"
}

// Progress is reported as steps run: once as a step starts, then as it moves bytes;
// Done/Total are bytes within the step.
type Progress struct {
	Step        string
	Phase       Phase
	Done, Total int64
}

// Options are one Apply's: what an operator asked for and who follows it.
type Options struct {
	// Force allows a version that is not newer (operator only; the engine also lets it pass
	// a rolled-back one).
	Force      bool
	OnProgress func(Progress)
}

// Applier holds everything the steps need. All dependencies are fields.
type Applier struct {
	Slots          *slots.Slots
	HTTP           *http.Client // nil: http.DefaultClient
	StateDir       string       // download and records, e.g. /var/lib/cairn/update
	Keys           []ed25519.PublicKey
	Board          string
	CurrentVersion string
	Tries          int // boot attempts for the new slot, default 3
	Log            *slog.Logger
	Now            func() time.Time
	// Extensions stages the host's activated system extensions for the new version (a format
	// 2 payload names their images); nil leaves extensions alone.
	Extensions *extensions.Stager
}

// StepError is a failed step, with the Omaha error code to report.
type StepError struct {
	Step string
	Code omaha.ErrorCode
	Err  error
}

func (e *StepError) Error() string { return fmt.Sprintf("update step %s: %v", e.Step, e.Err) }
func (e *StepError) Unwrap() error { return e.Err }

// Step is one named step of the flow.
type Step struct {
	Name  string
	Phase Phase
	Code  omaha.ErrorCode                         // reported when the step fails
	Run   func(r *run, ctx context.Context) error // a method expression on run
}

// run is the state one Apply carries from step to step.
type run struct {
	a        *Applier
	opts     Options
	req      Request
	step     Step // the one running
	target   disklayout.Slot
	file     string // the downloaded payload
	header   *payload.Header
	manifest *payload.Manifest
	bufs     *bufPool // I/O buffers of write-usr and verify-usr
}

// Result is a successful apply.
type Result struct {
	Slot            disklayout.Slot
	Version         string
	PreviousVersion string
}

// Steps is the flow, in order.
func Steps() []Step {
	return []Step{
		{"download", PhaseDownload, omaha.ErrorCodeDownloadTransferError, (*run).download},
		{"verify-payload", PhaseVerify, omaha.ErrorCodePayloadPubKeyVerify, (*run).verifyPayload},
		{"invalidate-inactive", PhaseFinalize, omaha.ErrorCodeSetBootError, (*run).invalidate},
		{"write-usr", PhaseFinalize, omaha.ErrorCodeDownloadWriteError, (*run).writeUSR},
		{"verify-usr", PhaseFinalize, omaha.ErrorCodeNewRootfsVerification, (*run).verifyUSR},
		{"write-uki", PhaseFinalize, omaha.ErrorCodeNewKernelVerification, (*run).writeUKI},
		{"stage-extensions", PhaseFinalize, omaha.ErrorCodeDownloadTransferError, (*run).stageExtensions},
		{"record", PhaseFinalize, omaha.ErrorCodeError, (*run).record},
		{"set-next-boot", PhaseFinalize, omaha.ErrorCodeSetBootError, (*run).setNext},
		{"cleanup", PhaseFinalize, omaha.ErrorCodeError, (*run).cleanup},
	}
}

// discardLog is the logger of a caller that set none.
var discardLog = slog.New(slog.DiscardHandler)

func (a *Applier) log() *slog.Logger {
	if a.Log == nil {
		return discardLog
	}
	return a.Log
}

// progress reports that done of total bytes of the running step are done.
func (r *run) progress(done, total int64) {
	if r.opts.OnProgress != nil {
		r.opts.OnProgress(Progress{Step: r.step.Name, Phase: r.step.Phase, Done: done, Total: total})
	}
}

// Apply runs every step. It holds a lock in StateDir so that only one apply runs at a time.
func (a *Applier) Apply(ctx context.Context, req Request, opts Options) (*Result, error) {
	if err := os.MkdirAll(a.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("update state %s: %w", a.StateDir, err)
	}
	unlock, err := lockDir(a.StateDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := atomicfile.RemoveStale(a.StateDir); err != nil {
		return nil, err
	}
	active, err := a.Slots.ActiveSlot()
	if err != nil {
		return nil, &StepError{Step: "find-slots", Code: omaha.ErrorCodeInstallDeviceOpenError, Err: err}
	}
	r := &run{a: a, opts: opts, req: req, target: active.Other()}
	defer func() { r.bufs.release() }()
	for _, st := range Steps() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		a.log().Info("update step", "step", st.Name, "slot", r.target, "version", req.Version)
		r.step = st
		r.progress(0, 0)
		start := time.Now()
		if err := st.Run(r, ctx); err != nil {
			code := st.Code
			if ce, ok := errors.AsType[*codedError](err); ok {
				code = ce.code
			}
			return nil, &StepError{Step: st.Name, Code: code, Err: err}
		}
		a.log().Debug("update step done", "step", st.Name, "took", time.Since(start))
	}
	return &Result{Slot: r.target, Version: r.manifest.Version, PreviousVersion: a.CurrentVersion}, nil
}

// codedError overrides a step's default error code for one failure.
type codedError struct {
	code omaha.ErrorCode
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func coded(code omaha.ErrorCode, err error) error { return &codedError{code: code, err: err} }

func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("update lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, ErrBusy
	}
	return func() { f.Close() }, nil
}
