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

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cairn-os/cairn/internal/atomicfile"
	"github.com/cairn-os/cairn/runtime/fetch/insecure"
	"github.com/cairn-os/cairn/runtime/image"
	"github.com/cairn-os/cairn/runtime/network"
	"github.com/cairn-os/cairn/runtime/pod"
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

// appSpec is one IMAGE and its per-app flags.
type appSpec struct {
	image string
	o     stage1.Overrides
}

func appFlagSet(o *stage1.Overrides) *pflag.FlagSet {
	fs := pflag.NewFlagSet("app", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.StringVar(&o.Name, "name", "", "app name")
	fs.StringVar(&o.Exec, "exec", "", "command to run instead of the image's")
	fs.StringVar(&o.User, "user", "", "user to run as (name or UID)")
	fs.StringVar(&o.Group, "group", "", "group to run as (name or GID)")
	fs.StringVar(&o.WorkingDir, "working-dir", "", "working directory")
	fs.StringArrayVar(&o.Env, "set-env", nil, "environment variable NAME=VALUE")
	fs.StringArrayVar(&o.Env, "environment", nil, "environment variable NAME=VALUE")
	fs.StringArrayVar(&o.Mounts, "mount", nil, "mount a pod volume: volume=NAME,target=PATH")
	fs.StringVar(&o.Memory, "memory", "", "memory limit")
	fs.StringVar(&o.CPU, "cpu", "", "CPU limit")
	fs.StringVar(&o.CapsRetain, "caps-retain", "", "capabilities to keep")
	fs.StringVar(&o.CapsRemove, "caps-remove", "", "capabilities to drop")
	fs.StringVar(&o.Seccomp, "seccomp", "", "seccomp filter")
	return fs
}

// parseApps splits rkt's "IMAGE [app flags] [-- args] [--- IMAGE ...]" form.
func parseApps(args []string) ([]appSpec, error) {
	var apps []appSpec
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
		a := appSpec{image: seg[0]}
		if strings.HasPrefix(a.image, "-") {
			return nil, fmt.Errorf("expected an image, got flag %q", a.image)
		}
		rest := seg[1:]
		var imgArgs []string
		if i := slices.Index(rest, "--"); i >= 0 {
			rest, imgArgs = rest[:i], rest[i+1:]
		}
		fs := appFlagSet(&a.o)
		if err := fs.Parse(rest); err != nil {
			return nil, fmt.Errorf("image %s: %w", a.image, err)
		}
		if fs.NArg() > 0 {
			return nil, fmt.Errorf("image %s: unexpected %q (image arguments go after --)", a.image, fs.Args())
		}
		a.o.Args = imgArgs
		apps = append(apps, a)
	}
	if len(apps) == 0 {
		return nil, errors.New("no image given")
	}
	return apps, nil
}

