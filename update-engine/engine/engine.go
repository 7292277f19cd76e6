// Package engine is the update engine's policy: when to ask the Omaha server, what to tell it
// (events after each stage, the result of the reboot into a new version once it is blessed
// good, rollbacks, a declined version, an update that was interrupted or undone), the status
// that update_engine_client and D-Bus watchers see, and the periodic check loop. The work
// itself is apply's; the boot state is slots'.
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
	// MachineAlias names the machine in the server's instance list (MACHINE_ALIAS, else the
	// host name); OEM and OEMVersion are the OEM's ID and VERSION_ID; AlephVersion is the
	// version this machine was first installed with. Nebraska shows all four.
	MachineAlias    string
	OEM, OEMVersion string
	AlephVersion    string
	Version         string // running OS version

	// BlessPoll is how often a new version running on trial looks whether it has been
	// blessed good, to report the update complete (default 10 s).
	BlessPoll time.Duration

	// ProgressInterval is how often, at most, the server is told the step and progress of
	// an update being downloaded and written (DefaultProgressInterval when 0; never when
	// negative). Each report is a request of its own.
	ProgressInterval time.Duration
	// Pods lists the machine's pods for the report that goes with each update check (nil:
	// none are reported). CommandPods runs rkt list.
	Pods func(context.Context) ([]omaha.Pod, error)

	Schedule updateconf.Schedule
	Now      func() time.Time
	Rand     func() float64
	Log      *slog.Logger

	mu sync.Mutex
	// reportMu makes ReportBoot one at a time: the retries after a start and the checks
	// both call it, and the server must hear of a boot once.
	reportMu sync.Mutex
	// attemptMu is held by an Update while its attempt runs: ReportBoot leaves the attempt
	// record alone then, since that update reports its own end.
	attemptMu sync.Mutex
	status    api.Status
	subs      map[chan api.Status]struct{}
	busy      bool
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

// Request is an Omaha request as this engine sends it: the machine in the <app> (its
// application, version, track, ids, alias, OEM and aleph version, board), an update check
// with a ping when check is set, the events, and Cairn's report (Namespace: what the engine
// is doing, the pods). The fleet simulator sends what it sends through it.
func (e *Engine) Request(installSource string, check bool, r omaha.Report, events ...*omaha.EventRequest) *omaha.Request {
	app := &omaha.AppRequest{ID: e.AppID, Version: e.Version, Track: e.Group, BootID: e.BootID, MachineID: e.MachineID,
		MachineAlias: e.MachineAlias, OEM: e.OEM, OEMVersion: e.OEMVersion, AlephVersion: e.AlephVersion,
		Board: e.Board, Lang: "en-US", Events: events, Report: r}
	if check {
		app.Ping = &omaha.PingRequest{Active: 1}
		app.UpdateCheck = &omaha.UpdateCheck{}
	}
	return &omaha.Request{Protocol: omaha.Protocol, Version: updaterVersionName + "-" + e.Version,
		UpdaterVersion: updaterVersionName + "-" + e.Version, InstallSource: installSource, IsMachine: 1,
		OS: &omaha.OS{Platform: "Cairn", Version: e.Version, ServicePack: e.Version + "_" + e.Board}, Apps: []*omaha.AppRequest{app}}
}

// event sends one event with the report r and logs a failure, as update_engine did: the
// progress events of an update are best effort, and an update goes on without them.
func (e *Engine) event(ctx context.Context, ev *omaha.EventRequest, r omaha.Report) {
	if err := e.sendEvent(ctx, ev, r); err != nil {
		e.log().Warn("sending event", "event", ev.String(), "err", err)
	}
}

// sendEvent sends one event with the report r, for a caller that must know the server has
// it.
func (e *Engine) sendEvent(ctx context.Context, ev *omaha.EventRequest, r omaha.Report) error {
	if _, err := e.Omaha.Do(ctx, e.Request("", false, r, ev)); err != nil {
		return fmt.Errorf("event %s: %w", ev, err)
	}
	e.log().Debug("event sent", "event", ev.String())
	return nil
}

