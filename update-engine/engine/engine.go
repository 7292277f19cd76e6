// Package engine is the update engine's policy: when to ask the Omaha server, what to tell it
// (events after each stage, the result of the reboot into a new version, rollbacks), the
// status that update_engine_client and D-Bus watchers see, and the periodic check loop. The
// work itself is apply's; the boot state is slots'.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cairn-os/cairn/update-engine/api"
	"github.com/cairn-os/cairn/update-engine/apply"
	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/slots"
	"github.com/cairn-os/cairn/update-engine/updateconf"
)

const updaterVersionName = "CairnUpdateEngine"

// ErrBusy: an update is already running.
var ErrBusy = errors.New("an update check or update is already running")

// Engine is one machine's update engine.
type Engine struct {
	Omaha   *omaha.Client
	Applier *apply.Applier
	Slots   *slots.Slots

	AppID, Group, Board string
	MachineID, BootID   string
	OEM                 string
	Version             string // running OS version

	Schedule updateconf.Schedule
	Now      func() time.Time
	Rand     func() float64
	Log      *slog.Logger

	mu sync.Mutex
	// reportMu makes ReportBoot one at a time: the retries after a start and the checks
	// both call it, and the server must hear of a boot once.
	reportMu sync.Mutex
	status   api.Status
	subs     map[chan api.Status]struct{}
	busy     bool
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// discardLog is the logger of a caller that set none.
var discardLog = slog.New(slog.DiscardHandler)

func (e *Engine) log() *slog.Logger {
	if e.Log == nil {
		return discardLog
	}
	return e.Log
}

// Status returns the current status.
func (e *Engine) Status() api.Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.status.CurrentOperation == "" {
		e.status.CurrentOperation = api.OpIdle
	}
	return e.status
}

// Subscribe returns a channel of status changes; call the returned func to stop.
func (e *Engine) Subscribe() (<-chan api.Status, func()) {
	ch := make(chan api.Status, 64)
	e.mu.Lock()
	if e.subs == nil {
		e.subs = map[chan api.Status]struct{}{}
	}
	e.subs[ch] = struct{}{}
	e.mu.Unlock()
	return ch, func() {
		e.mu.Lock()
		delete(e.subs, ch)
		e.mu.Unlock()
	}
}

func (e *Engine) setStatus(f func(*api.Status)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.status
	f(&e.status)
	if e.status == old {
		return
	}
	for ch := range e.subs {
		select {
		case ch <- e.status:
		default: // a slow watcher misses intermediate progress, never the engine's time
		}
	}
}

func (e *Engine) begin() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.busy {
		return ErrBusy
	}
	if e.status.CurrentOperation == api.OpNeedReboot {
		return nil
	}
	e.busy = true
	return nil
}

func (e *Engine) end() {
	e.mu.Lock()
	e.busy = false
	e.mu.Unlock()
}

func (e *Engine) request(installSource string, check bool, events ...*omaha.EventRequest) *omaha.Request {
	app := &omaha.AppRequest{ID: e.AppID, Version: e.Version, Track: e.Group, BootID: e.BootID, MachineID: e.MachineID,
		OEM: e.OEM, Board: e.Board, Lang: "en-US", Events: events}
	if check {
		app.Ping = &omaha.PingRequest{Active: 1}
		app.UpdateCheck = &omaha.UpdateCheck{}
	}
	return &omaha.Request{Protocol: omaha.Protocol, Version: updaterVersionName + "-" + e.Version,
		UpdaterVersion: updaterVersionName + "-" + e.Version, InstallSource: installSource, IsMachine: 1,
		OS: &omaha.OS{Platform: "Cairn", Version: e.Version, ServicePack: e.Version + "_" + e.Board}, Apps: []*omaha.AppRequest{app}}
}

// event sends one event and logs a failure, as update_engine did: the progress events of an
// update are best effort, and an update goes on without them.
func (e *Engine) event(ctx context.Context, ev *omaha.EventRequest) {
	if err := e.sendEvent(ctx, ev); err != nil {
		e.log().Warn("sending event", "type", ev.Type.String(), "result", ev.Result, "err", err)
	}
}

// sendEvent sends one event, for a caller that must know the server has it.
func (e *Engine) sendEvent(ctx context.Context, ev *omaha.EventRequest) error {
	if _, err := e.Omaha.Do(ctx, e.request("", false, ev)); err != nil {
		return fmt.Errorf("event %s (result %d): %w", ev.Type, ev.Result, err)
	}
	return nil
}

