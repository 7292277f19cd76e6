package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/appc/spec/schema"
	"github.com/spf13/pflag"

	"github.com/cairn-os/cairn/runtime/stage0"
)

// podArgs is rkt run's and rkt prepare's command line, read rkt's way: the pod's flags may
// come anywhere; each IMAGE starts an app, and the app flags after it are that app's
// (before any image, --memory, --cpu, --caps-*, --seccomp and --set-env are defaults for
// every app); "--" after an image starts its arguments, which run to a lone "---" or the end.
type podArgs struct {
	cfg         stage0.Config
	cur         int // the app that app flags apply to, -1 before the first image
	pullPolicy  string
	stopTimeout time.Duration
	podManifest string
	quiet       bool // prepare: stdout has only the UUID, as it has without it
	mdsRegister bool // accepted, ignored: Cairn has no metadata service
	help        bool
}

// app returns the app being read, nil before the first image.
func (p *podArgs) app() *stage0.App {
	if p.cur < 0 {
		return nil
	}
	return &p.cfg.Apps[p.cur]
}

// flagFunc is a flag whose value goes through a function.
type flagFunc struct {
	set  func(string) error
	kind string
}

func (f flagFunc) Set(s string) error { return f.set(s) }
func (f flagFunc) String() string     { return "" }
func (f flagFunc) Type() string       { return f.kind }

// appFlag defines a flag for the app it follows; pod, when not nil, takes it before the
// first image.
func (p *podArgs) appFlag(fs *pflag.FlagSet, name, usage string, pod func(string) error, app func(*stage0.App, string) error) {
	fs.Var(flagFunc{kind: "string", set: func(v string) error {
		if a := p.app(); a != nil {
			return app(a, v)
		}
		if pod == nil {
			return fmt.Errorf("--%s must follow an image", name)
		}
		return pod(v)
	}}, name, usage)
}