// parsePodArgs parses rkt run/prepare's command line: global flags and pod flags, then apps.
func parsePodArgs(c *cobra.Command, env *Env, f *podFlags, withRun bool, args []string) ([]appSpec, error) {
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

// preparePod resolves images, writes the pod manifest and stage1 options into a new pod in the
// prepare phase, and returns it still locked.
func preparePod(ctx context.Context, env *Env, f *podFlags, apps []appSpec) (*pod.Pod, error) {
	ins, err := insecure.Parse(env.G.InsecureOptions)
	if err != nil {
		return nil, err
	}
	opts := &stage1.Options{Net: strings.Join(f.net, ","), Hostname: f.hostname,
		DNS: f.dns, DNSSearch: f.dnsSearch, DNSOpt: f.dnsOpt, DNSDomain: f.dnsDomain, HostsEntries: f.hostsEntries,
		NetConfDirs: []string{filepath.Join(env.G.LocalConfig, "net.d"), filepath.Join(env.G.SystemConfig, "net.d")},
		// As rkt: third-party plugins beside the local configs first, then Cairn's and the
		// distribution's.
		NetPluginDirs: append([]string{filepath.Join(env.G.LocalConfig, "net.d")}, network.DefaultPluginDirs...),
		Interactive:   f.interactive, NoOverlay: f.noOverlay, InsecureSeccomp: ins.Has(insecure.Seccomp)}
	if f.privateUsers {
		if opts.PrivateUsers, err = stage1.NewPrivateUsers(filepath.Join(env.G.Dir, "pods")); err != nil {
			return nil, err
		}
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if f.interactive && len(apps) != 1 {
		return nil, errors.New("--interactive needs exactly one app")
	}
	man := schema.BlankPodManifest()
	for _, v := range f.volumes {
		vol, err := stage1.ParseVolumeFlag(v)
		if err != nil {
			return nil, err
		}
		man.Volumes = append(man.Volumes, vol)
	}
	st, err := store.Open(env.G.Dir)
	if err != nil {
		return nil, err
	}
	st.Log = env.Log
	taken := map[string]bool{}
	var declared []network.ImagePort
	for _, a := range apps {
		img, err := getImage(ctx, env, st, a.image, f.pullPolicy)
		if err != nil {
			return nil, err
		}
		declared = append(declared, network.DeclaredPorts(img)...)
		if err := st.Touch(ctx, img.ID); err != nil {
			env.Log.Debug("recording image use", "image", img.ID, "err", err)
		}
		app, err := stage1.AppFromImage(img)
		if err != nil {
			return nil, err
		}
		o := a.o
		o.Env = append(append([]string(nil), f.setEnv...), o.Env...)
		for _, d := range []struct {
			dst *string
			def string
		}{{&o.Memory, f.memory}, {&o.CPU, f.cpu}, {&o.CapsRetain, f.capsRetain}, {&o.CapsRemove, f.capsRemove}, {&o.Seccomp, f.seccomp}} {
			if *d.dst == "" {
				*d.dst = d.def
			}
		}
		mounts, err := o.Apply(app)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", a.image, err)
		}
		var name types.ACName
		if o.Name != "" {
			n, err := types.NewACName(o.Name)
			if err != nil {
				return nil, fmt.Errorf("--name %q: %w", o.Name, err)
			}
			name = *n
		} else if name, err = stage1.AppName(img.Name, taken); err != nil {
			return nil, err
		}
		if taken[string(name)] {
			return nil, fmt.Errorf("two apps named %q; use --name", name)
		}
		taken[string(name)] = true
		ri, ann, err := stage1.RuntimeImage(img)
		if err != nil {
			return nil, err
		}
		man.Apps = append(man.Apps, schema.RuntimeApp{Name: name, Image: ri, App: app, Mounts: mounts, Annotations: ann})
		opts.Apps = append(opts.Apps, stage1.AppImage{Name: string(name), ImageID: img.ID, Layers: img.Layers})
	}
	if opts.Ports, err = network.Forwards(f.ports, declared); err != nil {
		return nil, err
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	for _, ra := range man.Apps {
		for _, m := range ra.Mounts {
			if man.Volumes == nil || !hasVolume(man.Volumes, m.Volume) {
				return nil, fmt.Errorf("app %s: --mount volume=%s: %w", ra.Name, m.Volume, stage1.ErrNoVolume)
			}
		}
	}
	ps := pod.NewStore(env.G.Dir)
	p, err := ps.Create()
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*pod.Pod, error) { p.Close(); return nil, err }
	if err := p.WriteManifest(man); err != nil {
		return fail(err)
	}
	if err := opts.Write(p.Path()); err != nil {
		return fail(err)
	}
	if err := p.WriteTime(pod.CreatedFile, time.Now()); err != nil {
		return fail(err)
	}
	if f.uuidFileSave != "" {
		if err := atomicfile.WriteFile(f.uuidFileSave, []byte(p.UUID+"\n"), 0o644); err != nil {
			return fail(fmt.Errorf("--uuid-file-save: %w", err))
		}
	}
	return p, nil
}

func hasVolume(vs []types.Volume, n types.ACName) bool {
	for _, v := range vs {
		if v.Name == n {
			return true
		}
	}
	return false
}

// getImage finds an image in the store, fetching it first when a fetcher is wired in.
func getImage(ctx context.Context, env *Env, st *store.Store, ref, pull string) (*image.Image, error) {
	if pull != "new" && pull != "never" {
		return nil, fmt.Errorf("--pull-policy=%s: want never or new", pull)
	}
	img, err := st.Get(ctx, ref)
	if err == nil {
		return img, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	if FetchImage != nil && pull == "new" {
		img, ferr := FetchImage(ctx, env, st, ref)
		if ferr != nil {
			return nil, fmt.Errorf("image %s: not in the store, and fetching it failed: %w", ref, ferr)
		}
		return img, nil
	}
	return nil, fmt.Errorf("image %s: %w (rkt fetch it first)", ref, err)
}

// FetchImage, when set (by the fetch command's file), brings an image that is not in the store
// into it, for rkt run and rkt prepare.
var FetchImage func(ctx context.Context, env *Env, st *store.Store, ref string) (*image.Image, error)

// runPod runs a pod whose directory is in the run phase and locked, in the foreground.
func runPod(ctx context.Context, env *Env, p *pod.Pod, stopTimeout time.Duration) error {
	defer p.Close()
	r := &stage1.Runner{Pod: p, Stdin: env.Stdin, Stdout: env.Stdout, Stderr: env.Stderr, Log: env.Log,
		StopTimeout: stopTimeout, Ready: stage1.SystemdReady(p.UUID, env.Log)}
	code, err := r.Run(ctx)
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
		p, err := preparePod(env.Ctx, env, &f, apps)
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
				if err := p.MarkRunning(); err != nil {
					p.Close()
					return err
				}
				return runPod(env.Ctx, env, p, f.stopTimeout)
			})
	})
}