// Check asks the server for an update without applying it.
func (e *Engine) Check(ctx context.Context, installSource string) (*omaha.Update, error) {
	e.setStatus(func(s *api.Status) { s.CurrentOperation, s.LastError = api.OpChecking, "" })
	resp, err := e.Omaha.Do(ctx, e.request(installSource, true))
	now := e.now().Unix()
	if err != nil {
		e.setStatus(func(s *api.Status) { s.CurrentOperation, s.LastCheckedTime, s.LastError = api.OpIdle, now, err.Error() })
		return nil, err
	}
	var u *omaha.Update
	app, err := resp.App(e.AppID)
	if err == nil {
		u, err = app.FindUpdate()
	}
	if err != nil {
		e.setStatus(func(s *api.Status) { s.CurrentOperation, s.LastCheckedTime, s.LastError = api.OpIdle, now, err.Error() })
		return nil, err
	}
	e.setStatus(func(s *api.Status) {
		s.LastCheckedTime = now
		s.CurrentOperation = api.OpIdle
		if u != nil {
			s.CurrentOperation, s.NewVersion, s.NewSize = api.OpUpdateAvailable, u.Version, u.Size
		}
	})
	return u, nil
}

// Update checks for an update and applies it, reporting events to the server as
// update_engine does: download started (13), download finished (14), then update complete
// (3) with "success, reboot" or an error code.
func (e *Engine) Update(ctx context.Context, installSource string, force bool) (api.Result, error) {
	if err := e.begin(); err != nil {
		return api.ResultNoUpdate, err
	}
	if e.Status().CurrentOperation == api.OpNeedReboot {
		return api.ResultAlreadyUpdated, nil
	}
	defer e.end()
	u, err := e.Check(ctx, installSource)
	if err != nil || u == nil {
		return api.ResultNoUpdate, err
	}
	if !force {
		// As update_engine kept a rolled-back version off the machine: otherwise a server
		// that goes on offering it (as long as the rollback report has not made someone pull
		// it) would have the machine install it, fail three boots and roll back, again and
		// again. It is no update, not a failure: the checks go on at their pace, and find
		// the next version when it comes.
		bad, err := e.rolledBack(ctx, u.Version)
		if err != nil {
			e.setStatus(func(s *api.Status) { s.CurrentOperation, s.LastError = api.OpIdle, err.Error() })
			return api.ResultNoUpdate, err
		}
		if bad {
			why := fmt.Errorf("version %s: %w", u.Version, ErrRolledBack)
			e.log().Warn("not applying the update", "version", u.Version, "reason", why)
			e.setStatus(func(s *api.Status) {
				s.CurrentOperation, s.NewVersion, s.NewSize, s.LastError = api.OpIdle, "", 0, why.Error()
			})
			return api.ResultNoUpdate, nil
		}
	}
	e.log().Info("update available", "version", u.Version, "size", u.Size, "url", u.URL)
	e.event(ctx, &omaha.EventRequest{Type: omaha.EventTypeUpdateDownloadStarted, Result: omaha.EventResultSuccess})
	downloadReported := false
	lastTenth := map[string]int64{}
	onProgress := func(p apply.Progress) {
		// Progress in the log (stderr) every 10% of a step that moves bytes.
		if p.Total > 0 {
			if tenth := 10 * p.Done / p.Total; tenth > lastTenth[p.Step] {
				lastTenth[p.Step] = tenth
				e.log().Info("progress", "step", p.Step, "percent", 10*tenth, "bytes", p.Done, "of", p.Total)
			}
		}
		st := statusOf(p, downloadReported)
		if st.downloadFinished {
			downloadReported = true
			e.event(ctx, &omaha.EventRequest{Type: omaha.EventTypeUpdateDownloadFinished, Result: omaha.EventResultSuccess})
		}
		e.setStatus(func(s *api.Status) { s.CurrentOperation, s.Progress, s.Step = st.op, st.progress, st.step })
	}
	if _, err := e.Applier.Apply(ctx, apply.RequestFromOmaha(u), apply.Options{Force: force, OnProgress: onProgress}); err != nil {
		code := omaha.ErrorCodeError
		if se, ok := errors.AsType[*apply.StepError](err); ok {
			code = se.Code
		}
		e.setStatus(func(s *api.Status) { s.CurrentOperation, s.LastError = api.OpReportingError, err.Error() })
		if ctx.Err() == nil {
			e.event(ctx, &omaha.EventRequest{Type: omaha.EventTypeUpdateComplete, Result: omaha.EventResultError, ErrorCode: code})
		}
		e.setStatus(func(s *api.Status) { s.CurrentOperation, s.Progress, s.Step = api.OpIdle, 0, "" })
		return api.ResultNoUpdate, err
	}
	e.event(ctx, &omaha.EventRequest{Type: omaha.EventTypeUpdateComplete, Result: omaha.EventResultSuccessReboot})
	e.setStatus(func(s *api.Status) { s.CurrentOperation, s.Progress, s.Step = api.OpNeedReboot, 1, "" })
	e.log().Info("update applied; reboot to use it", "version", u.Version)
	return api.ResultUpdated, nil
}

// ErrRolledBack is why a version that this machine installed before and rolled back from is
// not installed again (Status.LastError).
var ErrRolledBack = errors.New("this machine rolled back from it (it never booted to good); an operator can retry it with update_engine_client -update -force")

