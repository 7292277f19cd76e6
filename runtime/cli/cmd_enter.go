package cli

import (
	"errors"
	"fmt"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// defaultEnterCommand is what rkt enter runs when given no command: /bin/sh, which images
// have far more often than rkt's /bin/bash.
const defaultEnterCommand = "/bin/sh"

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
				p, err := podStore(env).Get(args[0])
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
					if appName, err = onlyApp(env, m, "enter"); err != nil {
						return err
					}
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
					cmd = []string{defaultEnterCommand}
					fmt.Fprintf(env.Stderr, "No command specified, assuming %q\n", defaultEnterCommand)
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

// onlyApp is the app a command (enter, export) means when no --app names one: the pod's only
// app. A pod of several apps gets them listed on stderr, as rkt lists them, and an error
// saying to choose.
func onlyApp(env *Env, m *schema.PodManifest, command string) (string, error) {
	switch len(m.Apps) {
	case 0:
		return "", errors.New("pod contains zero apps")
	case 1:
		return string(m.Apps[0].Name), nil
	}
	fmt.Fprintln(env.Stderr, "Pod contains multiple apps:")
	for _, ra := range m.Apps {
		fmt.Fprintf(env.Stderr, "\t%s\n", ra.Name)
	}
	return "", fmt.Errorf("unable to determine app name: specify app using \"rkt %s --app= ...\"", command)
}
