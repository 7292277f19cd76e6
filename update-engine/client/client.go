// Package client is update_engine_client: it talks to the running update_engine over its
// unix socket with Container Linux's verbs (-status, -check_for_update, -update,
// -reset_status, -watch_for_updates) plus -slots.
package client

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/cairn-os/cairn/update-engine/engine"
	"github.com/cairn-os/cairn/update-engine/slots"
)

// Run is update_engine_client's main.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("update_engine_client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	status := fs.Bool("status", false, "print the update engine's status")
	check := fs.Bool("check_for_update", false, "start an update check (and update) in the background")
	update := fs.Bool("update", false, "check for an update and apply it; wait; exit 0 if updated or up to date, 1 on failure")
	reset := fs.Bool("reset_status", false, "return to idle; undo an applied update that was not booted yet")
	watch := fs.Bool("watch_for_updates", false, "print every status change")
	showSlots := fs.Bool("slots", false, "print the A/B slots and their boot state")
	force := fs.Bool("force", false, "with -update: install even a version that is not newer, or one this machine rolled back from (operator only)")
	format := fs.String("format", "text", "text or json")
	socket := fs.String("socket", engine.DefaultSocket, "update_engine's socket")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	json := *format == "json"
	out := &printer{w: stdout, json: json}
	var err error
	switch {
	case *status:
		err = engine.Dial(ctx, *socket, engine.Call{Method: engine.MethodGetStatus}, func(r engine.Reply) bool {
			out.status(r.Status)
			return false
		})
	case *check:
		err = engine.Dial(ctx, *socket, engine.Call{Method: engine.MethodAttemptUpdate}, func(r engine.Reply) bool {
			if !json {
				fmt.Fprintln(stderr, "Initiated update check.")
			}
			return false
		})
	case *reset:
		err = engine.Dial(ctx, *socket, engine.Call{Method: engine.MethodResetStatus}, func(r engine.Reply) bool {
			out.status(r.Status)
			return false
		})
	case *watch:
		err = engine.Dial(ctx, *socket, engine.Call{Method: engine.MethodWatch}, func(r engine.Reply) bool {
			out.status(r.Status)
			return true
		})
	case *showSlots:
		err = engine.Dial(ctx, *socket, engine.Call{Method: engine.MethodSlots}, func(r engine.Reply) bool {
			out.slots(r.Slots)
			return false
		})
	case *update:
		var final engine.Reply
		lastOp := ""
		err = engine.Dial(ctx, *socket, engine.Call{Method: engine.MethodUpdate, Force: *force}, func(r engine.Reply) bool {
			if r.Done {
				final = r
				return false
			}
			if s := r.Status; s != nil && (s.CurrentOperation != lastOp || s.Step != "") {
				lastOp = s.CurrentOperation
				fmt.Fprintf(stderr, "%s %s %.1f%%\n", s.CurrentOperation, s.Step, 100*s.Progress)
			}
			return true
		})
		if err == nil && !final.Done {
			err = fmt.Errorf("update_engine went away before the update finished")
		}
		if err == nil {
			if final.Error != "" {
				err = fmt.Errorf("update failed: %s", final.Error)
			} else if json {
				out.status(final.Status)
			} else {
				msg := map[string]string{"no-update": "No update available.", "updated": "Update applied: reboot to use it.",
					"already-updated": "An update is already applied: reboot to use it."}[final.Result]
				if s := final.Status; final.Result == "no-update" && s != nil && s.LastError != "" {
					// An offer the engine did not take (a version this machine rolled back from).
					msg = "No update applied: " + s.LastError
				}
				fmt.Fprintln(stdout, msg)
			}
		}
	default:
		fmt.Fprintln(stderr, "update_engine_client: say what to do: -status, -check_for_update, -update, -reset_status, -watch_for_updates or -slots")
		fs.PrintDefaults()
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "update_engine_client: %v\n", err)
		return 1
	}
	return 0
}

type printer struct {
	w    io.Writer
	json bool
}

func (p *printer) status(s *engine.Status) {
	if s == nil {
		return
	}
	if p.json {
		json.NewEncoder(p.w).Encode(s)
		return
	}
	fmt.Fprintf(p.w, "LAST_CHECKED_TIME=%d\nPROGRESS=%f\nCURRENT_OP=%s\nNEW_VERSION=%s\nNEW_SIZE=%d\n",
		s.LastCheckedTime, s.Progress, s.CurrentOperation, orDefault(s.NewVersion, "0.0.0.0"), s.NewSize)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func (p *printer) slots(st *slots.Status) {
	if st == nil {
		return
	}
	if p.json {
		json.NewEncoder(p.w).Encode(st)
		return
	}
	fmt.Fprintf(p.w, "%-5s %-7s %-6s %-8s %-5s %-12s %s\n", "SLOT", "ACTIVE", "NEXT", "STATE", "TRIES", "VERSION", "PARTITION")
	for _, s := range st.Slots {
		tries := "-"
		if s.State == slots.StateTrying || s.State == slots.StateBad {
			tries = fmt.Sprint(s.TriesLeft)
		}
		fmt.Fprintf(p.w, "%-5s %-7s %-6s %-8s %-5s %-12s %s\n", s.Slot, yes(s.Active), yes(s.NextBoot), s.State, tries,
			orDefault(s.Version, "-"), strings.TrimSpace(s.Partition))
	}
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