// Check asks the server for an update without applying it.
func (e *Engine) Check(ctx context.Context, installSource string) (*omaha.Update, error) {
	e.setStatus(func(s *api.Status) { s.CurrentOperation, s.LastError = api.OpChecking, "" })
	resp, err := e.Omaha.Do(ctx, e.Request(installSource, true, omaha.Report{Pods: e.pods(ctx)}))
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

// Update checks for an update and applies it, reporting events to the server: download
// started (13/1), download finished (14/1), then installed (800/1) or an error (3/0 with
// the failed step's code). The new version reports the update complete (3/2) itself, once it
// runs and is blessed good (ReportBoot). A version the machine rolled back from is declined
// with error 35, so that the server does not hold it as an update in progress.
func (e *Engine) Update(ctx context.Context, installSource string, force bool) (api.Result, error) {
	if err := e.begin(); err != nil {
		return api.ResultNoUpdate, err
	}
	if e.Status().CurrentOperation == api.OpNeedReboot {
		return api.ResultAlreadyUpdated, nil
	}
	defer e.end()
	e.attemptMu.Lock()
	defer e.attemptMu.Unlock()
	// While the running version is on trial, the other slot holds the version to fall back
	// to: no update may overwrite it.
	p, outcome, _, err := e.bootOutcome(ctx)
	if err != nil {
		return api.ResultNoUpdate, err
	}
	switch outcome {
	case bootOnTrial:
		e.setStatus(func(s *api.Status) { s.CurrentOperation, s.LastError = api.OpIdle, ErrOnTrial.Error() })
		return api.ResultNoUpdate, ErrOnTrial
	case bootNeedReboot:
		// Applied by an earlier run (this one has not reported the boot yet): the update
		// waits for its reboot, and Nebraska would refuse a check now.
		if err := e.settleAttempt(ctx, true); err != nil {
			e.log().Warn("reporting the earlier attempt", "err", err)
		}
		e.setStatus(func(s *api.Status) {
			s.CurrentOperation, s.NewVersion, s.NewSize, s.Progress = api.OpNeedReboot, p.NewVersion, p.NewSize, 1
		})
		return api.ResultAlreadyUpdated, nil
	}
	// The end of an earlier attempt first: Nebraska refuses the check of a machine it holds
	// as updating.
	if err := e.settleAttempt(ctx, false); err != nil {
		e.setStatus(func(s *api.Status) { s.CurrentOperation, s.LastError = api.OpIdle, err.Error() })
		return api.ResultNoUpdate, err
	}
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
			// The server granted it: tell it the machine declines, as update_engine did, so
			// that it does not count an update in progress until its timeout.
			e.event(ctx, omaha.Failed(omaha.ErrorCodeUpdateIgnoredPerPolicy), omaha.Report{})
			e.setStatus(func(s *api.Status) {
				s.CurrentOperation, s.NewVersion, s.NewSize, s.LastError = api.OpIdle, "", 0, why.Error()
			})
			return api.ResultNoUpdate, nil
		}
	}
	e.log().Info("update available", "version", u.Version, "size", u.Size, "url", u.URL)
	// The server holds the machine as updating from the first event on: the record makes the
	// next start tell it how the attempt ended, should this process not live to.
	if err := writeAttempt(e.Applier.StateDir, attempt{Version: u.Version}); err != nil {
		e.setStatus(func(s *api.Status) { s.CurrentOperation, s.LastError = api.OpIdle, err.Error() })
		return api.ResultNoUpdate, err
	}
	e.event(ctx, omaha.DownloadStarted(), omaha.Report{Operation: api.OpDownloading, Step: "download"})
	var prog progressState
	lastTenth := map[string]int64{}
	onProgress := func(p apply.Progress) {
		// Progress in the log (stderr) every 10% of a step that moves bytes.
		if p.Total > 0 {
			if tenth := 10 * p.Done / p.Total; tenth > lastTenth[p.Step] {
				lastTenth[p.Step] = tenth
				e.log().Info("progress", "step", p.Step, "percent", 10*tenth, "bytes", p.Done, "of", p.Total)
			}
		}
		var st stepStatus
		st, prog = statusOf(prog, p)
		if st.downloadFinished {
			e.event(ctx, omaha.DownloadFinished(), e.report())
		}
		e.setStatus(func(s *api.Status) { s.CurrentOperation, s.Progress, s.Step = st.op, st.progress, st.step })
	}
	stopReports := e.reportProgress(ctx)
	_, err = e.Applier.Apply(ctx, apply.RequestFromOmaha(u), apply.Options{Force: force, OnProgress: onProgress})
	stopReports()
	if err != nil {
		code := omaha.ErrorCodeError
		if se, ok := errors.AsType[*apply.StepError](err); ok {
			code = se.Code
		}
		e.setStatus(func(s *api.Status) { s.CurrentOperation, s.LastError = api.OpReportingError, err.Error() })
		if ctx.Err() == nil {
			// The step and progress it failed at go with the error.
			e.endAttempt(ctx, omaha.Failed(code), e.report())
		}
		e.setStatus(func(s *api.Status) { s.CurrentOperation, s.Progress, s.Step = api.OpIdle, 0, "" })
		return api.ResultNoUpdate, err
	}
	e.endAttempt(ctx, omaha.Installed(), omaha.Report{Operation: api.OpNeedReboot, Progress: 1})
	e.setStatus(func(s *api.Status) { s.CurrentOperation, s.Progress, s.Step = api.OpNeedReboot, 1, "" })
	e.log().Info("update applied; reboot to use it", "version", u.Version)
	return api.ResultUpdated, nil
}

