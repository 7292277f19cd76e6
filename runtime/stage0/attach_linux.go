package stage0

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/cairn-os/cairn/runtime/podapi"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// Attach connects the caller's stdin, stdout and stderr to a sandbox app's (rkt attach), as
// m says, until the app's output ends or ctx is done (the caller detaches; the app goes
// on). On a tty, a terminal stdin is put in raw mode meanwhile and the app's pty follows the
// terminal's window size.
func Attach(ctx context.Context, c *podapi.Client, app string, m AttachMode, stdin io.Reader, stdout, stderr io.Writer, log *slog.Logger) (err error) {
	tty := m.TTYIn || m.TTYOut
	o := podapi.AttachOptions{Stdin: m.Stdin || m.TTYIn, Stdout: m.Stdout || m.TTYOut, Stderr: m.Stderr}
	att, err := c.Attach(ctx, app, o)
	if err != nil {
		return fmt.Errorf("app %s: attach: %w", app, err)
	}
	defer att.Close()
	if att.TTY != tty {
		return fmt.Errorf("app %s: attach: tty %v asked for, the app's is %v", app, tty, att.TTY)
	}
	if tty {
		if t := stage1.OpenTerminal(stdin, stdout); t != nil {
			if m.TTYIn {
				if err := t.MakeRaw(); err != nil {
					return err
				}
				defer func() {
					if rerr := t.Restore(); rerr != nil {
						err = errors.Join(err, rerr)
					}
				}()
			}
			stop := t.WatchSize(func(rows, cols uint16) {
				if err := c.Resize(ctx, app, rows, cols); err != nil {
					log.Debug("resize", "app", app, "err", err)
				}
			})
			defer stop()
		}
	}
	if o.Stdin && stdin != nil {
		go func() {
			// Ends with the attachment (its writes fail) or with stdin; then the app's
			// output still comes until it ends.
			_, _ = io.Copy(att, stdin)
			_ = att.CloseInput()
		}()
	}
	out := stdout
	if tty && !m.TTYOut {
		out = io.Discard
	}
	done := make(chan error, 1)
	go func() { done <- att.Output(out, stderr) }()
	select {
	case err = <-done:
		return err
	case <-ctx.Done():
		return nil
	}
}
