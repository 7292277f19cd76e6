// Package updates is the console's update service: the Omaha endpoint machines check in
// at (Cairn's update engine and stock Flatcar update_engine alike), the payload downloads,
// and the rollout loop. A check registers or updates the machine's instance, records its
// events with the meaning Nebraska gives them (13/1 downloading, 14/1 downloaded, 800/1 or
// update_engine's 3/1 installed, 3/2 with a previous version complete, result 0 an error;
// 44 a rollback), and answers its update check with what rollout.Decide makes of the
// group's policy and the stored facts, all in one transaction that has committed before
// the answer is written: an acknowledged event is never lost.
package updates

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairn-os/cairn/console/payloads"
	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/console/store"
	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/payload"
)

// Paths the service answers on.
const (
	UpdatePath   = "/v1/update/"
	PayloadsPath = "/v1/payloads/"
)

// Check results, as the metrics count them.
const (
	ResultUpdate     = "update"      // offered the group's version
	ResultNoUpdate   = "noupdate"    // up to date, or nothing to offer
	ResultHold       = "hold"        // the policy holds it back
	ResultUnknownApp = "unknown_app" // no such application
	ResultEvent      = "event"       // events or a ping, no update check
	ResultError      = "error"       // a malformed request or the database failed
)

// Service answers machines.
type Service struct {
	Store    *store.Store
	Payloads *payloads.Dir
	// BaseURL is the console's URL as machines reach it, for payload URLs; empty: the
	// scheme and host the request came to.
	BaseURL string
	Log     *slog.Logger
	Now     func() time.Time
	// Observe, when set, is told each request's result and how long it took.
	Observe func(result string, d time.Duration)
	// LastCheckResolution is how stale an instance's last check time may get before a check
	// that changes nothing else records it (a minute when 0); LastCheckDelay is how long the
	// time then waits to be written with the others of its batch (a second when 0). A
	// fleet's routine checks are then reads, which SQLite serves concurrently, and one write
	// a batch, rather than a write each, which it takes one at a time. What a console that
	// dies loses is a second of last check times, never an event.
	LastCheckResolution time.Duration
	LastCheckDelay      time.Duration

	lastChecks struct {
		sync.Mutex
		pending map[[2]string]time.Time // app id and machine id: the last check time to write
		timer   *time.Timer
	}
}

func noGroup(a *store.App, track string) string {
	return fmt.Sprintf("no group of %s has track %q", a.Name, track)
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// Register adds the service's routes to mux.
func (s *Service) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST "+UpdatePath, s.ServeOmaha)
	mux.HandleFunc("GET "+PayloadsPath+"{id}", s.ServePayload)
	mux.HandleFunc("GET "+PayloadsPath+"{id}/{name}", s.ServePayload)
}

// ServeOmaha answers one Omaha request.
func (s *Service) ServeOmaha(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	result := ResultError
	defer func() {
		if s.Observe != nil {
			s.Observe(result, time.Since(start))
		}
	}()
	req, err := omaha.ParseRequest(http.MaxBytesReader(w, r.Body, omaha.MaxMessageSize))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	base := s.BaseURL
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	resp, result, err := s.Answer(r.Context(), req, ip, strings.TrimSuffix(base, "/"))
	if err != nil {
		s.log().Error("omaha request", "client", r.RemoteAddr, "err", err)
		// Nothing was committed: the machine sends its events again.
		http.Error(w, "the console could not record the request; try again", http.StatusServiceUnavailable)
		result = ResultError
		return
	}
	b, err := omaha.Marshal(resp)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	if _, err := w.Write(b); err != nil {
		s.log().Debug("writing the omaha response", "client", r.RemoteAddr, "err", err)
	}
}

// Answer handles a parsed request from ip; base is the console's URL for payloads. It
// returns the response and the request's result (for the metrics). An error means nothing
// of the request was recorded.
func (s *Service) Answer(ctx context.Context, req *omaha.Request, ip, base string) (*omaha.Response, string, error) {
	now := s.now().UTC()
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	resp := &omaha.Response{Protocol: omaha.Protocol, Server: "cairn-console",
		DayStart: &omaha.DayStart{ElapsedSeconds: strconv.Itoa(int(now.Sub(midnight) / time.Second))}}
	result := ResultEvent
	for _, app := range req.Apps {
		out, res, err := s.answerApp(ctx, req, app, ip, base, now)
		if err != nil {
			return nil, ResultError, err
		}
		if res != ResultEvent {
			result = res
		}
		resp.Apps = append(resp.Apps, out)
	}
	return resp, result, nil
}

