package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/runtime/podapi"
	"github.com/cairn-os/cairn/runtime/stage0"
	"github.com/cairn-os/cairn/runtime/stage1"
)

func init() {
	register(func(env *Env) *cobra.Command {
		var app, mode string
		c := &cobra.Command{
			Use:   "attach [--app=NAME] [--mode=MODE] UUID",
			Short: "Attach to the stdio or tty of an app of a sandbox",
			Long: `Connects rkt attach's stdin, stdout and stderr to an app's (one added by rkt app add with
--stdin=stream or tty), from now on: what the app wrote before is in its log. --mode is auto
(everything the app has), list (print what it has), or endpoints among stdin, stdout, stderr,
tty, tty-in and tty-out. On a tty, a terminal's keys go to the app as typed (^C included) and
the app's window follows the terminal's size. rkt attach ends when the app's output does, or
on SIGINT or SIGTERM (when its own stdin is not the app's tty), leaving the app running.`,
			Args: cobra.ExactArgs(1),
			RunE: func(_ *cobra.Command, args []string) error {
				m, auto, list, err := stage0.ParseAttachMode(mode)
				if err != nil {
					return err
				}
				p, cl, err := stage0.Sandbox(podStore(env), args[0])
				if err != nil {
					return err
				}
				if app == "" {
					man, err := p.Manifest()
					if err != nil {
						return err
					}
					if app, err = onlyApp(env, man, "attach"); err != nil {
						return err
					}
				}
				rec, ok, err := p.AppRecord(app)
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("pod %s: app %q: %w", p.UUID, app, podapi.ErrNotFound)
				}
				stdin := podapi.StdinMode(rec.Stdin)
				if list {
					for _, e := range stage0.Endpoints(stdin) {
						fmt.Fprintln(env.Stdout, e)
					}
					return nil
				}
				if auto {
					m = stage0.ModeFor(stdin)
				}
				if err := m.Check(stdin); err != nil {
					return fmt.Errorf("pod %s: app %s: %w", p.UUID, app, err)
				}
				if err := stage0.Attach(env.Ctx, cl, app, m, env.Stdin, env.Stdout, env.Stderr, env.Log); err != nil {
					return &ExitError{Code: stage1.ExitFailure, Err: fmt.Errorf("pod %s: %w", p.UUID, err)}
				}
				return nil
			},
		}
		c.Flags().StringVar(&app, "app", "", "the app to attach to (default: the pod's only app)")
		c.Flags().StringVar(&mode, "mode", "auto", "what to attach to: auto, list, or stdin,stdout,stderr | tty | tty-in | tty-out")
		return c
	})
}
