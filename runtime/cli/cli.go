// Package cli is the rkt command line: flag parsing and output only. Each subcommand lives
// in its own file (cmd_*.go) and registers itself; the work is done by the runtime packages.
// What needs the network or OpenPGP is a Remote (package cli/remote), which the binary gives
// to Run, or not.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cairn-os/cairn/runtime/fetch/pull"
	"github.com/cairn-os/cairn/runtime/image"
	"github.com/cairn-os/cairn/runtime/stage1"
	"github.com/cairn-os/cairn/runtime/store"
)

// Globals are rkt's global flags, shared by every subcommand.
type Globals struct {
	Dir                string // --dir: the data directory (image store, pods)
	LocalConfig        string // --local-config: the administrator's config (/etc/rkt)
	SystemConfig       string // --system-config: the vendor's config (/usr/lib/rkt)
	UserConfig         string // --user-config: a user's config, highest precedence
	InsecureOptions    string // --insecure-options: comma-separated checks to skip
	TrustKeysFromHTTPS bool   // --trust-keys-from-https: trust keys found by discovery over HTTPS
	Debug              bool   // --debug: log debug output to stderr
}

// Env is what a subcommand gets: streams, the global flags and a logger.
type Env struct {
	Ctx    context.Context
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	G      Globals
	Log    *slog.Logger

	// pending is the work that goes on beside a command, waited for before Run returns.
	pending sync.WaitGroup
	// remote fetches what the store lacks; nil in the lean rkt.
	remote Remote
}

// background runs f beside the command: work whose result the command does not need but that
// must be done before rkt exits.
func (e *Env) background(f func()) { e.pending.Go(f) }

// ExitError carries a process exit status out of a subcommand (rkt run returns the app's).
// An ExitError with a nil Err prints nothing.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

var commands []func(*Env) *cobra.Command

// register adds a subcommand; called from the init of each cmd_*.go file.
func register(f func(*Env) *cobra.Command) { commands = append(commands, f) }

// stage1ImageFlags are rkt's flags that chose a stage1 image (for run, prepare and app
// sandbox). They are refused with the reason rather than as unknown flags.
var stage1ImageFlags = []string{"stage1-url", "stage1-path", "stage1-name", "stage1-hash", "stage1-from-dir"}

// refuseStage1Image fails when flags set one of stage1ImageFlags.
func refuseStage1Image(flags *pflag.FlagSet) error {
	for _, n := range stage1ImageFlags {
		if f := flags.Lookup(n); f != nil && f.Changed {
			return fmt.Errorf("--%s: Cairn's stage1 is built in (libcontainer, in the rkt binary): there is no stage1 image to choose", n)
		}
	}
	return nil
}

// Remote is the part of rkt that needs the network or OpenPGP: the commands fetch, trust and
// config, and fetching the images that run and prepare do not find in the store (package
// remote). Its registry clients, OpenPGP and appc discovery are most of what the Go
// runtime initialises when rkt starts, and rkt starts twice for every app (the command, then
// libcontainer's init, which is the same binary executed again), so the rkt that starts pods
// is built without it and executes the full binary in its place for what needs it.
type Remote interface {
	// Commands are the commands named in remoteCommands, complete.
	Commands(env *Env) []*cobra.Command
	// Fetch brings ref into st by policy and returns it.
	Fetch(ctx context.Context, env *Env, st *store.Store, policy pull.Policy, ref string) (*image.Image, error)
}

// Options are what the binary that runs the command line gives it.
type Options struct {
	// Remote makes the binary the full rkt.
	Remote Remote
	// Full is the full rkt binary, executed with the same arguments in place of this one
	// when a command needs a Remote and there is none: a path, or a name in this binary's
	// directory.
	Full string
}

// remoteCommands are the commands that only a Remote has: their use lines and summaries,
// which rkt's help lists with or without one.
var remoteCommands = []struct{ use, short string }{
	{"fetch IMAGE...", "Fetch image(s) and store them in the local store"},
	{"trust [--prefix=PREFIX] [--root] [PUBKEY...]", "Trust a key for image verification"},
	{"config", "Print configuration for each stage in JSON format"},
}

// RemoteCommand is a new command named name, one of remoteCommands, with its use line and
// summary, for a Remote to complete.
func RemoteCommand(name string) *cobra.Command {
	for _, c := range remoteCommands {
		if n, _, _ := strings.Cut(c.use, " "); n == name {
			return &cobra.Command{Use: c.use, Short: c.short}
		}
	}
	panic("cli: no remote command " + name)
}

// errRemote is returned by a command that needs a Remote where there is none.
var errRemote = errors.New("needs fetching or key trust, which this rkt binary lacks")