// flagSet defines run's or prepare's flags (withRun: run's own) over p.
func (p *podArgs) flagSet(name string, withRun bool) *pflag.FlagSet {
	c := &p.cfg
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.Var(flagFunc{kind: "string", set: func(v string) error {
		vol, err := parseVolumeFlag(v)
		if err == nil {
			c.Volumes = append(c.Volumes, vol)
		}
		return err
	}}, "volume", "volumes to make available in the pod: NAME,kind=host|empty,source=PATH,readOnly=true|false")
	fs.StringArrayVar(&c.Net, "net", nil, `networks to join: default, default-restricted, host, none, all, or names from net.d, with per-network arguments (NAME:IP=10.1.1.7) (default "default")`)
	fs.Lookup("net").NoOptDefVal = "default"
	fs.StringArrayVar(&c.Ports, "port", nil, "forward a host port to a port the image declares: NAME:[HOSTIP:]HOSTPORT")
	fs.StringVar(&c.Hostname, "hostname", "", `pod's hostname (default "rkt-$UUID")`)
	fs.Var(flagFunc{kind: "strings", set: func(v string) error { c.DNS = append(c.DNS, splitList(v)...); return nil }},
		"dns", "name servers for the pod: host, none or addresses (comma-separated; the flag may repeat)")
	fs.StringArrayVar(&c.DNSSearch, "dns-search", nil, "DNS search domains")
	fs.StringArrayVar(&c.DNSOpt, "dns-opt", nil, "DNS resolver options (resolv.conf options)")
	fs.StringVar(&c.DNSDomain, "dns-domain", "", "DNS domain (resolv.conf domain)")
	fs.Var(flagFunc{kind: "strings", set: func(v string) error { c.HostsEntries = append(c.HostsEntries, splitList(v)...); return nil }},
		"hosts-entry", "entries for the pod's /etc/hosts: IP=HOSTNAME[,IP=HOSTNAME...] (the flag may repeat), or host for the host's /etc/hosts")
	fs.BoolVar(&c.NoOverlay, "no-overlay", false, "copy image trees instead of using overlayfs")
	fs.BoolVar(&c.PrivateUsers, "private-users", false, "run the pod in a user namespace: its IDs 0-65535 are a random range of unprivileged host IDs")
	fs.StringVar(&c.UUIDFileSave, "uuid-file-save", "", "write the pod UUID to this file")
	fs.BoolVar(&c.InheritEnv, "inherit-env", false, "give the apps the variables of rkt's environment that their images do not set")
	fs.StringArrayVar(&c.EnvFiles, "set-env-file", nil, "file of NAME=VALUE lines: variables for every app (# and ; start comments)")
	fs.StringVar(&p.podManifest, "pod-manifest", "", "run the pod this appc pod manifest describes (its images must be in the store); only the network flags, --interactive, --no-overlay, --private-users and --uuid-file-save go with it")
	fs.StringVar(&p.pullPolicy, "pull-policy", "new", "when to fetch images: new (those not in the store), update (ask the remote each time) or never (the store only)")
	if withRun {
		fs.BoolVar(&c.Interactive, "interactive", false, "run the (single) app on a terminal with stdin attached")
		fs.DurationVar(&p.stopTimeout, "stop-timeout", 10*time.Second, "time apps get between SIGTERM and SIGKILL when the pod is stopped")
		fs.BoolVar(&p.mdsRegister, "mds-register", false, "accepted for rkt's scripts; Cairn has no metadata service")
	} else {
		fs.BoolVar(&p.quiet, "quiet", false, "print only the UUID (rkt prepare prints nothing else on stdout anyway)")
	}

	// App flags; some are defaults for every app before the first image.
	p.appFlag(fs, "name", "the app's name (default: from the image's name)", nil,
		func(a *stage0.App, v string) error { a.Name = v; return nil })
	p.appFlag(fs, "exec", "command to run instead of the image's; arguments after -- are its arguments", nil,
		func(a *stage0.App, v string) error { a.Exec = v; return nil })
	p.appFlag(fs, "user", "user to run as (name or UID)", nil,
		func(a *stage0.App, v string) error { a.User = v; return nil })
	p.appFlag(fs, "group", "group to run as (name or GID)", nil,
		func(a *stage0.App, v string) error { a.Group = v; return nil })
	p.appFlag(fs, "working-dir", "working directory", nil,
		func(a *stage0.App, v string) error { a.WorkingDir = v; return nil })
	p.appFlag(fs, "environment", "environment variable of the app: NAME=VALUE", nil,
		func(a *stage0.App, v string) error { a.Env = append(a.Env, v); return nil })
	p.appFlag(fs, "set-env", "environment variable NAME=VALUE: of every app before the first image, else of the app",
		func(v string) error { c.Env = append(c.Env, v); return nil },
		func(a *stage0.App, v string) error { a.Env = append(a.Env, v); return nil })
	p.appFlag(fs, "mount", "mount a pod volume: volume=NAME,target=PATH; before the first image into every app",
		func(v string) error {
			m, err := parseMountFlag(v)
			c.Mounts = append(c.Mounts, m)
			return err
		},
		func(a *stage0.App, v string) error {
			m, err := parseMountFlag(v)
			a.Mounts = append(a.Mounts, m)
			return err
		})
	p.appFlag(fs, "supplementary-gids", "supplementary group IDs of the app, comma-separated (replace the image's)", nil,
		func(a *stage0.App, v string) error {
			gids, err := parseGIDs(v)
			a.SupplementaryGIDs = gids
			return err
		})
	p.appFlag(fs, "user-annotation", "annotation NAME=VALUE of the app (of the pod before the first image)",
		func(v string) error { return setKV("--user-annotation", &c.UserAnnotations, v) },
		func(a *stage0.App, v string) error { return setKV("--user-annotation", &a.UserAnnotations, v) })
	p.appFlag(fs, "user-label", "label NAME=VALUE of the app (of the pod before the first image)",
		func(v string) error { return setKV("--user-label", &c.UserLabels, v) },
		func(a *stage0.App, v string) error { return setKV("--user-label", &a.UserLabels, v) })
	p.appFlag(fs, "readonly-rootfs", "mount the app's root read-only (every app's before the first image)",
		func(v string) (err error) { c.ReadOnlyRootFS, err = parseBool("--readonly-rootfs", v); return err },
		func(a *stage0.App, v string) error {
			b, err := parseBool("--readonly-rootfs", v)
			a.ReadOnlyRootFS = &b
			return err
		})
	ro := fs.Lookup("readonly-rootfs")
	ro.NoOptDefVal, ro.Value = "true", flagFunc{kind: "bool", set: ro.Value.Set}
	p.appFlag(fs, "memory", "memory limit (e.g. 64M)",
		func(v string) error { c.Memory = v; return nil },
		func(a *stage0.App, v string) error { a.Memory = v; return nil })
	p.appFlag(fs, "cpu", "CPU limit in cores or millicores (e.g. 500m)",
		func(v string) error { c.CPU = v; return nil },
		func(a *stage0.App, v string) error { a.CPU = v; return nil })
	p.appFlag(fs, "caps-retain", "capabilities to keep (replaces the default set)",
		func(v string) error { c.CapsRetain = splitList(v); return nil },
		func(a *stage0.App, v string) error { a.CapsRetain = splitList(v); return nil })
	p.appFlag(fs, "caps-remove", "capabilities to drop from the default set",
		func(v string) error { c.CapsRemove = splitList(v); return nil },
		func(a *stage0.App, v string) error { a.CapsRemove = splitList(v); return nil })
	p.appFlag(fs, "seccomp", "seccomp filter: mode=remove|retain[,errno=ENAME],SYSCALL|@SET,...",
		func(v string) (err error) { c.Seccomp, err = parseSeccompFlag(v); return err },
		func(a *stage0.App, v string) (err error) { a.Seccomp, err = parseSeccompFlag(v); return err })
	fs.BoolVarP(&p.help, "help", "h", false, "help")
	return fs
}

