package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/runtime/pod"
)

func init() {
	register(func(env *Env) *cobra.Command {
		var wait, waitReady bool
		var format string
		c := &cobra.Command{
			Use:   "status UUID",
			Short: "Show a pod's state and every app's exit status",
			Args:  cobra.ExactArgs(1),
			RunE: func(_ *cobra.Command, args []string) error {
				ps := pod.NewStore(env.G.Dir)
				p, err := ps.Get(args[0])
				if err != nil {
					return err
				}
				if waitReady {
					for p.State() == pod.Running && !p.Ready() || p.State() == pod.Preparing {
						select {
						case <-env.Ctx.Done():
							return env.Ctx.Err()
						case <-time.After(20 * time.Millisecond):
						}
						if err := p.Refresh(); err != nil {
							return err // removed while waiting (rkt rm, gc)
						}
					}
					if p.State() != pod.Running {
						return fmt.Errorf("pod %s: %s before it was ready", p.UUID, p.State())
					}
				}
				if wait && p.Phase == pod.PhaseRun {
					// A blocking shared lock returns when the supervisor exits.
					if err := p.Lock(false, true); err == nil {
						p.Close()
					}
				}
				pi := describePod(p)
				if format == "json" {
					return json.NewEncoder(env.Stdout).Encode(pi)
				}
				fmt.Fprintf(env.Stdout, "state=%s\n", pi.State)
				fmt.Fprintf(env.Stdout, "created=%s\n", fmtTime(pi.created, true))
				fmt.Fprintf(env.Stdout, "started=%s\n", fmtTime(pi.started, true))
				fmt.Fprintf(env.Stdout, "networks=%s\n", strings.Join(pi.Networks, ","))
				if pi.PID != 0 {
					fmt.Fprintf(env.Stdout, "pid=%d\n", pi.PID)
				}
				fmt.Fprintf(env.Stdout, "exited=%t\n", pi.State != pod.Running && pi.State != pod.Prepared && pi.State != pod.Preparing)
				for _, a := range pi.Apps {
					if a.ExitCode != nil {
						fmt.Fprintf(env.Stdout, "app-%s=%d\n", a.Name, *a.ExitCode)
					}
				}
				return nil
			},
		}
		c.Flags().BoolVar(&wait, "wait", false, "wait until the pod has exited")
		c.Flags().BoolVar(&waitReady, "wait-ready", false, "wait until every app of the pod has started")
		c.Flags().StringVar(&format, "format", "", "output format: json")
		return c
	})
}