// needRemote is the error of what needs a Remote where there is none.
func needRemote(what string) error { return fmt.Errorf("%s: %w", what, errRemote) }

// Run executes rkt with args (without the program name) and returns its exit status. What
// needs a Remote, without one, executes opts.Full with args in its place.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, opts Options) int {
	env := &Env{Ctx: ctx, Stdin: stdin, Stdout: stdout, Stderr: stderr, remote: opts.Remote}
	root := &cobra.Command{
		Use:           "rkt",
		Short:         "rkt, the pod-native container engine of Cairn",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		level := slog.LevelInfo
		if env.G.Debug {
			level = slog.LevelDebug
		}
		env.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
		return refuseStage1Image(pf)
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf.StringVar(&env.G.Dir, "dir", envOr("RKT_DIR", "/var/lib/rkt"), "rkt data directory")
	pf.StringVar(&env.G.LocalConfig, "local-config", "/etc/rkt", "local configuration directory")
	pf.StringVar(&env.G.SystemConfig, "system-config", "/usr/lib/rkt", "system configuration directory")
	pf.StringVar(&env.G.UserConfig, "user-config", "", "user configuration directory")
	pf.StringVar(&env.G.InsecureOptions, "insecure-options", "none",
		"comma-separated list of security features to disable: none,image,tls,ondisk,http,pubkey,capabilities,paths,seccomp,all-fetch,all-run,all")
	pf.BoolVar(&env.G.TrustKeysFromHTTPS, "trust-keys-from-https", false, "automatically trust gpg keys fetched from https")
	pf.BoolVar(&env.G.Debug, "debug", false, "print out more debug information to stderr")
	for _, n := range stage1ImageFlags {
		pf.String(n, "", "rkt's stage1 image flag: refused, Cairn's stage1 is built in")
		// MarkHidden fails only for a flag that is not defined; this one is, just above.
		_ = pf.MarkHidden(n)
	}
	for _, f := range commands {
		root.AddCommand(f(env))
	}
	// helpErr is why `rkt help CMD` of a Remote's command could not be shown.
	var helpErr error
	if opts.Remote != nil {
		// Not for the apps of the pods this rkt starts.
		_ = os.Unsetenv(fullExecEnv) // fails only for a name with "=" or NUL
		root.AddCommand(opts.Remote.Commands(env)...)
	} else {
		for _, c := range remoteCommands {
			name, _, _ := strings.Cut(c.use, " ")
			stub := RemoteCommand(name)
			stub.DisableFlagParsing = true // the full binary parses them, --help included
			stub.RunE = func(*cobra.Command, []string) error { return needRemote("rkt " + name) }
			stub.SetHelpFunc(func(*cobra.Command, []string) {
				helpErr = execFull(ctx, opts.Full, args, needRemote("rkt help "+name))
			})
			root.AddCommand(stub)
		}
	}
	env.Log = slog.New(slog.NewTextHandler(stderr, nil))

	err := root.ExecuteContext(ctx)
	env.pending.Wait()
	if errors.Is(err, errRemote) {
		err = execFull(ctx, opts.Full, args, err)
	}
	if err == nil {
		err = helpErr
	}
	if err == nil {
		return 0
	}
	if ee, ok := errors.AsType[*ExitError](err); ok {
		if ee.Err != nil {
			fmt.Fprintf(stderr, "rkt: %v\n", ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintf(stderr, "rkt: %v\n", err)
	return stage1.ExitFailure
}

// fullExecEnv is set, to the full binary's path, in the environment of the full binary that a
// rkt without a Remote executes: one that finds it set has been executed as the full binary and
// is not, and says so rather than executing it again, forever.
const fullExecEnv = "_CAIRN_RKT_FULL"

// execFull executes the full rkt binary with args in place of this process, for what needs a
// Remote (err says what); it returns only if it could not, or should not: after a stop signal
// (ctx done) the command is not carried on.
func execFull(ctx context.Context, full string, args []string, err error) error {
	if full == "" {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w; stopped before executing %s, the rkt binary that has them", err, full)
	}
	if prev := os.Getenv(fullExecEnv); prev != "" {
		return fmt.Errorf("%w; and %s, executed as the rkt binary that has them, lacks them too", err, prev)
	}
	if !filepath.IsAbs(full) {
		self, xerr := os.Executable()
		if xerr != nil {
			return fmt.Errorf("%w; finding %s beside this binary: %w", err, full, xerr)
		}
		full = filepath.Join(filepath.Dir(self), full)
	}
	if xerr := syscall.Exec(full, append([]string{"rkt"}, args...), append(os.Environ(), fullExecEnv+"="+full)); xerr != nil {
		return fmt.Errorf("%w; executing %s, the rkt binary that has them: %w", err, full, xerr)
	}
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
