package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage0"
)

func init() {
	register(func(env *Env) *cobra.Command {
		return podCommand(env, "prepare [flags] IMAGE [app flags] [-- image-args [---]] [IMAGE ...]",
			"Prepare a pod to run later with rkt run-prepared; prints its UUID", false,
			func(p *pod.Pod, _ *podArgs) error {
				if err := p.MarkPrepared(); err != nil {
					return err
				}
				fmt.Fprintln(env.Stdout, p.UUID)
				return nil
			})
	})
	// run-prepared is prepare's second half: it lives here with it.
	register(func(env *Env) *cobra.Command {
		var f runPreparedFlags
		c := &cobra.Command{
			Use:   "run-prepared [flags] UUID",
			Short: "Run a prepared pod in the foreground",
			Long: `Runs a pod made by rkt prepare. The network flags, --hostname and --interactive replace
what the pod was prepared with; those not given keep it.`,
			Args: cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				warnMDSRegister(env, f.mdsRegister)
				h := &stage0.Host{Pods: pod.NewStore(env.G.Dir), Log: env.Log}
				p, err := h.LockPrepared(args[0], f.changes(c))
				if err != nil {
					return err
				}
				return runPod(env.Ctx, env, p, f.stopTimeout)
			},
		}
		f.define(c)
		return c
	})
}

// runPreparedFlags are rkt run-prepared's flags: those rkt allows there.
type runPreparedFlags struct {
	stage0.Network
	interactive, mdsRegister bool
	stopTimeout              time.Duration
}

func (f *runPreparedFlags) define(c *cobra.Command) {
	fs := c.Flags()
	fs.StringArrayVar(&f.Net, "net", nil, `networks to join instead of the prepared ones: default, default-restricted, host, none, all, or names from net.d, with per-network arguments (NAME:IP=10.1.1.7)`)
	fs.Lookup("net").NoOptDefVal = "default"
	fs.Var(flagFunc{kind: "strings", set: func(v string) error { f.DNS = append(f.DNS, splitList(v)...); return nil }},
		"dns", "name servers for the pod: host, none or addresses (comma-separated; the flag may repeat)")
	fs.StringArrayVar(&f.DNSSearch, "dns-search", nil, "DNS search domains")
	fs.StringArrayVar(&f.DNSOpt, "dns-opt", nil, "DNS resolver options (resolv.conf options)")
	fs.StringVar(&f.DNSDomain, "dns-domain", "", "DNS domain (resolv.conf domain)")
	fs.Var(flagFunc{kind: "strings", set: func(v string) error { f.HostsEntries = append(f.HostsEntries, splitList(v)...); return nil }},
		"hosts-entry", "entries for the pod's /etc/hosts: IP=HOSTNAME[,IP=HOSTNAME...] (the flag may repeat), or host for the host's /etc/hosts")
	fs.StringVar(&f.Hostname, "hostname", "", `pod's hostname (default "rkt-$UUID")`)
	fs.BoolVar(&f.interactive, "interactive", false, "run the pod's (single) app on a terminal with stdin attached")
	fs.BoolVar(&f.mdsRegister, "mds-register", false, "accepted for rkt's scripts; Cairn has no metadata service")
	fs.DurationVar(&f.stopTimeout, "stop-timeout", 10*time.Second, "time apps get between SIGTERM and SIGKILL when the pod is stopped")
}

// changes are the flags given, as stage0 takes them.
func (f *runPreparedFlags) changes(c *cobra.Command) *stage0.Changes {
	fs := c.Flags()
	ch := &stage0.Changes{}
	list := func(name string, v []string) []string {
		if fs.Changed(name) && v == nil {
			return []string{}
		}
		return v
	}
	ch.Net, ch.DNS, ch.DNSSearch, ch.DNSOpt, ch.HostsEntries = list("net", f.Net), list("dns", f.DNS),
		list("dns-search", f.DNSSearch), list("dns-opt", f.DNSOpt), list("hosts-entry", f.HostsEntries)
	if fs.Changed("hostname") {
		ch.Hostname = &f.Hostname
	}
	if fs.Changed("dns-domain") {
		ch.DNSDomain = &f.DNSDomain
	}
	if fs.Changed("interactive") {
		ch.Interactive = &f.interactive
	}
	return ch
}

// warnMDSRegister says what becomes of --mds-register.
func warnMDSRegister(env *Env, on bool) {
	if on {
		env.Log.Warn("--mds-register ignored: Cairn has no metadata service")
	}
}
