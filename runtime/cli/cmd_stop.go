package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
)

func init() {
	register(func(env *Env) *cobra.Command {
		var force bool
		var uuidFile string
		c := &cobra.Command{
			Use:   "stop [--force] UUID...",
			Short: "Stop running pods: SIGTERM to the apps, SIGKILL after the pod's stop timeout (--force: at once)",
			RunE: func(_ *cobra.Command, args []string) error {
				return eachPod(env, uuidFile, args, func(ps *pod.Store, ref string) (string, error) {
					if err := stopPod(env.Ctx, ps, ref, force); err != nil {
						return "", err
					}
					if p, err := ps.Get(ref); err == nil {
						return p.UUID, nil
					}
					return ref, nil
				})
			},
		}
		c.Flags().BoolVar(&force, "force", false, "kill the apps with SIGKILL instead of stopping them")
		c.Flags().StringVar(&uuidFile, "uuid-file", "", "read the pod UUID from this file")
		return c
	})
}

// orphanStopTimeout is how long the apps of a pod without its supervisor get between
// SIGTERM and SIGKILL from rkt stop (rkt run's default --stop-timeout).
const orphanStopTimeout = 10 * time.Second

// stopPod asks a pod's supervisor (rkt run) to stop it; with force it kills every process of
// the pod directly, and the supervisor then sees its apps exit and tears the pod down. A pod
// whose rkt run was killed has no supervisor to ask: its processes get SIGTERM (SIGKILL with
// force) from rkt stop itself, which waits until they are gone and kills those left after
// orphanStopTimeout; rkt gc then takes the pod down.
func stopPod(ctx context.Context, ps *pod.Store, ref string, force bool) error {
	p, err := ps.Get(ref)
	if err != nil {
		return err
	}
	if st := p.State(); st != pod.Running {
		return fmt.Errorf("pod %s is %s, not running", p.UUID, st)
	}
	if p.Orphaned() {
		timeout := orphanStopTimeout
		if force {
			timeout = 0
		}
		if err := stage1.StopPod(ctx, p.Path(), timeout); err != nil {
			return fmt.Errorf("pod %s: %w", p.UUID, err)
		}
		return nil
	}
	if force {
		if err := stage1.KillPod(p.Path(), unix.SIGKILL); err != nil {
			return err
		}
		// A sandbox's supervisor lives on without apps: it is asked to end too.
		if opts, err := stage1.ReadOptions(p.Path()); err != nil || !opts.Sandbox {
			return nil
		}
	}
	pid, err := p.PID()
	if err != nil {
		return err
	}
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		return fmt.Errorf("pod %s: signal supervisor %d: %w", p.UUID, pid, err)
	}
	return nil
}
