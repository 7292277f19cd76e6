package cli

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/runtime/fetch/insecure"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage0"
)

// rkt app: the app-level API, a pod (rkt app sandbox) whose apps are added, started,
// stopped and removed while it runs. The sandbox's supervisor does the work; these commands
// ask it (runtime/podapi), except list and status, which read the pod directory.

func init() {
	register(func(env *Env) *cobra.Command {
		c := &cobra.Command{
			Use:   "app",
			Short: "Operate on the apps of a pod: sandbox, add, start, stop, rm, list, status",
			Long: `A sandbox (rkt app sandbox) is a pod started with no apps: its namespaces, networks and
cgroup, and a supervisor in the foreground that adds, starts, stops and removes apps when asked
and lives on without them. rkt stop stops it (its apps first).`,
		}
		c.AddCommand(appSandboxCommand(env), appAddCommand(env), appStartCommand(env), appStopCommand(env, false),
			appStopCommand(env, true), appListCommand(env), appStatusCommand(env))
		return c
	})
}

func appSandboxCommand(env *Env) *cobra.Command {
	var cfg stage0.SandboxConfig
	var stopTimeout time.Duration
	c := &cobra.Command{
		Use:   "sandbox [flags]",
		Short: "Run a pod with no apps, in the foreground, whose apps rkt app add and rm bring and take away",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			ins, err := insecure.Parse(env.G.InsecureOptions)
			if err != nil {
				return err
			}
			cfg.InsecureSeccomp = ins.Has(insecure.Seccomp)
			h, err := host(env, "never")
			if err != nil {
				return err
			}
			p, err := h.PrepareSandbox(env.Ctx, &cfg)
			if err != nil {
				return err
			}
			return runPod(env.Ctx, env, p, stopTimeout)
		},
	}
	fl := c.Flags()
	fl.StringArrayVar(&cfg.Net, "net", nil, `networks to join: default, default-restricted, host, none, all, or names from net.d, with per-network arguments (NAME:IP=10.1.1.7) (default "default")`)
	fl.Lookup("net").NoOptDefVal = "default"
	fl.StringArrayVar(&cfg.Ports, "port", nil, "forward a host port to a pod port: NAME:PROTO:PODPORT:HOSTIP:HOSTPORT (http:tcp:8080:0.0.0.0:80)")
	fl.StringVar(&cfg.Hostname, "hostname", "", `pod's hostname (default "rkt-$UUID")`)
	fl.Var(flagFunc{kind: "strings", set: func(v string) error { cfg.DNS = append(cfg.DNS, splitList(v)...); return nil }},
		"dns", "name servers for the pod: host, none or addresses (comma-separated; the flag may repeat)")
	fl.StringArrayVar(&cfg.DNSSearch, "dns-search", nil, "DNS search domains")
	fl.StringArrayVar(&cfg.DNSOpt, "dns-opt", nil, "DNS resolver options (resolv.conf options)")
	fl.StringVar(&cfg.DNSDomain, "dns-domain", "", "DNS domain (resolv.conf domain)")
	fl.Var(flagFunc{kind: "strings", set: func(v string) error { cfg.HostsEntries = append(cfg.HostsEntries, splitList(v)...); return nil }},
		"hosts-entry", "entries for the pod's /etc/hosts: IP=HOSTNAME[,IP=HOSTNAME...] (the flag may repeat), or host for the host's /etc/hosts")
	fl.Var(flagFunc{kind: "NAME=VALUE", set: func(v string) error { return setKV("--annotation", &cfg.Annotations, v) }},
		"annotation", "annotation of the pod: NAME=VALUE, NAME an appc identifier (the flag may repeat)")
	fl.Var(flagFunc{kind: "NAME=VALUE", set: func(v string) error { return setKV("--user-annotation", &cfg.UserAnnotations, v) }},
		"user-annotation", "user annotation of the pod: NAME=VALUE")
	fl.Var(flagFunc{kind: "NAME=VALUE", set: func(v string) error { return setKV("--user-label", &cfg.UserLabels, v) }},
		"user-label", "user label of the pod: NAME=VALUE")
	fl.BoolVar(&cfg.NoOverlay, "no-overlay", false, "copy image trees instead of using overlayfs")
	fl.BoolVar(&cfg.PrivateUsers, "private-users", false, "run the pod in a user namespace: its IDs 0-65535 are a random range of unprivileged host IDs")
	fl.StringVar(&cfg.UUIDFileSave, "uuid-file-save", "", "write the pod UUID to this file")
	fl.StringVar(&cfg.CgroupParent, "cgroup-parent", "", "cgroup the pod's cgroup goes under: absolute from each hierarchy's root, or relative to rkt's own")
	fl.DurationVar(&stopTimeout, "stop-timeout", 10*time.Second, "time apps get between SIGTERM and SIGKILL when they or the pod are stopped")
	return c
}