// endAttempt sends the event that ends an attempt and drops the attempt's record once the
// server has it; until then the record stays, for the next ReportBoot to send again.
func (e *Engine) endAttempt(ctx context.Context, ev *omaha.EventRequest, r omaha.Report) {
	if err := e.sendEvent(ctx, ev, r); err != nil {
		e.log().Warn("sending event; will be sent again before the next check", "event", ev.String(), "err", err)
		return
	}
	if err := removeAttempt(e.Applier.StateDir); err != nil {
		e.log().Warn("removing the attempt record", "err", err)
	}
}

// ErrRolledBack is why a version that this machine installed before and rolled back from is
// not installed again (Status.LastError).
var ErrRolledBack = errors.New("this machine rolled back from it (it never booted to good); an operator can retry it with update_engine_client -update -force")

// ErrOnTrial: the running version is a new update that has not been blessed good yet
// (systemd-bless-boot marks it after boot-complete.target). Its completion is reported, and
// updates are checked for, once it is; until then the other slot holds the version the boot
// loader falls back to.
var ErrOnTrial = errors.New("the running version is on trial: not yet blessed good (boot-complete.target); no update until it is")

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

// bootOutcome is where the machine stands with an applied update (its record, pending.json).
type bootOutcome int

const (
	bootNoRecord   bootOutcome = iota // no applied update
	bootNeedReboot                    // applied, not booted yet
	bootOnTrial                       // booted, not yet blessed good
	bootComplete                      // booted and blessed good
	bootRolledBack                    // the new slot ran out of tries; back on the old one
	bootStale                         // a record that matches none of these
)

// bootOutcome reads the record of an applied update and the slots, and returns the state
// of the slot the update went to.
func (e *Engine) bootOutcome(ctx context.Context) (*apply.Pending, bootOutcome, slots.SlotStatus, error) {
	p, err := apply.ReadPending(e.Applier.StateDir)
	if err != nil || p == nil {
		return nil, bootNoRecord, slots.SlotStatus{}, err
	}
	st, err := e.Slots.Status(ctx)
	if err != nil {
		return p, bootNoRecord, slots.SlotStatus{}, fmt.Errorf("slots: %w", err)
	}
	newSlot := st.Slot(p.NewSlot)
	switch {
	case st.Active == p.NewSlot && e.Version == p.NewVersion && newSlot.State == slots.StateGood:
		return p, bootComplete, newSlot, nil
	case st.Active == p.NewSlot && e.Version == p.NewVersion:
		// Trying, or at its last try (the loader counted it down to 0 as it booted it).
		return p, bootOnTrial, newSlot, nil
	case st.Active == p.PreviousSlot && newSlot.Version == p.NewVersion && newSlot.State == slots.StateBad:
		return p, bootRolledBack, newSlot, nil
	case st.Active == p.PreviousSlot && st.Next == p.NewSlot:
		return p, bootNeedReboot, newSlot, nil
	}
	return p, bootStale, newSlot, nil
}

