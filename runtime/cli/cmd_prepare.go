package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/runtime/pod"
)

func init() {
	register(func(env *Env) *cobra.Command {
		var f podFlags
		c := &cobra.Command{
			Use:                "prepare [flags] IMAGE [app flags] [-- image-args] [--- IMAGE ...]",
			Short:              "Prepare a pod to run later with rkt run-prepared; prints its UUID",
			DisableFlagParsing: true,
		}
		c.RunE = func(c *cobra.Command, args []string) error {
			apps, err := parsePodArgs(c, env, &f, false, args)
			if err != nil {
				if errors.Is(err, errHelp) {
					return nil
				}
				return err
			}
			p, err := preparePod(env.Ctx, env, &f, apps)
			if err != nil {
				return err
			}
			if err := p.MarkPrepared(); err != nil {
				return err
			}
			fmt.Fprintln(env.Stdout, p.UUID)
			return nil
		}
		return c
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
				if err := p.MarkRunning(); err != nil {
					p.Close()
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