// appName checks the --app flag of the app commands, which must be given.
func appName(name string) error {
	if name == "" {
		return errors.New("--app=NAME: which app")
	}
	return nil
}

func appStartCommand(env *Env) *cobra.Command {
	var app string
	c := &cobra.Command{
		Use:   "start UUID --app=NAME",
		Short: "Start an app that rkt app add added to a sandbox (nothing if it runs)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := appName(app); err != nil {
				return err
			}
			p, cl, err := stage0.Sandbox(podStore(env), args[0])
			if err != nil {
				return err
			}
			if _, err := cl.Start(env.Ctx, app); err != nil {
				return fmt.Errorf("pod %s: %w", p.UUID, err)
			}
			return nil
		},
	}
	c.Flags().StringVar(&app, "app", "", "the app to start")
	return c
}

// appStopCommand is rkt app stop, or with rm rkt app rm.
func appStopCommand(env *Env, rm bool) *cobra.Command {
	var app string
	var timeout time.Duration
	use, short := "stop UUID --app=NAME", "Stop an app of a sandbox: SIGTERM, SIGKILL after the timeout"
	if rm {
		use, short = "rm UUID --app=NAME", "Remove an app from a sandbox, stopping it first if it runs; its log stays"
	}
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := appName(app); err != nil {
				return err
			}
			ps := podStore(env)
			if !rm {
				// As rkt: stopping an app of a pod that no longer runs is done already.
				if p, err := ps.Get(args[0]); err == nil && finished(p.State()) {
					fmt.Fprintf(env.Stdout, "pod %q is already stopped\n", p.UUID)
					return nil
				}
			}
			p, cl, err := stage0.Sandbox(ps, args[0])
			if err != nil {
				return err
			}
			var t *time.Duration
			if c.Flags().Changed("timeout") {
				t = &timeout
			}
			if rm {
				err = cl.Remove(env.Ctx, app, t)
			} else {
				_, err = cl.Stop(env.Ctx, app, t)
			}
			if err != nil {
				return fmt.Errorf("pod %s: %w", p.UUID, err)
			}
			return nil
		},
	}
	c.Flags().StringVar(&app, "app", "", "the app")
	c.Flags().DurationVar(&timeout, "timeout", 0, "time the app gets between SIGTERM and SIGKILL (default: the sandbox's --stop-timeout)")
	return c
}

// podApps reads a pod's apps from its directory (any pod: a sandbox or rkt run's).
func podApps(env *Env, ref string) (*podInfo, error) {
	p, err := podStore(env).Get(ref)
	if err != nil {
		return nil, err
	}
	pi := readPod(p)
	if _, err := p.Manifest(); err != nil {
		return nil, err
	}
	return &pi, nil
}

