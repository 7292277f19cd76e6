package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cairn-os/cairn/runtime/podapi"
	"github.com/cairn-os/cairn/runtime/stage0"
)

// appAddArgs is rkt app add's command line: the pod, then one image with its app flags and
// arguments, read as rkt run reads an app's (podArgs).
type appAddArgs struct {
	podArgs
	extra stage0.AppConfig
}

// flagSet defines the app flags of rkt app add: rkt run's per-app flags, rkt's --mnt-volume,
// and Cairn's --stdin and --log-path. All of them follow the image.
func (a *appAddArgs) flagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet("app add", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	p := &a.podArgs
	appOnly := func(name, usage string, set func(*stage0.App, string) error) { p.appFlag(fs, name, usage, nil, set) }
	appOnly("name", "the app's name (default: from the image's name)", func(a *stage0.App, v string) error { a.Name = v; return nil })
	appOnly("exec", "command to run instead of the image's; arguments after -- are its arguments", func(a *stage0.App, v string) error { a.Exec = v; return nil })
	appOnly("user", "user to run as (name or UID)", func(a *stage0.App, v string) error { a.User = v; return nil })
	appOnly("group", "group to run as (name or GID)", func(a *stage0.App, v string) error { a.Group = v; return nil })
	appOnly("working-dir", "working directory", func(a *stage0.App, v string) error { a.WorkingDir = v; return nil })
	appOnly("environment", "environment variable of the app: NAME=VALUE", func(a *stage0.App, v string) error { a.Env = append(a.Env, v); return nil })
	appOnly("set-env", "environment variable of the app: NAME=VALUE", func(a *stage0.App, v string) error { a.Env = append(a.Env, v); return nil })
	appOnly("mount", "mount a pod volume: volume=NAME,target=PATH", func(a *stage0.App, v string) error {
		m, err := parseMountFlag(v)
		a.Mounts = append(a.Mounts, m)
		return err
	})
	appOnly("mnt-volume", "a volume of the app's own, mounted: name=NAME,kind=host|empty,source=PATH,readOnly=BOOL,target=PATH", func(ap *stage0.App, v string) error {
		vol, m, err := parseMntVolume(v)
		if err == nil {
			a.extra.Volumes = append(a.extra.Volumes, vol)
			ap.Mounts = append(ap.Mounts, m)
		}
		return err
	})
	appOnly("supplementary-gids", "supplementary group IDs of the app, comma-separated (replace the image's)", func(a *stage0.App, v string) error {
		gids, err := parseGIDs(v)
		a.SupplementaryGIDs = gids
		return err
	})
	appOnly("user-annotation", "annotation NAME=VALUE of the app", func(a *stage0.App, v string) error { return setKV("--user-annotation", &a.UserAnnotations, v) })
	appOnly("user-label", "label NAME=VALUE of the app", func(a *stage0.App, v string) error { return setKV("--user-label", &a.UserLabels, v) })
	appOnly("readonly-rootfs", "mount the app's root read-only", func(a *stage0.App, v string) error {
		b, err := parseBool("--readonly-rootfs", v)
		a.ReadOnlyRootFS = &b
		return err
	})
	ro := fs.Lookup("readonly-rootfs")
	ro.NoOptDefVal, ro.Value = "true", flagFunc{kind: "bool", set: ro.Value.Set}
	appOnly("memory", "memory limit (e.g. 64M)", func(a *stage0.App, v string) error { a.Memory = v; return nil })
	appOnly("cpu", "CPU limit in cores or millicores (e.g. 500m)", func(a *stage0.App, v string) error { a.CPU = v; return nil })
	appOnly("caps-retain", "capabilities to keep (replaces the default set)", func(a *stage0.App, v string) error { a.CapsRetain = splitList(v); return nil })
	appOnly("caps-remove", "capabilities to drop from the default set", func(a *stage0.App, v string) error { a.CapsRemove = splitList(v); return nil })
	appOnly("seccomp", "seccomp filter: mode=remove|retain[,errno=ENAME],SYSCALL|@SET,...", func(a *stage0.App, v string) (err error) {
		a.Seccomp, err = parseSeccompFlag(v)
		return err
	})
	appOnly("stdin", "the app's stdin: null (/dev/null), stream (a pipe rkt attach writes to) or tty (a terminal for stdin, stdout and stderr)", func(_ *stage0.App, v string) error {
		a.extra.Stdin = podapi.StdinMode(v)
		return nil
	})
	appOnly("log-path", "the app's log file, in the CRI's format (default <pod dir>/logs/<app>.log)", func(_ *stage0.App, v string) error {
		a.extra.LogPath = v
		return nil
	})
	fs.BoolVarP(&p.help, "help", "h", false, "help")
	return fs
}

// parseMntVolume parses rkt's --mnt-volume: a volume's parameters and the target it is
// mounted at, comma-separated (name=data,kind=host,source=/srv/data,target=/data).
func parseMntVolume(s string) (types.Volume, schema.Mount, error) {
	q, err := url.ParseQuery(strings.ReplaceAll(s, ",", "&"))
	if err != nil {
		return types.Volume{}, schema.Mount{}, fmt.Errorf("--mnt-volume %q: %w", s, err)
	}
	target := q["target"]
	if len(target) != 1 || !path.IsAbs(target[0]) {
		return types.Volume{}, schema.Mount{}, fmt.Errorf("--mnt-volume %q: want one target=/ABSOLUTE/PATH", s)
	}
	delete(q, "target")
	v, err := types.VolumeFromParams(q)
	if err != nil {
		return types.Volume{}, schema.Mount{}, fmt.Errorf("--mnt-volume %q: %w", s, err)
	}
	return *v, schema.Mount{Volume: v.Name, Path: target[0]}, nil
}

func appAddCommand(env *Env) *cobra.Command {
	c := &cobra.Command{
		Use:                "add UUID IMAGE [app flags] [-- image-args]",
		Short:              "Add an app to a sandbox, ready to start: its image from the store, its root, its container up to just before its exec",
		DisableFlagParsing: true,
	}
	c.RunE = func(c *cobra.Command, args []string) error {
		var a appAddArgs
		a.cur = -1
		fs := a.flagSet()
		fs.SetOutput(env.Stderr)
		fs.AddFlagSet(c.InheritedFlags())
		// Global flags may come before the pod; app flags follow the image.
		if err := fs.Parse(args); err != nil {
			return err
		}
		if env.G.Debug { // --debug came through this parser, after the logger was made
			env.Log = slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
		if a.help {
			fmt.Fprintf(env.Stdout, "Usage: rkt app %s\n\nApp flags:\n%s", c.Use, fs.FlagUsages())
			return nil
		}
		rest := fs.Args()
		if len(rest) < 2 {
			return errors.New("want the pod's UUID and an image: rkt app add UUID IMAGE [app flags] [-- image-args]")
		}
		uuid := rest[0]
		if err := a.parse(fs, rest[1:]); err != nil {
			return err
		}
		if len(a.cfg.Apps) != 1 {
			return fmt.Errorf("rkt app add adds one app, not %d", len(a.cfg.Apps))
		}
		a.extra.App = a.cfg.Apps[0]
		// As rkt's: the image comes from the store (rkt fetch it first).
		h, err := host(env, "never")
		if err != nil {
			return err
		}
		_, err = h.AddApp(env.Ctx, uuid, &a.extra)
		return err
	}
	return c
}
