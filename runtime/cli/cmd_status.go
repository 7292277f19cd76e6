package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/runtime/pod"
)

// parseWait reads a --wait or --wait-ready value as rkt does: true (or no value) waits as
// long as it takes (a negative result), false does not wait (zero), and a duration waits up
// to that long; a negative duration waits as long as it takes.
func parseWait(s string) (time.Duration, error) {
	if s == "" {
		return -1, nil
	}
	if b, err := strconv.ParseBool(s); err == nil {
		if b {
			return -1, nil
		}
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither true, false nor a duration (10s, 2m)", s)
	}
	return d, nil
}

// finished reports whether a pod in state s will not run (again): waiting for it to finish
// is over. A prepared pod is not finished, as rkt has it: it may yet be run.
func finished(s pod.State) bool {
	switch s {
	case pod.Embryo, pod.Preparing, pod.Prepared, pod.Running:
		return false
	}
	return true
}

// pollPod calls done on p every 20 ms until it returns true, p is removed, or d (when
// positive) has passed; what names what is waited for in the timeout's error.
func pollPod(ctx context.Context, p *pod.Pod, d time.Duration, what string, done func(pod.State) bool) error {
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	for !done(p.State()) {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("pod %s: not %s after %s (it is %s)", p.UUID, what, d, p.State())
			}
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if err := p.Refresh(); err != nil {
			return err // removed while waiting (rkt rm, gc)
		}
	}
	return nil
}

// writeStatus writes rkt status's key=value lines, as rkt prints them: created, started,
// networks, pid and exited only where rkt shows them, and the apps' exit statuses once the
// pod no longer runs.
func writeStatus(w io.Writer, pi *podInfo, loc *time.Location) {
	fmt.Fprintf(w, "state=%s\n", pi.State)
	if !pi.Created.IsZero() {
		fmt.Fprintf(w, "created=%s\n", pi.Created.In(loc).Format(rktTimeLayout))
	}
	if !pi.Started.IsZero() {
		fmt.Fprintf(w, "started=%s\n", pi.Started.In(loc).Format(rktTimeLayout))
	}
	switch pi.State {
	case pod.Running, pod.Exited:
		fmt.Fprintf(w, "networks=%s\n", fmtNets(pi.Nets))
	}
	switch pi.State {
	case pod.Running, pod.Deleting, pod.Exited, pod.ExitedGarbage:
	default:
		return
	}
	if pi.PID > 0 {
		fmt.Fprintf(w, "pid=%d\n", pi.PID)
	}
	fmt.Fprintf(w, "exited=%t\n", pi.State == pod.Exited || pi.State == pod.ExitedGarbage)
	if pi.State == pod.Running {
		return
	}
	for _, a := range pi.Apps {
		if a.Exit != nil {
			fmt.Fprintf(w, "app-%s=%d\n", a.Name, a.Exit.ExitCode)
		}
	}
}

func init() {
	register(func(env *Env) *cobra.Command {
		var wait, waitReady, format, uuidFile string
		c := &cobra.Command{
			Use:   "status [--wait=bool|timeout] [--wait-ready=bool|timeout] --uuid-file=FILE | UUID",
			Short: "Show a pod's state, pid and every app's exit status",
			Long: `Prints the pod's state, its times, networks and pid, and the exit status of each app.

--wait and --wait-ready take a boolean or a duration: true waits as long as it takes, false
not at all, and a duration (--wait=10s) at most that long.`,
			RunE: func(_ *cobra.Command, args []string) error {
				ref, err := podRef(args, uuidFile)
				if err != nil {
					return err
				}
				dWait, err := parseWait(wait)
				if err != nil {
					return fmt.Errorf("--wait: %w", err)
				}
				dReady, err := parseWait(waitReady)
				if err != nil {
					return fmt.Errorf("--wait-ready: %w", err)
				}
				if err := checkFormat(format); err != nil {
					return err
				}
				p, err := podStore(env).Get(ref)
				if err != nil {
					return err
				}
				if dReady != 0 {
					ready := func(s pod.State) bool { return s == pod.Running && p.Ready() || finished(s) }
					if err := pollPod(env.Ctx, p, dReady, "ready", ready); err != nil {
						return err
					}
					if st := p.State(); st != pod.Running {
						return fmt.Errorf("pod %s: %s before it was ready", p.UUID, st)
					}
				}
				if dWait != 0 {
					if err := pollPod(env.Ctx, p, dWait, "finished", finished); err != nil {
						return err
					}
				}
				pi := readPod(p)
				if format != "" {
					return writeJSON(env.Stdout, pi.json(), format == "json-pretty")
				}
				writeStatus(env.Stdout, &pi, time.Local)
				return nil
			},
		}
		fl := c.Flags()
		fl.StringVar(&wait, "wait", "false", "wait for the pod to finish: true, false or the longest time to wait (10s)")
		fl.StringVar(&waitReady, "wait-ready", "false", "wait until every app of the pod has started: true, false or the longest time to wait")
		fl.Lookup("wait").NoOptDefVal = "true"
		fl.Lookup("wait-ready").NoOptDefVal = "true"
		fl.StringVar(&format, "format", "", "choose the output format: json, json-pretty")
		fl.StringVar(&uuidFile, "uuid-file", "", "read the pod UUID from this file instead of an argument")
		return c
	})
}

// podRef is the one pod a command names, by argument or by --uuid-file (not both).
func podRef(args []string, uuidFile string) (string, error) {
	switch {
	case len(args) == 1 && uuidFile == "":
		return args[0], nil
	case len(args) == 0 && uuidFile != "":
		return readUUIDFile(uuidFile)
	case len(args) == 0:
		return "", errors.New("no pod UUID given (pass one, or --uuid-file)")
	}
	return "", errors.New("give one pod UUID, or --uuid-file, not both")
}