// ReportBoot resolves the record of an applied update after a (re)start: booted into the new
// slot and blessed good → "update complete" (3/2) with the previous version; booted into it
// but not blessed yet → ErrOnTrial, and the record is kept (a rollback by boot counting is
// still to come, and is then reported while the server has the update in progress); back on
// the old slot with the new one out of tries → a rollback error event (44); not rebooted yet
// → status "need reboot". The record is kept until the server has acknowledged the event.
// Then an attempt that ended without the server hearing of it is reported: installed, undone
// (1004) or interrupted (1005).
func (e *Engine) ReportBoot(ctx context.Context) error {
	e.reportMu.Lock()
	defer e.reportMu.Unlock()
	p, outcome, newSlot, err := e.bootOutcome(ctx)
	if err != nil {
		return err
	}
	var ev *omaha.EventRequest
	switch outcome {
	case bootComplete:
		ev = omaha.Complete(p.PreviousVersion)
		e.log().Info("running the updated version, blessed good", "version", e.Version, "previous", p.PreviousVersion)
	case bootRolledBack:
		// The boot counter of the slot it left says how many boots the version had.
		tries := newSlot.TriesDone
		ev = omaha.RolledBack(p.NewVersion, tries, newSlot.TriesLeft)
		e.log().Warn("rolled back: the new version never booted to good", "new", p.NewVersion, "running", e.Version, "boot_tries", tries)
	case bootOnTrial:
		return ErrOnTrial
	case bootNeedReboot:
		e.setStatus(func(s *api.Status) {
			s.CurrentOperation, s.NewVersion, s.NewSize, s.Progress = api.OpNeedReboot, p.NewVersion, p.NewSize, 1
		})
	case bootStale:
		e.log().Info("dropping a stale update record", "record", p)
		if err := os.Remove(filepath.Join(e.Applier.StateDir, apply.PendingFile)); err != nil {
			return err
		}
	}
	if ev != nil {
		if err := e.sendEvent(ctx, ev, omaha.Report{}); err != nil {
			return err
		}
		if err := os.Remove(filepath.Join(e.Applier.StateDir, apply.PendingFile)); err != nil {
			return err
		}
		// The complete or rollback report ends the attempt too.
		return removeAttempt(e.Applier.StateDir)
	}
	return e.reportAttempt(ctx, outcome == bootNeedReboot)
}

// reportAttempt tells the server how an attempt it has not heard the end of ended: installed
// (applied is true), undone, or interrupted. Nebraska holds a machine that reported a
// download as updating, and answers its checks with "update in progress" until it hears.
func (e *Engine) reportAttempt(ctx context.Context, applied bool) error {
	if !e.attemptMu.TryLock() {
		return nil // an update is running: it settles the record before its check
	}
	defer e.attemptMu.Unlock()
	return e.settleAttempt(ctx, applied)
}

// settleAttempt is reportAttempt for a caller that holds attemptMu.
func (e *Engine) settleAttempt(ctx context.Context, applied bool) error {
	a, err := readAttempt(e.Applier.StateDir)
	if err != nil || a == nil {
		return err
	}
	ev, r := omaha.Failed(omaha.ErrorCodeInterrupted), omaha.Report{}
	switch {
	case a.Canceled:
		ev = omaha.Failed(omaha.ErrorCodeUpdateCanceled)
	case applied:
		ev, r = omaha.Installed(), omaha.Report{Operation: api.OpNeedReboot, Progress: 1}
	}
	e.log().Info("reporting how an earlier attempt ended", "version", a.Version, "event", ev.String())
	if err := e.sendEvent(ctx, ev, r); err != nil {
		return err
	}
	return removeAttempt(e.Applier.StateDir)
}

// ResetStatus returns to idle. After an applied update that has not been booted yet, it
// undoes it (the new slot is made unbootable again), as update_engine's ResetStatus did;
// the server hears of it (error 1004) with the next report, since a D-Bus caller should not
// wait for the network.
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
			if err := writeAttempt(e.Applier.StateDir, attempt{Version: p.NewVersion, Canceled: true}); err != nil {
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
// each time, at most 5 min; while the running version is on trial, it looks every BlessPoll.
func (e *Engine) reportBootWithRetries(ctx context.Context) {
	wait := 5 * time.Second
	for {
		err := e.ReportBoot(ctx)
		if err == nil {
			return
		}
		next := wait
		if errors.Is(err, ErrOnTrial) {
			next = e.blessPoll()
			e.log().Debug("waiting for the running version to be blessed good", "in", next)
		} else {
			e.log().Warn("reporting the boot result; will retry", "err", err, "in", wait)
			wait = min(2*wait, 5*time.Minute)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

func (e *Engine) blessPoll() time.Duration {
	if e.BlessPoll > 0 {
		return e.BlessPoll
	}
	return 10 * time.Second
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
		if err := e.ReportBoot(ctx); errors.Is(err, ErrOnTrial) {
			e.log().Info("no update check while the running version is on trial", "version", e.Version)
			e.setStatus(func(s *api.Status) { s.LastError = err.Error() })
			continue
		} else if err != nil {
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