func appListCommand(env *Env) *cobra.Command {
	var noLegend bool
	var format string
	c := &cobra.Command{
		Use:   "list UUID",
		Short: "List a pod's apps and their states",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			pi, err := podApps(env, args[0])
			if err != nil {
				return err
			}
			if format != "" {
				out := append([]appJSON{}, pi.json().Apps...)
				return writeJSON(env.Stdout, out, format == "json-pretty")
			}
			return writeAppTable(env.Stdout, pi.Apps, noLegend)
		},
	}
	c.Flags().BoolVar(&noLegend, "no-legend", false, "suppress a legend with the list")
	c.Flags().StringVar(&format, "format", "", "choose the output format: json, json-pretty")
	return c
}

// writeAppTable writes rkt app list's table.
func writeAppTable(w io.Writer, apps []podApp, noLegend bool) error {
	tw := tabwriter.NewWriter(w, 0, 8, 1, '\t', 0)
	if !noLegend {
		fmt.Fprint(tw, "NAME\tSTATE\n")
	}
	for _, a := range apps {
		fmt.Fprintf(tw, "%s\t%s\n", a.Name, a.State)
	}
	return tw.Flush()
}

func appStatusCommand(env *Env) *cobra.Command {
	var app, format string
	c := &cobra.Command{
		Use:   "status UUID --app=NAME [--format=json]",
		Short: "Show the state of an app of a pod",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := appName(app); err != nil {
				return err
			}
			if err := checkFormat(format); err != nil {
				return err
			}
			pi, err := podApps(env, args[0])
			if err != nil {
				return err
			}
			pj := pi.json()
			for i, a := range pi.Apps {
				if a.Name != app {
					continue
				}
				if format != "" {
					return writeJSON(env.Stdout, pj.Apps[i], format == "json-pretty")
				}
				writeAppStatus(env.Stdout, pj.Apps[i], time.Local)
				return nil
			}
			return fmt.Errorf("pod %s: app %q: %w", pi.UUID, app, pod.ErrNotFound)
		},
	}
	c.Flags().StringVar(&app, "app", "", "the app")
	c.Flags().StringVar(&format, "format", "", "choose the output format: json, json-pretty (default: key=value lines)")
	return c
}

// writeAppStatus writes rkt app status's key=value lines as rkt printed them, then Cairn's
// own: why the app exited, its pid while it runs, its log.
func writeAppStatus(w io.Writer, a appJSON, loc *time.Location) {
	fmt.Fprintf(w, "name=%s\n", a.Name)
	fmt.Fprintf(w, "state=%s\n", a.State)
	fmt.Fprintf(w, "image_id=%s\n", a.ImageID)
	for _, t := range []struct {
		key string
		v   *int64
	}{{"created_at", a.CreatedAt}, {"started_at", a.StartedAt}, {"finished_at", a.FinishedAt}} {
		if t.v != nil {
			fmt.Fprintf(w, "%s=%v\n", t.key, time.Unix(0, *t.v).In(loc))
		}
	}
	if a.ExitCode != nil {
		fmt.Fprintf(w, "exit_code=%d\n", *a.ExitCode)
	}
	if len(a.Mounts) > 0 {
		var ms []string
		for _, m := range a.Mounts {
			ms = append(ms, fmt.Sprintf("%s:%s:(read_only:%v)", m.HostPath, m.ContainerPath, m.ReadOnly))
		}
		fmt.Fprintf(w, "mounts=%s\n", strings.Join(ms, ","))
	}
	kv := func(key string, m map[string]string) {
		if len(m) == 0 {
			return
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			parts = append(parts, k+":"+m[k])
		}
		fmt.Fprintf(w, "%s=%s\n", key, strings.Join(parts, ","))
	}
	kv("user_annotations", a.UserAnnotations)
	kv("user_labels", a.UserLabels)
	if a.Reason != "" {
		fmt.Fprintf(w, "reason=%s\n", a.Reason)
	}
	if a.PID != 0 {
		fmt.Fprintf(w, "pid=%d\n", a.PID)
	}
	if a.LogPath != "" {
		fmt.Fprintf(w, "log=%s\n", a.LogPath)
	}
}