func (s *Service) answerApp(ctx context.Context, req *omaha.Request, app *omaha.AppRequest, ip, base string, now time.Time) (*omaha.AppResponse, string, error) {
	out := &omaha.AppResponse{ID: app.ID, Status: omaha.StatusOK}
	a, err := s.Store.App(ctx, app.ID)
	if errors.Is(err, store.ErrNotFound) {
		out.Status = omaha.StatusUnknownApplication
		if app.UpdateCheck != nil {
			out.UpdateCheck = &omaha.UpdateResponse{Status: omaha.StatusInternalError}
		}
		return out, ResultUnknownApp, nil
	}
	if err != nil {
		return nil, "", err
	}
	if app.MachineID == "" {
		// Nothing to register the request under: answer it, record nothing.
		for range app.Events {
			out.Events = append(out.Events, &omaha.EventResponse{Status: omaha.StatusOK})
		}
		if app.Ping != nil {
			out.Ping = &omaha.PingResponse{Status: omaha.StatusOK}
		}
		if app.UpdateCheck != nil {
			out.UpdateCheck = &omaha.UpdateResponse{Status: omaha.StatusNoUpdate}
		}
		return out, ResultNoUpdate, nil
	}
	if len(app.Events) == 0 {
		out, result, ok, err := s.unchanged(ctx, req, a, app, ip, now)
		if err != nil {
			return nil, "", fmt.Errorf("application %s, machine %s: %w", a.ID, app.MachineID, err)
		}
		if ok {
			return out, result, nil
		}
	}
	result := ResultEvent
	var offer *store.Group
	err = s.Store.Write(ctx, func(tx *store.Tx) error {
		offer, result = nil, ResultEvent
		// Unlocked: most checks take nothing of the group's; decide locks it to grant.
		g, err := tx.GroupOfTrack(ctx, a.ID, app.Track)
		if err != nil {
			return err
		}
		c := store.CheckIn{AppID: a.ID, MachineID: app.MachineID, Track: app.Track, Alias: app.MachineAlias, IP: ip, Version: app.Version,
			Board: app.Board, OEM: app.OEM, OEMVersion: app.OEMVersion, AlephVersion: app.AlephVersion,
			Check: app.Ping != nil || app.UpdateCheck != nil, Time: now}
		if g != nil {
			c.GroupID = g.ID
		}
		in, err := tx.CheckIn(ctx, c)
		if err != nil {
			return err
		}
		for _, ev := range app.Events {
			if err := s.event(ctx, tx, a, g, in, ev, now); err != nil {
				return err
			}
		}
		if err := report(ctx, tx, in, app, now); err != nil {
			return err
		}
		if g != nil && in.UpdateInProgress && rollout.TimedOut(g.Policy, in.GrantedAt, now) {
			if err := timeOut(ctx, tx, g, in, now); err != nil {
				return err
			}
		}
		if app.UpdateCheck == nil {
			return nil
		}
		if g == nil {
			result = ResultNoUpdate
			return tx.SetHold(ctx, in, rollout.ReasonNoGroup, noGroup(a, app.Track))
		}
		d, err := s.decide(ctx, tx, g, in, req.InstallSource == omaha.InstallSourceOnDemand, now)
		if err != nil {
			return err
		}
		switch {
		case d.Offer:
			offer, result = g, ResultUpdate
		case d.Hold != rollout.ReasonNone && d.Hold != rollout.ReasonNoPackage:
			result = ResultHold
		default:
			result = ResultNoUpdate
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("application %s, machine %s: %w", a.ID, app.MachineID, err)
	}
	for range app.Events {
		out.Events = append(out.Events, &omaha.EventResponse{Status: omaha.StatusOK})
	}
	if app.Ping != nil {
		out.Ping = &omaha.PingResponse{Status: omaha.StatusOK}
	}
	if app.UpdateCheck == nil {
		return out, result, nil
	}
	out.UpdateCheck = &omaha.UpdateResponse{Status: omaha.StatusNoUpdate}
	if offer != nil {
		pkg, err := s.Store.PackageByID(ctx, offer.PackageID)
		if err != nil {
			// Unpublished between the grant and now: the next check is answered anew.
			s.log().Warn("offered package vanished", "package", offer.PackageID, "err", err)
			return out, ResultNoUpdate, nil
		}
		out.UpdateCheck = updateResponse(pkg, base)
		s.log().Info("offering update", "app", a.ID, "machine", app.MachineID, "from", app.Version, "to", pkg.Version, "group", offer.Name)
	}
	return out, result, nil
}

// unchanged answers a check that would change nothing in the database, without a write: a
// known machine that says of itself what it said last time, whose last check is recent,
// and that is not offered an update now nor held for another reason than last time (the
// hold's wording, its counts, is refreshed with the last check time). Anything else goes to
// the write path, which decides again under the group's lock: an offer is only ever made
// there.
func (s *Service) unchanged(ctx context.Context, req *omaha.Request, a *store.App, app *omaha.AppRequest, ip string, now time.Time) (*omaha.AppResponse, string, bool, error) {
	in, err := s.Store.Instance(ctx, a.ID, app.MachineID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", false, nil
	}
	if err != nil {
		return nil, "", false, err
	}
	g, err := s.Store.GroupByTrack(ctx, a.ID, app.Track)
	if err != nil {
		return nil, "", false, err
	}
	res := s.LastCheckResolution
	if res <= 0 {
		res = time.Minute
	}
	groupID := ""
	if g != nil {
		groupID = g.ID
	}
	same := func(said, known string) bool { return said == "" || said == known }
	if in.GroupID != groupID || in.Track != app.Track || in.IP != ip || in.Version != app.Version || !same(app.Board, in.Board) ||
		!same(app.MachineAlias, in.Alias) || !same(app.OEM, in.OEM) || !same(app.OEMVersion, in.OEMVersion) || !same(app.AlephVersion, in.AlephVersion) ||
		now.Before(in.LastCheckAt) || (app.Ping == nil && app.UpdateCheck == nil) {
		return nil, "", false, nil
	}
	// A report that says something new: progress, a check that ends the last one, pods
	// that changed.
	if app.Operation != "" || (app.UpdateCheck != nil && in.Operation != "") || (app.Pods != nil && in.PodsChanged(app.Pods)) {
		return nil, "", false, nil
	}
	if g != nil && in.UpdateInProgress && rollout.TimedOut(g.Policy, in.GrantedAt, now) {
		return nil, "", false, nil
	}
	out := &omaha.AppResponse{ID: app.ID, Status: omaha.StatusOK}
	if app.Ping != nil {
		out.Ping = &omaha.PingResponse{Status: omaha.StatusOK}
	}
	if app.UpdateCheck == nil {
		return out, ResultEvent, true, nil
	}
	hold, result := rollout.ReasonNoGroup, ResultNoUpdate
	if g != nil {
		var st rollout.Stats
		if g.Version != "" && payload.CompareVersions(in.Version, g.Version) < 0 && !g.Paused {
			if st, err = s.Store.RolloutStats(ctx, g, now); err != nil {
				return nil, "", false, err
			}
		}
		d := rollout.Decide(g.Rollout(), g.Version, st, in.Rollout(req.InstallSource == omaha.InstallSourceOnDemand), now)
		if d.Offer || d.Halt != "" {
			return nil, "", false, nil
		}
		hold = d.Hold
		if hold != rollout.ReasonNone && hold != rollout.ReasonNoPackage {
			result = ResultHold
		}
	}
	if hold != in.Hold {
		return nil, "", false, nil
	}
	if now.Sub(in.LastCheckAt) >= res {
		s.touch(in.AppID, in.ID, now)
	}
	out.UpdateCheck = &omaha.UpdateResponse{Status: omaha.StatusNoUpdate}
	return out, result, true, nil
}

// touch records a routine check's time for the next batch, written LastCheckDelay after
// the first time of the batch came.
func (s *Service) touch(appID, id string, at time.Time) {
	lc := &s.lastChecks
	lc.Lock()
	defer lc.Unlock()
	if lc.pending == nil {
		lc.pending = map[[2]string]time.Time{}
	}
	if k := [2]string{appID, id}; at.After(lc.pending[k]) {
		lc.pending[k] = at
	}
	if lc.timer == nil {
		d := s.LastCheckDelay
		if d <= 0 {
			d = time.Second
		}
		lc.timer = time.AfterFunc(d, func() {
			if err := s.Flush(context.Background()); err != nil {
				s.log().Warn("writing last check times", "err", err)
			}
		})
	}
}

// Flush writes the last check times of routine checks that wait for their batch: at once,
// for a caller that reads them (tests) or stops.
func (s *Service) Flush(ctx context.Context) error {
	lc := &s.lastChecks
	lc.Lock()
	pending := lc.pending
	lc.pending = nil
	if lc.timer != nil {
		lc.timer.Stop()
		lc.timer = nil
	}
	lc.Unlock()
	if len(pending) == 0 {
		return nil
	}
	checks := make([]store.LastCheck, 0, len(pending))
	for k, at := range pending {
		checks = append(checks, store.LastCheck{AppID: k[0], ID: k[1], At: at})
	}
	// In one order, so that two batches written at once take their rows' locks (PostgreSQL)
	// in the same order.
	slices.SortFunc(checks, func(a, b store.LastCheck) int {
		return cmp.Or(strings.Compare(a.AppID, b.AppID), strings.Compare(a.ID, b.ID))
	})
	return s.Store.TouchLastChecks(ctx, checks)
}

// updateResponse offers pkg as update_engine and Cairn's engine read it: the SHA-1 (base64)
// in the package's hash, the SHA-256 in hash_sha256 (hex) and on the postinstall action
// (base64, where Flatcar's update_engine and Nebraska put it).
func updateResponse(pkg *store.Package, base string) *omaha.UpdateResponse {
	sum, _ := hex.DecodeString(pkg.SHA256)
	return &omaha.UpdateResponse{
		Status: omaha.StatusOK,
		URLs:   &omaha.URLs{URLs: []omaha.URL{{CodeBase: base + PayloadsPath + pkg.ID + "/"}}},
		Manifest: &omaha.Manifest{
			Version:  pkg.Version,
			Packages: []omaha.Package{{Name: pkg.Filename, SHA1: pkg.SHA1, SHA256: pkg.SHA256, Size: pkg.Size, Required: true}},
			Actions: []omaha.Action{{Event: "postinstall", DisplayVersion: pkg.Version, SHA256: base64.StdEncoding.EncodeToString(sum),
				DisablePayloadBackoff: true}},
		},
	}
}

// event records one event and moves the instance on, as Nebraska reads the event.
func (s *Service) event(ctx context.Context, tx *store.Tx, a *store.App, g *store.Group, in *store.Instance, ev *omaha.EventRequest, now time.Time) error {
	e := &store.Event{AppID: a.ID, InstanceID: in.ID, GroupID: in.GroupID, Type: ev.Type, Result: ev.Result, ErrorCode: ev.ErrorCode,
		PreviousVersion: ev.PreviousVersion, Version: in.Version, CreatedAt: now}
	if err := tx.AddEvent(ctx, e); err != nil {
		return err
	}
	name := in.ID
	if in.Alias != "" {
		name = in.Alias
	}
	kind := ev.Kind()
	if in.Status == rollout.StatusTimedOut && (kind == omaha.KindDownloading || kind == omaha.KindDownloaded || kind == omaha.KindInstalled) {
		// Late progress of an update that ran out of its time: it stays timed out (and out
		// of the count in flight) until it completes or fails.
		return nil
	}
	switch kind {
	case omaha.KindDownloading:
		return tx.SetStatus(ctx, in, rollout.StatusDownloading, 0, now)
	case omaha.KindDownloaded:
		return tx.SetStatus(ctx, in, rollout.StatusDownloaded, 0, now)
	case omaha.KindInstalled:
		return tx.SetStatus(ctx, in, rollout.StatusInstalled, 0, now)
	case omaha.KindComplete:
		if err := tx.SetReport(ctx, in, "", "", 0, now); err != nil {
			return err
		}
		return tx.SetStatus(ctx, in, rollout.StatusComplete, 0, now)
	case omaha.KindError:
		act := &store.Activity{AppID: a.ID, GroupID: in.GroupID, InstanceID: in.ID, Version: in.GrantedVersion, Severity: store.SeverityWarning,
			Kind: "instance.failed", Actor: store.ActorOmaha,
			Message: fmt.Sprintf("%s: the update to %s failed: error %d (%s)", name, orUnknown(in.GrantedVersion), int(ev.ErrorCode), ev.ErrorCode)}
		switch ev.ErrorCode {
		case omaha.ErrorCodeRollback:
			failed := ev.PreviousVersion
			if failed == "" {
				failed = in.GrantedVersion
			}
			if err := tx.SetRolledBack(ctx, in, failed, int(ev.TriesDone), int(ev.TriesLeft), now); err != nil {
				return err
			}
			act.Kind, act.Version = "instance.rolledback", failed
			act.Message = fmt.Sprintf("%s rolled back from %s to %s%s: the new version never booted to good", name, orUnknown(failed), in.Version,
				triesText(int(ev.TriesDone), int(ev.TriesLeft)))
		case omaha.ErrorCodeUpdateIgnoredPerPolicy:
			act.Kind, act.Severity = "instance.declined", store.SeverityInfo
			act.Message = fmt.Sprintf("%s declined %s (error 35): it rolled back from that version before", name, orUnknown(in.GrantedVersion))
		}
		if err := tx.SetStatus(ctx, in, rollout.StatusError, int(ev.ErrorCode), now); err != nil {
			return err
		}
		if err := tx.AddActivity(ctx, act); err != nil {
			return err
		}
		if g != nil && in.GrantedVersion == g.Version && !g.Paused {
			return s.evaluate(ctx, tx, g, now)
		}
	}
	return nil
}

// triesText says how many boot tries a rolled-back version had, when its report said.
func triesText(done, left int) string {
	switch {
	case done == 0 && left == 0:
		return ""
	case left == 0:
		return fmt.Sprintf(" after %d boot tries", done)
	}
	return fmt.Sprintf(" after %d boot tries, %d left", done, left)
}

// report records what Cairn's engine said of itself beyond Omaha (omaha.Report): the
// operation, step and progress of the update it runs, and its pods. An update check without
// an operation says the machine runs no update: what it reported last is done with.
func report(ctx context.Context, tx *store.Tx, in *store.Instance, app *omaha.AppRequest, now time.Time) error {
	switch {
	case app.Operation != "":
		if err := tx.SetReport(ctx, in, app.Operation, app.Step, float64(app.Progress), now); err != nil {
			return err
		}
	case app.UpdateCheck != nil:
		if err := tx.SetReport(ctx, in, "", "", 0, now); err != nil {
			return err
		}
	}
	if app.Pods != nil {
		return tx.SetPods(ctx, in, app.Pods, now)
	}
	return nil
}

func orUnknown(v string) string {
	if v == "" {
		return "an unknown version"
	}
	return v
}

// decide answers an update check and records what it decided: a grant, a hold's reason, a
// halt of the group.
func (s *Service) decide(ctx context.Context, tx *store.Tx, g *store.Group, in *store.Instance, onDemand bool, now time.Time) (rollout.Decision, error) {
	var st rollout.Stats
	// The counts matter only to a machine that is behind and a group that may grant.
	if g.Version != "" && payload.CompareVersions(in.Version, g.Version) < 0 && !g.Paused {
		var err error
		if st, err = tx.RolloutStats(ctx, g, now); err != nil {
			return rollout.Decision{}, err
		}
	}
	d := rollout.Decide(g.Rollout(), g.Version, st, in.Rollout(onDemand), now)
	if (d.Offer && !d.Again) || d.Halt != "" {
		// A grant takes a slot of the group, a halt changes it: decide again with the group
		// locked (PostgreSQL), so that concurrent checks take turns. g is updated in place
		// for the caller.
		locked, err := tx.Group(ctx, g.ID)
		if err != nil {
			return rollout.Decision{}, err
		}
		*g = *locked
		if st, err = tx.RolloutStats(ctx, g, now); err != nil {
			return rollout.Decision{}, err
		}
		d = rollout.Decide(g.Rollout(), g.Version, st, in.Rollout(onDemand), now)
	}
	if d.Halt != "" {
		if err := halt(ctx, tx, g, d.Halt, now); err != nil {
			return d, err
		}
	}
	if d.Offer && !d.Again {
		if err := tx.Grant(ctx, in, g.Version, now); err != nil {
			return d, err
		}
		if g.RolloutVersion != g.Version {
			if err := tx.StartRollout(ctx, g.ID, g.Version, now); err != nil {
				return d, err
			}
			g.RolloutVersion, g.RolloutStartedAt = g.Version, now
			if err := tx.AddActivity(ctx, &store.Activity{AppID: g.AppID, GroupID: g.ID, Version: g.Version, Kind: "rollout.started",
				Actor: store.ActorRollout, Message: fmt.Sprintf("the rollout of %s in group %s started", g.Version, g.Name)}); err != nil {
				return d, err
			}
		}
	}
	detail := ""
	if d.Hold != rollout.ReasonNone {
		detail = d.Detail
	}
	return d, tx.SetHold(ctx, in, d.Hold, detail)
}

// evaluate halts the group if its failures at its version reached the policy's limit.
func (s *Service) evaluate(ctx context.Context, tx *store.Tx, g *store.Group, now time.Time) error {
	st, err := tx.RolloutStats(ctx, g, now)
	if err != nil {
		return err
	}
	if ok, why := rollout.Evaluate(g.Policy, st); ok {
		return halt(ctx, tx, g, why, now)
	}
	return nil
}

// halt pauses the group on the rollout's own decision, with the reason in the activity log.
func halt(ctx context.Context, tx *store.Tx, g *store.Group, why string, now time.Time) error {
	if g.Paused {
		return nil
	}
	if err := tx.Pause(ctx, g.AppID, g.ID, why, store.ActorRollout); err != nil {
		return err
	}
	g.Paused, g.PausedReason, g.PausedBy, g.PausedAt = true, why, store.ActorRollout, now
	return tx.AddActivity(ctx, &store.Activity{AppID: g.AppID, GroupID: g.ID, Version: g.Version, Severity: store.SeverityError,
		Kind: "rollout.halted", Actor: store.ActorRollout,
		Message: fmt.Sprintf("group %s halted its rollout of %s: %s; resume it once the cause is fixed", g.Name, g.Version, why)})
}

// timeOut marks an instance whose update ran out of the group's timeout.
func timeOut(ctx context.Context, tx *store.Tx, g *store.Group, in *store.Instance, now time.Time) error {
	if err := tx.SetStatus(ctx, in, rollout.StatusTimedOut, 0, now); err != nil {
		return err
	}
	name := in.ID
	if in.Alias != "" {
		name = in.Alias
	}
	return tx.AddActivity(ctx, &store.Activity{AppID: g.AppID, GroupID: g.ID, InstanceID: in.ID, Version: in.GrantedVersion,
		Severity: store.SeverityWarning, Kind: "instance.timedout", Actor: store.ActorRollout,
		Message: fmt.Sprintf("%s did not complete the update to %s within %s", name, in.GrantedVersion, g.Policy.UpdateTimeout)})
}

// Reconcile marks the updates that ran out of their group's timeout, whether or not their
// machines check in, and halts the groups whose failures reached their limit: what the
// checks would do, for machines that went silent. Running it again changes nothing.
func (s *Service) Reconcile(ctx context.Context) error {
	groups, err := s.Store.AllGroups(ctx)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	for _, listed := range groups {
		err := s.Store.Write(ctx, func(tx *store.Tx) error {
			g, err := tx.Group(ctx, listed.ID)
			if err != nil {
				return err
			}
			late, err := tx.TimedOut(ctx, g.ID, now.Add(-time.Duration(g.Policy.UpdateTimeout)))
			if err != nil {
				return err
			}
			for _, in := range late {
				if err := timeOut(ctx, tx, g, in, now); err != nil {
					return err
				}
			}
			if g.Paused || g.Version == "" {
				return nil
			}
			return s.evaluate(ctx, tx, g, now)
		})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("group %s: %w", listed.Name, err)
		}
	}
	return nil
}

// Run reconciles every interval until ctx ends, and then writes the last check times that
// wait for their batch.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.Reconcile(ctx); err != nil && ctx.Err() == nil {
			s.log().Warn("rollout reconcile", "err", err)
		}
		select {
		case <-ctx.Done():
			if err := s.Flush(context.WithoutCancel(ctx)); err != nil {
				s.log().Warn("writing last check times", "err", err)
			}
			return
		case <-t.C:
		}
	}
}

// ServePayload serves a package's payload file by the package's id.
func (s *Service) ServePayload(w http.ResponseWriter, r *http.Request) {
	p, err := s.Store.PackageByID(r.Context(), r.PathValue("id"))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if name := r.PathValue("name"); name != "" && name != p.Filename {
		http.NotFound(w, r)
		return
	}
	s.Payloads.Serve(w, r, p)
}
