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

// cleanPod is the pod package's cleaner: the stage1's gc entry point.
func cleanPod(ctx context.Context, p *pod.Pod) error { return stage1.Clean(ctx, p.Path()) }

func readUUIDFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--uuid-file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func init() {
	register(func(env *Env) *cobra.Command {
		var uuidFile string
		c := &cobra.Command{
			Use:   "rm UUID...",
			Short: "Remove pods that are not running",
			RunE: func(_ *cobra.Command, args []string) error {
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
				ps := pod.NewStore(env.G.Dir)
				var failed error
				for _, ref := range args {
					if err := ps.Remove(env.Ctx, ref, cleanPod); err != nil {
						fmt.Fprintf(env.Stderr, "rkt: %v\n", err)
						failed = &ExitError{Code: 254}
						continue
					}
					fmt.Fprintf(env.Stdout, "%q\n", ref)
				}
				return failed
			},
		}
		c.Flags().StringVar(&uuidFile, "uuid-file", "", "read the pod UUID from this file")
		return c
	})
}
