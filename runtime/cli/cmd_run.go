package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cairn-os/cairn/runtime/fetch"
	"github.com/cairn-os/cairn/runtime/fetch/insecure"
	"github.com/cairn-os/cairn/runtime/image"
	"github.com/cairn-os/cairn/runtime/network"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage0"
	"github.com/cairn-os/cairn/runtime/stage1"
	"github.com/cairn-os/cairn/runtime/store"
)

// podFlags are rkt run's and rkt prepare's pod-level flags.
type podFlags struct {
	volumes      []string
	net          []string
	ports        []string
	hostname     string
	dns          []string
	dnsSearch    []string
	dnsOpt       []string
	dnsDomain    string
	hostsEntries []string
	interactive  bool
	uuidFileSave string
	noOverlay    bool
	privateUsers bool
	setEnv       []string
	stopTimeout  time.Duration
	pullPolicy   string
	// pod-wide defaults of the per-app isolator flags
	memory, cpu, capsRetain, capsRemove, seccomp string
}

func (f *podFlags) define(fs *pflag.FlagSet, withRun bool) {
	fs.StringArrayVar(&f.volumes, "volume", nil, "volumes to make available in the pod: NAME,kind=host|empty,source=PATH,readOnly=true|false")
	fs.StringArrayVar(&f.net, "net", nil, `networks to join: default, default-restricted, host, none, all, or names from net.d, with per-network arguments (NAME:IP=10.1.1.7) (default "default")`)
	fs.StringArrayVar(&f.ports, "port", nil, "forward a host port to a port the image declares: NAME:[HOSTIP:]HOSTPORT")
	fs.StringVar(&f.hostname, "hostname", "", `pod's hostname (default "rkt-$UUID")`)
	fs.StringArrayVar(&f.dns, "dns", nil, "name servers for the pod: host, none or addresses")
	fs.StringArrayVar(&f.dnsSearch, "dns-search", nil, "DNS search domains")
	fs.StringArrayVar(&f.dnsOpt, "dns-opt", nil, "DNS resolver options (resolv.conf options)")
	fs.StringVar(&f.dnsDomain, "dns-domain", "", "DNS domain (resolv.conf domain)")
	fs.StringArrayVar(&f.hostsEntries, "hosts-entry", nil, "entries for the pod's /etc/hosts: IP=HOSTNAME, or host for the host's /etc/hosts")
	fs.BoolVar(&f.noOverlay, "no-overlay", false, "copy image trees instead of using overlayfs")
	fs.BoolVar(&f.privateUsers, "private-users", false, "run the pod in a user namespace: its IDs 0-65535 are a random range of unprivileged host IDs")
	fs.StringArrayVar(&f.setEnv, "set-env", nil, "environment variable for all apps: NAME=VALUE")
	fs.StringVar(&f.uuidFileSave, "uuid-file-save", "", "write the pod UUID to this file")
	fs.StringVar(&f.pullPolicy, "pull-policy", "new", "when to fetch images: never (store only) or new (fetch those not in the store)")
	fs.StringVar(&f.memory, "memory", "", "memory limit of each app (e.g. 64M)")
	fs.StringVar(&f.cpu, "cpu", "", "CPU limit of each app in cores or millicores (e.g. 500m)")
	fs.StringVar(&f.capsRetain, "caps-retain", "", "capabilities to keep (replaces the default set)")
	fs.StringVar(&f.capsRemove, "caps-remove", "", "capabilities to drop from the default set")
	fs.StringVar(&f.seccomp, "seccomp", "", "seccomp filter: mode=remove|retain[,errno=ENAME],SYSCALL|@SET,...")
	if withRun {
		fs.BoolVar(&f.interactive, "interactive", false, "run the (single) app on a terminal with stdin attached")
		fs.DurationVar(&f.stopTimeout, "stop-timeout", 10*time.Second, "time apps get between SIGTERM and SIGKILL when the pod is stopped")
	}
}

// appFlags are one IMAGE's flags, as given.
type appFlags struct {
	image                                        string
	name, exec, user, group, workingDir          string
	env, mounts                                  []string
	memory, cpu, capsRetain, capsRemove, seccomp string
	args                                         []string
}

