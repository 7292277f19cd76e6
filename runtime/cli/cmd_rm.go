package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// cleaner is the pod package's cleaner: the stage1's gc entry point, logging to env's logger
// (a teardown's warnings and what it skipped are the operator's to see).
func cleaner(env *Env) func(context.Context, *pod.Pod) error {
	return func(ctx context.Context, p *pod.Pod) error { return stage1.CleanWithLog(ctx, p.Path(), env.Log) }
}

// podStore is the pods directory, with stage1's look into a pod's cgroups, so that a pod
// whose rkt run was killed while its apps run on is seen running (orphaned), not exited.
func podStore(env *Env) *pod.Store {
	ps := pod.NewStore(env.G.Dir)
	ps.Alive = func(p *pod.Pod) bool { return stage1.PodAlive(p.Path()) }
	return ps
}

func readUUIDFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--uuid-file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// eachPod runs do for every pod named in args (and in --uuid-file), as rkt rm and rkt stop
// do: an error is reported and the others still handled, the exit status is
// stage1.ExitFailure if any failed, and each handled pod's name is printed quoted, as rkt did.
func eachPod(env *Env, uuidFile string, args []string, do func(ps *pod.Store, ref string) (string, error)) error {
	if uuidFile != "" {
		id, err := readUUIDFile(uuidFile)
		if err != nil {
			return err
		}
		args = append(args, id)
	}
	if len(args) == 0 {
		return errors.New("no pod UUID given")
	}
	ps := podStore(env)
	var failed error
	for _, ref := range args {
		name, err := do(ps, ref)
		if err != nil {
			fmt.Fprintf(env.Stderr, "rkt: %v\n", err)
			failed = &ExitError{Code: stage1.ExitFailure}
			continue
		}
		fmt.Fprintf(env.Stdout, "%q\n", name)
	}
	return failed
}

func init() {
	register(func(env *Env) *cobra.Command {
		var uuidFile string
		c := &cobra.Command{
			Use:   "rm UUID...",
			Short: "Remove pods that are not running",
			RunE: func(_ *cobra.Command, args []string) error {
				return eachPod(env, uuidFile, args, func(ps *pod.Store, ref string) (string, error) {
					// rkt printed the removed pod's full UUID, whatever prefix named it.
					p, err := ps.Get(ref)
					if err != nil {
						return "", err
					}
					return p.UUID, ps.Remove(env.Ctx, p.UUID, cleaner(env))
				})
			},
		}
		c.Flags().StringVar(&uuidFile, "uuid-file", "", "read the pod UUID from this file")
		return c
	})
}
