package cli

import (
	"fmt"

	"github.com/appc/spec/schema/types"
	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
)

func init() {
	register(func(env *Env) *cobra.Command {
		var appName, tty string
		c := &cobra.Command{
			Use:   "enter [--app=NAME] UUID [CMD [ARGS...]]",
			Short: "Run a command in a running app of a pod (default /bin/sh)",
			Args:  cobra.MinimumNArgs(1),
			RunE: func(_ *cobra.Command, args []string) error {
				var useTTY bool
				switch tty {
				case "auto":
					// Like a login: a pty when rkt enter runs on a terminal; plain streams for
					// scripts, pipes and redirected output (a pty would turn \n into \r\n).
					useTTY = stage1.IsTerminal(env.Stdin) && stage1.IsTerminal(env.Stdout)
				case "true":
					useTTY = true
				case "false":
				default:
					return fmt.Errorf("--tty=%s: want auto, true or false", tty)
				}
				p, err := pod.NewStore(env.G.Dir).Get(args[0])
				if err != nil {
					return err
				}
				if st := p.State(); st != pod.Running {
					return fmt.Errorf("pod %s is %s, not running", p.UUID, st)
				}
				m, err := p.Manifest()
				if err != nil {
					return err
				}
				if appName == "" {
					if len(m.Apps) != 1 {
						return fmt.Errorf("pod %s has %d apps: choose one with --app", p.UUID, len(m.Apps))
					}
					appName = string(m.Apps[0].Name)
				}
				ra := m.Apps.Get(types.ACName(appName))
				if ra == nil {
					return fmt.Errorf("pod %s has no app %q", p.UUID, appName)
				}
				var appEnv []string
				if ra.App != nil {
					for _, ev := range ra.App.Environment {
						appEnv = append(appEnv, ev.Name+"="+ev.Value)
					}
				}
				cmd := args[1:]
				if len(cmd) == 0 {
					cmd = []string{"/bin/sh"}
				}
				code, err := stage1.Enter(env.Ctx, p.Path(), appName, stage1.EnterCommand{
					Args: cmd, Env: appEnv, TTY: useTTY,
					Stdin: env.Stdin, Stdout: env.Stdout, Stderr: env.Stderr,
				})
				if err != nil {
					return &ExitError{Code: stage1.ExitFailure, Err: err}
				}
				if code != 0 {
					return &ExitError{Code: code}
				}
				return nil
			},
		}
		c.Flags().SetInterspersed(false)
		c.Flags().StringVar(&appName, "app", "", "name of the app to enter")
		c.Flags().StringVar(&tty, "tty", "auto", "run the command on a new pty: auto (when stdin and stdout are terminals), true or false")
		c.Flags().Lookup("tty").NoOptDefVal = "true"
		return c
	})
}