// rolledBack reports whether a slot holds version and the loader gave up on it: it booted out
// of tries without being blessed good. The slot keeps that state until an update overwrites
// it, which is as long as the version is refused.
func (e *Engine) rolledBack(ctx context.Context, version string) (bool, error) {
	st, err := e.Slots.Status(ctx)
	if err != nil {
		return false, fmt.Errorf("slots: %w", err)
	}
	for _, s := range st.Slots {
		if s.Version == version && s.State == slots.StateBad {
			return true, nil
		}
	}
	return false, nil
}

// ReportBoot resolves the record of an applied update after a (re)start: booted into the new
// slot → "update complete" with the previous version; back on the old slot with the new one
// out of tries → a rollback error event; not rebooted yet → status "need reboot". The record
// is kept until the server has acknowledged the event.
func (e *Engine) ReportBoot(ctx context.Context) error {
	e.reportMu.Lock()
	defer e.reportMu.Unlock()
	p, err := apply.ReadPending(e.Applier.StateDir)
	if err != nil || p == nil {
		return err
	}
	st, err := e.Slots.Status(ctx)
	if err != nil {
		return err
	}
	var ev *omaha.EventRequest
	switch {
	case st.Active == p.NewSlot && e.Version == p.NewVersion:
		ev = &omaha.EventRequest{Type: omaha.EventTypeUpdateComplete, Result: omaha.EventResultSuccess, PreviousVersion: p.PreviousVersion}
		e.log().Info("running the updated version", "version", e.Version, "previous", p.PreviousVersion)
	case st.Active == p.PreviousSlot && st.Slot(p.NewSlot).Version == p.NewVersion && st.Slot(p.NewSlot).State == slots.StateBad:
		ev = &omaha.EventRequest{Type: omaha.EventTypeUpdateComplete, Result: omaha.EventResultError,
			ErrorCode: omaha.ErrorCodeRollback, PreviousVersion: p.NewVersion}
		e.log().Warn("rolled back: the new version never booted to good", "new", p.NewVersion, "running", e.Version)
	case st.Active == p.PreviousSlot && st.Next == p.NewSlot:
		e.setStatus(func(s *api.Status) {
			s.CurrentOperation, s.NewVersion, s.NewSize, s.Progress = api.OpNeedReboot, p.NewVersion, p.NewSize, 1
		})
		return nil
	default:
		e.log().Info("dropping a stale update record", "record", p)
		return os.Remove(filepath.Join(e.Applier.StateDir, apply.PendingFile))
	}
	if err := e.sendEvent(ctx, ev); err != nil {
		return err
	}
	return os.Remove(filepath.Join(e.Applier.StateDir, apply.PendingFile))
}

// ResetStatus returns to idle. After an applied update that has not been booted yet, it
// undoes it (the new slot is made unbootable again), as update_engine's ResetStatus did.
func (e *Engine) ResetStatus(ctx context.Context) error {
	e.mu.Lock()
	busy := e.busy
	e.mu.Unlock()
	if busy {
		return ErrBusy
	}
	p, err := apply.ReadPending(e.Applier.StateDir)
	if err != nil {
		return err
	}
	if p != nil {
		if active, err := e.Slots.ActiveSlot(); err == nil && active == p.PreviousSlot {
			if err := e.Slots.Invalidate(ctx, p.NewSlot); err != nil {
				return fmt.Errorf("reset: %w", err)
			}
			if err := os.Remove(filepath.Join(e.Applier.StateDir, apply.PendingFile)); err != nil {
				return err
			}
		}
	}
	e.setStatus(func(s *api.Status) { *s = api.Status{LastCheckedTime: s.LastCheckedTime, CurrentOperation: api.OpIdle} })
	return nil
}

// reportBootWithRetries calls ReportBoot until it succeeds, waiting 5 s, then twice as long
// each time, at most 5 min.
func (e *Engine) reportBootWithRetries(ctx context.Context) {
	wait := 5 * time.Second
	for {
		err := e.ReportBoot(ctx)
		if err == nil {
			return
		}
		e.log().Warn("reporting the boot result; will retry", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Minute)
	}
}

// Run checks on the schedule until ctx ends; a value on trigger starts a check at once.
func (e *Engine) Run(ctx context.Context, trigger <-chan struct{}) {
	rnd := e.Rand
	if rnd == nil {
		rnd = rand.Float64
	}
	// The network may not be up yet when the engine starts after a reboot: the boot's result
	// is retried until the server has it, not left to the first check minutes later.
	go e.reportBootWithRetries(ctx)
	first, failures := true, 0
	for {
		d := e.Schedule.Delay(first, failures, rnd())
		e.log().Debug("next update check", "in", d)
		t := time.NewTimer(d)
		source := omaha.InstallSourceScheduler
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-trigger:
			t.Stop()
			source = omaha.InstallSourceOnDemand
		}
		first = false
		if err := e.ReportBoot(ctx); err != nil {
			e.log().Warn("reporting the boot result", "err", err)
		}
		if _, err := e.Update(ctx, source, false); err != nil && !errors.Is(err, ErrBusy) {
			failures++
			e.log().Warn("update check failed", "err", err, "consecutive", failures)
		} else {
			failures = 0
		}
	}
}
