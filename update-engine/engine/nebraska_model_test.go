package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/payload"
)

// nebraskaInstance models how Nebraska keeps one machine of one application, as its backend
// does (backend/pkg/api: updates.go's GetUpdatePackage, events.go's RegisterEvent and
// triggerEventConsequences, instances.go's updateInstanceData), for a group with no rollout
// limits. The model is fed the requests Cairn's engine really sent; TestNebraska checks the
// same against a running Nebraska.
type nebraskaInstance struct {
	flatcarApp bool   // Nebraska has special rules for Flatcar's application id
	channel    string // the version the group's channel offers

	status     string // undefined, granted, downloading, downloaded, installed, complete, error
	inProgress bool   // update_in_progress
	version    string // the instance's version
	granted    string // last_update_version
	recorded   []string
	refused    []string // events Nebraska dropped, with why
	checks     []string // what each update check got
}

// Nebraska's event_type table: the (type, result) pairs it records.
var nebraskaEventTypes = map[[2]int]bool{{3, 0}: true, {3, 1}: true, {3, 2}: true, {13, 1}: true, {14, 1}: true, {800, 1}: true}

// request handles one Omaha request as Nebraska's handler does: the events first, then the
// ping's registration and the update check.
func (n *nebraskaInstance) request(app *omaha.AppRequest) {
	for _, ev := range app.Events {
		n.event(ev)
	}
	if app.Ping != nil || app.UpdateCheck != nil {
		n.version = app.Version
	}
	if app.UpdateCheck != nil {
		n.checks = append(n.checks, n.check(app.Version))
	}
}

func (n *nebraskaInstance) setStatus(s string) {
	if s == n.status {
		return
	}
	n.status = s
	switch s {
	case "complete":
		if n.granted != "" {
			n.version = n.granted
		}
		n.inProgress = false
	case "error", "undefined":
		n.inProgress = false
	}
}

func (n *nebraskaInstance) check(version string) string {
	switch n.status {
	case "downloading", "downloaded", "installed":
		return "error-updateInProgressOnInstance"
	case "granted":
		if payload.CompareVersions(version, n.granted) >= 0 {
			n.setStatus("complete")
			return "noupdate"
		}
		return "ok " + n.granted
	}
	if payload.CompareVersions(version, n.channel) >= 0 {
		return "noupdate"
	}
	n.status, n.inProgress, n.granted = "granted", true, n.channel
	return "ok " + n.granted
}

func (n *nebraskaInstance) event(ev *omaha.EventRequest) {
	t, r := int(ev.Type), int(ev.Result)
	name := fmt.Sprintf("%d/%d", t, r)
	if ev.ErrorCode != 0 {
		name += fmt.Sprintf(" error %d", int(ev.ErrorCode))
	}
	if !n.inProgress {
		n.refused = append(n.refused, name+": no update in progress")
		return
	}
	if n.flatcarApp && t == 3 && r == 2 && (ev.PreviousVersion == "" || ev.PreviousVersion == "0.0.0.0") {
		n.setStatus("undefined")
		n.refused = append(n.refused, name+": flatcar event ignored")
		return
	}
	if !nebraskaEventTypes[[2]int{t, r}] {
		n.refused = append(n.refused, name+": invalid event type or result")
		return
	}
	n.recorded = append(n.recorded, name)
	switch {
	case t == 3 && (r == 2 || (!n.flatcarApp && r == 1)):
		n.setStatus("complete")
	case t == 13 && r == 1:
		n.setStatus("downloading")
	case t == 14 && r == 1:
		n.setStatus("downloaded")
	case t == 800 && r == 1:
		n.setStatus("installed")
	case r == 0:
		n.setStatus("error")
	}
}

// replay feeds the model the requests sent since from, and returns how many there were.
func (n *nebraskaInstance) replay(reqs []*omaha.Request, from int) int {
	for _, r := range reqs[from:] {
		for _, a := range r.Apps {
			n.request(a)
		}
	}
	return len(reqs)
}

func (n *nebraskaInstance) String() string {
	return fmt.Sprintf("status %s, in progress %v, version %s; recorded [%s]; refused [%s]; checks [%s]", n.status, n.inProgress, n.version,
		strings.Join(n.recorded, ", "), strings.Join(n.refused, "; "), strings.Join(n.checks, ", "))
}

