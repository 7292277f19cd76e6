package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
)

func init() {
	register(func(env *Env) *cobra.Command {
		var grace time.Duration
		c := &cobra.Command{
			Use:   "gc [--grace-period=DURATION]",
			Short: "Mark exited pods as garbage and remove garbage older than the grace period",
			Args:  cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				res, err := pod.NewStore(env.G.Dir).GC(env.Ctx, grace, cleanPod)
				if err != nil {
					return err
				}
				for _, id := range res.Marked {
					fmt.Fprintf(env.Stdout, "Moving pod %q to garbage\n", id)
				}
				for _, id := range res.Removed {
					fmt.Fprintf(env.Stdout, "Garbage collecting pod %q\n", id)
				}
				for _, e := range res.Errors {
					env.Log.Warn("gc", "err", e)
				}
				if len(res.Errors) > 0 {
					return &ExitError{Code: stage1.ExitFailure, Err: fmt.Errorf("%d pods could not be collected", len(res.Errors))}
				}
				return nil
			},
		}
		c.Flags().DurationVar(&grace, "grace-period", 30*time.Minute, "time an exited pod is kept before it is removed")
		return c
	})
}