// parse reads args (after the command's name) with fs, as rkt's parseApps did.
func (p *podArgs) parse(fs *pflag.FlagSet, args []string) error {
	p.cur = -1
	inArgs, hadArgs := false, false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if inArgs {
			if a == "---" {
				inArgs = false
			} else {
				p.app().Args = append(p.app().Args, a)
			}
			continue
		}
		switch a {
		case "":
		case "--":
			if p.cur < 0 {
				return errors.New("an image must come before its arguments (--)")
			}
			if hadArgs {
				return fmt.Errorf("image %s: a second set of arguments (end the first with ---)", p.app().Image)
			}
			inArgs, hadArgs = true, true
		case "---":
			// Ends an image's arguments; between images it changes nothing.
		default:
			if err := fs.Parse(args[i:]); err != nil {
				return err
			}
			if p.help {
				return nil
			}
			n := len(args[i:]) - fs.NArg()
			if n == 0 {
				p.cfg.Apps = append(p.cfg.Apps, stage0.App{Image: a})
				p.cur, hadArgs = len(p.cfg.Apps)-1, false
				continue
			}
			if args[i+n-1] == "--" {
				n-- // pflag ends its flags at "--"; here it starts the app's arguments
			}
			i += n - 1
		}
	}
	if len(p.cfg.Apps) == 0 && p.podManifest == "" {
		return errors.New("no image given")
	}
	return nil
}

// readPodManifest reads the --pod-manifest file, bounded.
func readPodManifest(name string) (*schema.PodManifest, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("--pod-manifest: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, stage0.MaxPodManifest+1))
	if err != nil {
		return nil, fmt.Errorf("--pod-manifest %s: %w", name, err)
	}
	m, err := stage0.ParsePodManifest(b)
	if err != nil {
		return nil, fmt.Errorf("--pod-manifest %s: %w", name, err)
	}
	return m, nil
}
