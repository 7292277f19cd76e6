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

	"github.com/cairn-os/cairn/update-engine/api"
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
	socket := fs.String("socket", api.DefaultSocket, "update_engine's socket")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	asJSON := *format == "json"
	out := &printer{w: stdout, json: asJSON}
	var err error
	switch {
	case *status:
		err = api.Dial(ctx, *socket, api.Call{Method: api.MethodGetStatus}, func(r api.Reply) bool {
			out.status(r.Status)
			return false
		})
	case *check:
		err = api.Dial(ctx, *socket, api.Call{Method: api.MethodAttemptUpdate}, func(r api.Reply) bool {
			if !asJSON {
				fmt.Fprintln(stderr, "Initiated update check.")
			}
			return false
		})
	case *reset:
		err = api.Dial(ctx, *socket, api.Call{Method: api.MethodResetStatus}, func(r api.Reply) bool {
			out.status(r.Status)
			return false
		})
	case *watch:
		err = api.Dial(ctx, *socket, api.Call{Method: api.MethodWatch}, func(r api.Reply) bool {
			out.status(r.Status)
			return out.err == nil
		})
	case *showSlots:
		err = api.Dial(ctx, *socket, api.Call{Method: api.MethodSlots}, func(r api.Reply) bool {
			out.slots(r.Slots)
			return false
		})
	case *update:
		var final api.Reply
		lastOp := ""
		err = api.Dial(ctx, *socket, api.Call{Method: api.MethodUpdate, Force: *force}, func(r api.Reply) bool {
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
			switch {
			case final.Error != "":
				err = fmt.Errorf("update failed: %s", final.Error)
			case asJSON:
				out.status(final.Status)
			default:
				out.printf("%s\n", updateMessage(final))
			}
		}
	default:
		fmt.Fprintln(stderr, "update_engine_client: say what to do: -status, -check_for_update, -update, -reset_status, -watch_for_updates or -slots")
		fs.PrintDefaults()
		return 2
	}
	if err == nil && out.err != nil {
		err = fmt.Errorf("writing the result to stdout: %w", out.err)
	}
	if err != nil {
		fmt.Fprintf(stderr, "update_engine_client: %v\n", err)
		return 1
	}
	return 0
}

// updateMessage says how an -update ended.
func updateMessage(final api.Reply) string {
	switch final.Result {
	case api.ResultNoUpdate.String():
		if s := final.Status; s != nil && s.LastError != "" {
			// An offer the engine did not take (a version this machine rolled back from).
			return "No update applied: " + s.LastError
		}
		return "No update available."
	case api.ResultUpdated.String():
		return "Update applied: reboot to use it."
	case api.ResultAlreadyUpdated.String():
		return "An update is already applied: reboot to use it."
	}
	return ""
}

// printer writes results. It keeps the first failed write in err and writes no more: the
// command then fails, for a result nobody could read is no result.
type printer struct {
	w    io.Writer
	json bool
	err  error
}

func (p *printer) printf(format string, a ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, a...)
	}
}

func (p *printer) encode(v any) {
	if p.err == nil {
		p.err = json.NewEncoder(p.w).Encode(v)
	}
}

func (p *printer) status(s *api.Status) {
	if s == nil {
		return
	}
	if p.json {
		p.encode(s)
		return
	}
	p.printf("LAST_CHECKED_TIME=%d\nPROGRESS=%f\nCURRENT_OP=%s\nNEW_VERSION=%s\nNEW_SIZE=%d\n",
		s.LastCheckedTime, s.Progress, s.CurrentOperation, orDefault(s.NewVersion, "0.0.0.0"), s.NewSize)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func (p *printer) slots(st *api.SlotList) {
	if st == nil {
		return
	}
	if p.json {
		p.encode(st)
		return
	}
	p.printf("%-5s %-7s %-6s %-8s %-5s %-12s %s\n", "SLOT", "ACTIVE", "NEXT", "STATE", "TRIES", "VERSION", "PARTITION")
	for _, s := range st.Slots {
		tries := "-"
		if s.State == api.SlotTrying || s.State == api.SlotBad {
			tries = fmt.Sprint(s.TriesLeft)
		}
		p.printf("%-5s %-7s %-6s %-8s %-5s %-12s %s\n", s.Slot, yes(s.Active), yes(s.NextBoot), s.State, tries,
			orDefault(s.Version, "-"), strings.TrimSpace(s.Partition))
	}
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