func appFlagSet(o *appFlags) *pflag.FlagSet {
	fs := pflag.NewFlagSet("app", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.StringVar(&o.name, "name", "", "app name")
	fs.StringVar(&o.exec, "exec", "", "command to run instead of the image's")
	fs.StringVar(&o.user, "user", "", "user to run as (name or UID)")
	fs.StringVar(&o.group, "group", "", "group to run as (name or GID)")
	fs.StringVar(&o.workingDir, "working-dir", "", "working directory")
	fs.StringArrayVar(&o.env, "set-env", nil, "environment variable NAME=VALUE")
	fs.StringArrayVar(&o.env, "environment", nil, "environment variable NAME=VALUE")
	fs.StringArrayVar(&o.mounts, "mount", nil, "mount a pod volume: volume=NAME,target=PATH")
	fs.StringVar(&o.memory, "memory", "", "memory limit")
	fs.StringVar(&o.cpu, "cpu", "", "CPU limit")
	fs.StringVar(&o.capsRetain, "caps-retain", "", "capabilities to keep")
	fs.StringVar(&o.capsRemove, "caps-remove", "", "capabilities to drop")
	fs.StringVar(&o.seccomp, "seccomp", "", "seccomp filter")
	return fs
}

// parseApps splits rkt's "IMAGE [app flags] [-- args] [--- IMAGE ...]" form.
func parseApps(args []string) ([]appFlags, error) {
	var apps []appFlags
	for len(args) > 0 {
		seg := args
		if i := slices.Index(args, "---"); i >= 0 {
			seg, args = args[:i], args[i+1:]
		} else {
			args = nil
		}
		if len(seg) == 0 {
			return nil, errors.New("empty app between --- separators")
		}
		a := appFlags{image: seg[0]}
		if strings.HasPrefix(a.image, "-") {
			return nil, fmt.Errorf("expected an image, got flag %q", a.image)
		}
		rest := seg[1:]
		var imgArgs []string
		if i := slices.Index(rest, "--"); i >= 0 {
			rest, imgArgs = rest[:i], rest[i+1:]
		}
		fs := appFlagSet(&a)
		if err := fs.Parse(rest); err != nil {
			return nil, fmt.Errorf("image %s: %w", a.image, err)
		}
		if fs.NArg() > 0 {
			return nil, fmt.Errorf("image %s: unexpected %q (image arguments go after --)", a.image, fs.Args())
		}
		a.args = imgArgs
		apps = append(apps, a)
	}
	if len(apps) == 0 {
		return nil, errors.New("no image given")
	}
	return apps, nil
}

// app turns one IMAGE's flags into a stage0 app.
func (f *appFlags) app() (stage0.App, error) {
	a := stage0.App{Image: f.image, Name: f.name, Exec: f.exec, Args: f.args, User: f.user, Group: f.group,
		WorkingDir: f.workingDir, Env: f.env, Memory: f.memory, CPU: f.cpu,
		CapsRetain: splitList(f.capsRetain), CapsRemove: splitList(f.capsRemove)}
	for _, m := range f.mounts {
		sm, err := parseMountFlag(m)
		if err != nil {
			return a, fmt.Errorf("image %s: %w", f.image, err)
		}
		a.Mounts = append(a.Mounts, sm)
	}
	if f.seccomp != "" {
		sc, err := parseSeccompFlag(f.seccomp)
		if err != nil {
			return a, fmt.Errorf("image %s: %w", f.image, err)
		}
		a.Seccomp = sc
	}
	return a, nil
}

// config turns rkt run's and prepare's flags into the pod to prepare.
func (f *podFlags) config(env *Env, apps []appFlags) (*stage0.Config, error) {
	ins, err := insecure.Parse(env.G.InsecureOptions)
	if err != nil {
		return nil, err
	}
	cfg := &stage0.Config{
		Network: stage0.Network{Net: f.net, Hostname: f.hostname, DNS: f.dns, DNSSearch: f.dnsSearch, DNSOpt: f.dnsOpt,
			DNSDomain: f.dnsDomain, HostsEntries: f.hostsEntries},
		Ports: f.ports, Env: f.setEnv, Memory: f.memory, CPU: f.cpu,
		CapsRetain: splitList(f.capsRetain), CapsRemove: splitList(f.capsRemove),
		Interactive: f.interactive, NoOverlay: f.noOverlay, PrivateUsers: f.privateUsers,
		InsecureSeccomp: ins.Has(insecure.Seccomp), UUIDFileSave: f.uuidFileSave,
	}
	if f.seccomp != "" {
		if cfg.Seccomp, err = parseSeccompFlag(f.seccomp); err != nil {
			return nil, err
		}
	}
	for _, v := range f.volumes {
		vol, err := parseVolumeFlag(v)
		if err != nil {
			return nil, err
		}
		cfg.Volumes = append(cfg.Volumes, vol)
	}
	for i := range apps {
		a, err := apps[i].app()
		if err != nil {
			return nil, err
		}
		cfg.Apps = append(cfg.Apps, a)
	}
	return cfg, nil
}

// parsePodArgs parses rkt run/prepare's command line: global flags and pod flags, then apps.
func parsePodArgs(c *cobra.Command, env *Env, f *podFlags, withRun bool, args []string) ([]appFlags, error) {
	fs := pflag.NewFlagSet(c.Name(), pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.SetOutput(env.Stderr)
	f.define(fs, withRun)
	fs.AddFlagSet(c.InheritedFlags())
	help := new(bool)
	if fs.Lookup("help") == nil {
		fs.BoolVarP(help, "help", "h", false, "help")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if env.G.Debug { // --debug came through this parser, after the logger was made
		env.Log = slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if *help {
		fmt.Fprintf(env.Stdout, "Usage: rkt %s [flags] IMAGE [app flags] [-- image-args] [--- IMAGE ...]\n\nFlags:\n%s", c.Name(), fs.FlagUsages())
		return nil, errHelp
	}
	return parseApps(fs.Args())
}

var errHelp = errors.New("help shown")

// host is stage0's view of this rkt: its pods, its store and fetcher, its network configs.
func host(env *Env, pullPolicy string) (*stage0.Host, error) {
	if pullPolicy != "new" && pullPolicy != "never" {
		return nil, fmt.Errorf("--pull-policy=%s: want never or new", pullPolicy)
	}
	st, err := store.Open(env.G.Dir)
	if err != nil {
		return nil, err
	}
	st.Log = env.Log
	return &stage0.Host{
		Pods:        pod.NewStore(env.G.Dir),
		Images:      &storeImages{env: env, st: st, pull: pullPolicy},
		NetConfDirs: []string{filepath.Join(env.G.LocalConfig, "net.d"), filepath.Join(env.G.SystemConfig, "net.d")},
		// As rkt: third-party plugins beside the local configs first, then Cairn's and the
		// distribution's.
		NetPluginDirs: append([]string{filepath.Join(env.G.LocalConfig, "net.d")}, network.DefaultPluginDirs...),
		Log:           env.Log,
	}, nil
}

// storeImages finds images in the store, fetching those that are not there under
// --pull-policy=new, and records their use.
type storeImages struct {
	env  *Env
	st   *store.Store
	pull string
}

func (s *storeImages) Image(ctx context.Context, ref string) (*image.Image, error) {
	img, err := s.get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if err := s.st.Touch(ctx, img.ID); err != nil {
		s.env.Log.Debug("recording image use", "image", img.ID, "err", err)
	}
	return img, nil
}

func (s *storeImages) get(ctx context.Context, ref string) (*image.Image, error) {
	img, err := s.st.Get(ctx, ref)
	if err == nil {
		return img, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	if s.pull != "new" {
		return nil, fmt.Errorf("image %s: %w (rkt fetch it first)", ref, err)
	}
	f, err := newFetcher(s.env, s.st, fetch.PullNew)
	if err != nil {
		return nil, err
	}
	img, err = f.Fetch(ctx, fetch.Request{Image: ref})
	if err != nil {
		return nil, fmt.Errorf("image %s: not in the store, and fetching it failed: %w", ref, err)
	}
	return img, nil
}

// runPod runs a prepared pod, locked, in the foreground.
func runPod(ctx context.Context, env *Env, p *pod.Pod, stopTimeout time.Duration) error {
	code, err := stage0.Run(ctx, p, stage0.RunOptions{Stdin: env.Stdin, Stdout: env.Stdout, Stderr: env.Stderr,
		Log: env.Log, StopTimeout: stopTimeout})
	if err != nil {
		return &ExitError{Code: stage1.ExitFailure, Err: err}
	}
	if code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}

// podCommand is rkt run and rkt prepare: the same flags and the same preparation of a pod, then
// done with the locked pod.
func podCommand(env *Env, use, short string, withRun bool, done func(*pod.Pod, *podFlags) error) *cobra.Command {
	var f podFlags
	c := &cobra.Command{Use: use, Short: short, DisableFlagParsing: true}
	c.RunE = func(c *cobra.Command, args []string) error {
		apps, err := parsePodArgs(c, env, &f, withRun, args)
		if err != nil {
			if errors.Is(err, errHelp) {
				return nil
			}
			return err
		}
		cfg, err := f.config(env, apps)
		if err != nil {
			return err
		}
		h, err := host(env, f.pullPolicy)
		if err != nil {
			return err
		}
		p, err := h.Prepare(env.Ctx, cfg)
		if err != nil {
			return err
		}
		return done(p, &f)
	}
	return c
}

func init() {
	register(func(env *Env) *cobra.Command {
		return podCommand(env, "run [flags] IMAGE [app flags] [-- image-args] [--- IMAGE ...]",
			"Run images in a new pod, in the foreground", true,
			func(p *pod.Pod, f *podFlags) error {
				return runPod(env.Ctx, env, p, f.stopTimeout)
			})
	})
}
