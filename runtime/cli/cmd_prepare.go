package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/runtime/pod"
)

func init() {
	register(func(env *Env) *cobra.Command {
		return podCommand(env, "prepare [flags] IMAGE [app flags] [-- image-args [---]] [IMAGE ...]",
			"Prepare a pod to run later with rkt run-prepared; prints its UUID", false,
			func(p *pod.Pod, _ *podArgs) error {
				if err := p.MarkPrepared(); err != nil {
					return err
				}
				fmt.Fprintln(env.Stdout, p.UUID)
				return nil
			})
	})
	// run-prepared is prepare's second half: it lives here with it.
	register(func(env *Env) *cobra.Command {
		var stopTimeout time.Duration
		var interactive bool
		c := &cobra.Command{
			Use:   "run-prepared UUID",
			Short: "Run a prepared pod in the foreground",
			Args:  cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				ps := pod.NewStore(env.G.Dir)
				p, err := ps.LockPrepared(args[0])
				if err != nil {
					return err
				}
				return runPod(env.Ctx, env, p, stopTimeout)
			},
		}
		c.Flags().DurationVar(&stopTimeout, "stop-timeout", 10*time.Second, "time apps get between SIGTERM and SIGKILL when the pod is stopped")
		c.Flags().BoolVar(&interactive, "interactive", false, "accepted for compatibility; interactivity is fixed at prepare time")
		return c
	})
}
