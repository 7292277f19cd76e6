package cli

import (
	"fmt"

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
					if err := stopPod(ps, ref, force); err != nil {
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

// stopPod asks a pod's supervisor (rkt run) to stop it; with force it kills every process of
// the pod directly, and the supervisor then sees its apps exit and tears the pod down.
func stopPod(ps *pod.Store, ref string, force bool) error {
	p, err := ps.Get(ref)
	if err != nil {
		return err
	}
	if st := p.State(); st != pod.Running {
		return fmt.Errorf("pod %s is %s, not running", p.UUID, st)
	}
	if force {
		return stage1.KillPod(p.Path(), unix.SIGKILL)
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