// The engine's sequence, replayed against the model under Flatcar's application id and under
// another (Cairn's own): check → download → installed → reboot (on trial: nothing sent, no
// check) → blessed good → complete; and a rollback after the first boot of the new version,
// recorded as an error, then the same version offered again and declined.
func TestNebraskaModelReplay(t *testing.T) {
	for _, flatcar := range []bool{false, true} {
		t.Run(fmt.Sprintf("flatcar app id %v", flatcar), func(t *testing.T) {
			ctx := context.Background()
			t.Run("complete", func(t *testing.T) {
				m := newMachine(t)
				m.publish("2.0.0", m.priv)
				neb := &nebraskaInstance{flatcarApp: flatcar, channel: "2.0.0", status: "undefined"}
				if _, err := m.engine("1.0.0").Update(ctx, "scheduler", false); err != nil {
					t.Fatal(err)
				}
				seen := neb.replay(m.sent(), 0)
				if neb.status != "installed" || !neb.inProgress {
					t.Fatalf("after the install: %v", neb)
				}
				m.slots.CountBootAttempt(ctx, disklayout.SlotB)
				m.boot(disklayout.SlotB)
				e := m.engine("2.0.0")
				e.ReportBoot(ctx) // on trial
				seen = neb.replay(m.sent(), seen)
				if neb.status != "installed" || !neb.inProgress {
					t.Fatalf("on trial: %v", neb)
				}
				m.slots.MarkGood(ctx, disklayout.SlotB)
				if err := e.ReportBoot(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := e.Update(ctx, "scheduler", false); err != nil {
					t.Fatal(err)
				}
				neb.replay(m.sent(), seen)
				want := "status complete, in progress false, version 2.0.0; recorded [13/1, 14/1, 800/1, 3/2]; refused []; checks [ok 2.0.0, noupdate]"
				if neb.String() != want {
					t.Fatalf("Nebraska would have\n%v\nwant\n%s", neb, want)
				}
			})
			t.Run("rollback", func(t *testing.T) {
				m := newMachine(t)
				m.publish("2.0.0", m.priv)
				neb := &nebraskaInstance{flatcarApp: flatcar, channel: "2.0.0", status: "undefined"}
				if _, err := m.engine("1.0.0").Update(ctx, "scheduler", false); err != nil {
					t.Fatal(err)
				}
				m.slots.CountBootAttempt(ctx, disklayout.SlotB)
				m.boot(disklayout.SlotB)
				m.engine("2.0.0").ReportBoot(ctx) // on trial, then never blessed
				for range 2 {
					m.slots.CountBootAttempt(ctx, disklayout.SlotB)
				}
				m.boot(disklayout.SlotA)
				e := m.engine("1.0.0")
				if err := e.ReportBoot(ctx); err != nil {
					t.Fatal(err)
				}
				seen := neb.replay(m.sent(), 0)
				if neb.status != "error" || neb.inProgress || len(neb.refused) != 0 {
					t.Fatalf("after the rollback: %v", neb)
				}
				// Nebraska offers 2.0.0 again; the engine declines it, which frees the slot.
				if _, err := e.Update(ctx, "ondemandupdate", false); err != nil {
					t.Fatal(err)
				}
				neb.replay(m.sent(), seen)
				want := "status error, in progress false, version 1.0.0; recorded [13/1, 14/1, 800/1, 3/0 error 44, 3/0 error 35]; refused []; checks [ok 2.0.0, ok 2.0.0]"
				if neb.String() != want {
					t.Fatalf("Nebraska would have\n%v\nwant\n%s", neb, want)
				}
			})
		})
	}
}

// The sequence Cairn sent before (3/2 without a previous version as "applied", 3/1 with one
// after the reboot, 1000 for a rollback) against the model: what went wrong with a real
// Nebraska, so that the model is known to tell the difference.
func TestNebraskaModelOldSequence(t *testing.T) {
	old := func(events ...*omaha.EventRequest) *omaha.AppRequest {
		return &omaha.AppRequest{Version: "1.0.0", Events: events}
	}
	check := func(v string) *omaha.AppRequest {
		return &omaha.AppRequest{Version: v, Ping: &omaha.PingRequest{Active: 1}, UpdateCheck: &omaha.UpdateCheck{}}
	}
	applied := old(&omaha.EventRequest{Type: 3, Result: 2})
	for _, c := range []struct {
		flatcar bool
		after   []*omaha.AppRequest
		want    string
	}{
		// Flatcar's id: the Flatcar rule closes the update; the report after the reboot is lost.
		{true, []*omaha.AppRequest{applied, {Version: "2.0.0", Events: []*omaha.EventRequest{{Type: 3, Result: 1, PreviousVersion: "1.0.0"}}}},
			"status undefined, in progress false, version 1.0.0; recorded [13/1, 14/1]; refused [3/2: flatcar event ignored; 3/1: no update in progress]; checks [ok 2.0.0]"},
		// Another id: "complete" before the reboot; the rollback report is lost.
		{false, []*omaha.AppRequest{applied, old(&omaha.EventRequest{Type: 3, Result: 0, ErrorCode: 1000, PreviousVersion: "2.0.0"})},
			"status complete, in progress false, version 2.0.0; recorded [13/1, 14/1, 3/2]; refused [3/0 error 1000: no update in progress]; checks [ok 2.0.0]"},
	} {
		n := &nebraskaInstance{flatcarApp: c.flatcar, channel: "2.0.0", status: "undefined"}
		for _, a := range append([]*omaha.AppRequest{check("1.0.0"), old(omaha.DownloadStarted()), old(omaha.DownloadFinished())}, c.after...) {
			n.request(a)
		}
		if n.String() != c.want {
			t.Errorf("flatcar %v:\n%v\nwant\n%s", c.flatcar, n, c.want)
		}
	}
}
