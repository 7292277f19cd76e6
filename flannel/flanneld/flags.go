// Package flanneld is the flannel daemon: it leases this host's subnet from etcd, keeps
// the flannel.<VNI> VXLAN device and its routes, neighbours and FDB entries in step with
// the other hosts' leases, writes subnet.env and answers health checks. The command in
// flannel/cmd/flanneld only calls Run.
package flanneld

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/cairn-os/cairn/flannel/registry"
	"github.com/cairn-os/cairn/flannel/subnetenv"
)

// Options are flanneld's flags. Names, defaults and FLANNELD_* variables follow stock flannel.
type Options struct {
	EtcdEndpoints []string
	EtcdPrefix    string
	EtcdCAFile    string
	EtcdCertFile  string
	EtcdKeyFile   string
	EtcdUsername  string
	EtcdPassword  string
	Iface         []string
	IfaceRegex    []*regexp.Regexp
	IfaceCanReach netip.Addr
	PublicIP      netip.Addr
	IPMasq        bool
	SubnetFile    string
	RenewMargin   time.Duration
	HealthzIP     string
	HealthzPort   int
	Version       bool
	// Cairn additions.
	LeaseTTL          time.Duration
	DataDir           string
	ReconcileInterval time.Duration
	LogLevel          string
}

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// ErrUsage is returned for bad flags; the message has been printed already.
var ErrUsage = errors.New("usage")

// ParseFlags parses args, then fills flags not given on the command line from FLANNELD_*
// variables in env (FLANNELD_ETCD_ENDPOINTS for -etcd-endpoints, and so on), as stock
// flannel does.
func ParseFlags(args []string, env func(string) string, stderr io.Writer) (*Options, error) {
	fs := flag.NewFlagSet("flanneld", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		endpoints, prefix, ca, cert, key, user, pass string
		iface, ifaceRegex                            listFlag
		canReach, publicIP, subnetFile, healthzIP    string
		ipMasq, version                              bool
		margin, healthzPort                          int
		ttl, interval                                time.Duration
		dataDir, logLevel                            string
	)
	fs.StringVar(&endpoints, "etcd-endpoints", "", "comma-separated etcd endpoints; empty starts an embedded single-node etcd on 127.0.0.1:2379")
	fs.StringVar(&prefix, "etcd-prefix", registry.DefaultPrefix, "etcd prefix")
	fs.StringVar(&key, "etcd-keyfile", "", "SSL key file used to secure etcd communication")
	fs.StringVar(&cert, "etcd-certfile", "", "SSL certification file used to secure etcd communication")
	fs.StringVar(&ca, "etcd-cafile", "", "SSL Certificate Authority file used to secure etcd communication")
	fs.StringVar(&user, "etcd-username", "", "username for BasicAuth to etcd")
	fs.StringVar(&pass, "etcd-password", "", "password for BasicAuth to etcd")
	fs.Var(&iface, "iface", "interface to use (IP or name) for inter-host communication; may be repeated")
	fs.Var(&ifaceRegex, "iface-regex", "regex matching the first interface (name or IP) to use; may be repeated")
	fs.StringVar(&canReach, "iface-can-reach", "", "use the interface that routes to this IP")
	fs.StringVar(&publicIP, "public-ip", "", "IP accessible by other nodes for inter-host communication")
	fs.BoolVar(&ipMasq, "ip-masq", false, "setup IP masquerade rule for traffic destined outside of overlay network")
	fs.StringVar(&subnetFile, "subnet-file", subnetenv.DefaultPath, "filename where env variables (subnet, MTU, ...) will be written to")
	fs.IntVar(&margin, "subnet-lease-renew-margin", 60, "subnet lease renewal margin, in minutes, ranging from 1 to 1439")
	fs.StringVar(&healthzIP, "healthz-ip", "0.0.0.0", "the IP address for healthz server to listen")
	fs.IntVar(&healthzPort, "healthz-port", 0, "the port for healthz server to listen (0 to disable)")
	fs.BoolVar(&version, "version", false, "print version and exit")
	fs.DurationVar(&ttl, "subnet-lease-ttl", registry.DefaultTTL, "TTL of the subnet lease (Cairn; stock flannel fixes it at 24h)")
	fs.StringVar(&dataDir, "data-dir", "/var/lib/flannel", "where the embedded etcd keeps its data")
	fs.DurationVar(&interval, "reconcile-interval", 10*time.Second, "how often the dataplane is checked against the leases even when nothing was reported")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return nil, ErrUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "flanneld: unexpected arguments %q\n", fs.Args())
		return nil, ErrUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || env == nil {
			return
		}
		name := "FLANNELD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := env(name); v != "" {
			if err := fs.Set(f.Name, v); err != nil && envErr == nil {
				envErr = fmt.Errorf("%s=%q: %w", name, v, err)
			}
		}
	})
	if envErr != nil {
		fmt.Fprintf(stderr, "flanneld: %v\n", envErr)
		return nil, ErrUsage
	}

	o := &Options{EtcdPrefix: prefix, EtcdCAFile: ca, EtcdCertFile: cert, EtcdKeyFile: key,
		EtcdUsername: user, EtcdPassword: pass, Iface: iface, IPMasq: ipMasq, SubnetFile: subnetFile,
		HealthzIP: healthzIP, HealthzPort: healthzPort, Version: version, LeaseTTL: ttl, DataDir: dataDir,
		ReconcileInterval: interval, LogLevel: logLevel}
	for _, e := range strings.Split(endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			o.EtcdEndpoints = append(o.EtcdEndpoints, e)
		}
	}
	bad := func(format string, args ...any) (*Options, error) {
		fmt.Fprintf(stderr, "flanneld: "+format+"\n", args...)
		return nil, ErrUsage
	}
	for _, r := range ifaceRegex {
		re, err := regexp.Compile(r)
		if err != nil {
			return bad("-iface-regex %q: %v", r, err)
		}
		o.IfaceRegex = append(o.IfaceRegex, re)
	}
	var err error
	if canReach != "" {
		if o.IfaceCanReach, err = netip.ParseAddr(canReach); err != nil {
			return bad("-iface-can-reach %q is not an IP address", canReach)
		}
	}
	if publicIP != "" {
		if o.PublicIP, err = netip.ParseAddr(publicIP); err != nil || !o.PublicIP.Is4() {
			return bad("-public-ip %q is not an IPv4 address", publicIP)
		}
	}
	if margin < 1 || margin > 1439 {
		return bad("-subnet-lease-renew-margin %d must be between 1 and 1439 minutes", margin)
	}
	o.RenewMargin = time.Duration(margin) * time.Minute
	if ttl < 2*time.Second {
		return bad("-subnet-lease-ttl %s is too short", ttl)
	}
	if interval <= 0 || interval > 10*time.Second {
		return bad("-reconcile-interval %s must be in (0, 10s]", interval)
	}
	if healthzPort < 0 || healthzPort > 65535 {
		return bad("-healthz-port %d out of range", healthzPort)
	}
	if (cert == "") != (key == "") {
		return bad("-etcd-certfile and -etcd-keyfile go together")
	}
	return o, nil
}

// Getenv is os.Getenv, the env source Run uses.
var Getenv = os.Getenv
