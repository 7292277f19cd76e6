package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// gcReport writes what a gc pass did as rkt gc writes it: the pods moved and removed on
// stdout, the pods kept for their grace period on stderr.
func gcReport(env *Env, res pod.GCResult, grace time.Duration) {
	for _, id := range res.Marked {
		fmt.Fprintf(env.Stdout, "Moving pod %q to garbage\n", id)
	}
	for _, id := range res.Expired {
		fmt.Fprintf(env.Stdout, "Moving expired prepared pod %q to garbage\n", id)
	}
	for _, id := range res.Kept {
		fmt.Fprintf(env.Stderr, "pod %q not removed: still within grace period (%s)\n", id, grace)
	}
	for _, id := range res.Owned {
		fmt.Fprintf(env.Stderr, "pod %q not removed: its owner runs and removes it\n", id)
	}
	for _, id := range res.Removed {
		fmt.Fprintf(env.Stdout, "Garbage collecting pod %q\n", id)
	}
	for _, e := range res.Errors {
		env.Log.Warn("gc", "err", e)
	}
}

func init() {
	register(func(env *Env) *cobra.Command {
		var opts pod.GCOptions
		c := &cobra.Command{
			Use:   "gc [--grace-period=DURATION] [--expire-prepared=DURATION] [--mark-only]",
			Short: "Garbage collect rkt pods no longer in use",
			Long: `Meant to be run from a timer. Collection has two steps: one gc moves exited pods (and
pods whose rkt run was killed, after stopping their apps) to the garbage; a later gc removes
those that have been there longer than the grace period. Prepared pods that were never run
are removed once older than --expire-prepared. --grace-period=0s removes at once.`,
			Args: cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				opts.Clean = cleaner(env)
				res, err := podStore(env).GC(env.Ctx, opts)
				if err != nil {
					return err
				}
				gcReport(env, res, opts.GracePeriod)
				if len(res.Errors) > 0 {
					return &ExitError{Code: stage1.ExitFailure, Err: fmt.Errorf("%d pods could not be collected", len(res.Errors))}
				}
				return nil
			},
		}
		fl := c.Flags()
		fl.DurationVar(&opts.GracePeriod, "grace-period", 30*time.Minute, "duration to wait before discarding inactive pods from garbage")
		fl.DurationVar(&opts.ExpirePrepared, "expire-prepared", 24*time.Hour, "duration to wait before expiring prepared pods")
		fl.BoolVar(&opts.MarkOnly, "mark-only", false, "only move exited and aborted pods to the garbage, removing nothing")
		return c
	})
}
