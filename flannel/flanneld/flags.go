// Package flanneld is the flannel daemon: it leases this host's subnet from etcd (or, with
// -kube-subnet-mgr, takes its Node's pod CIDR from Kubernetes), keeps the flannel.<VNI> VXLAN
// device and its routes, neighbours and FDB entries in step with the other hosts' leases,
// writes subnet.env and answers health checks. The command in flannel/cmd/flanneld only
// calls Run.
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

	"github.com/cairn-os/cairn/flannel/kube"
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
	// Kubernetes subnet manager.
	KubeSubnetMgr             bool
	KubeAPIURL                string
	KubeconfigFile            string
	KubeAnnotationPrefix      string
	NetConfigPath             string
	SetNodeNetworkUnavailable bool
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
	o := &Options{}
	// The flag package cannot parse these into their fields; they are converted, with
	// flanneld's own messages, once the FLANNELD_* fallback is in.
	var text struct {
		endpoints, canReach, publicIP string
		ifaceRegex                    listFlag
		margin                        int
	}
	fs.StringVar(&text.endpoints, "etcd-endpoints", "", "comma-separated etcd endpoints; empty starts an embedded single-node etcd on 127.0.0.1:2379")
	fs.StringVar(&o.EtcdPrefix, "etcd-prefix", registry.DefaultPrefix, "etcd prefix")
	fs.StringVar(&o.EtcdKeyFile, "etcd-keyfile", "", "SSL key file used to secure etcd communication")
	fs.StringVar(&o.EtcdCertFile, "etcd-certfile", "", "SSL certification file used to secure etcd communication")
	fs.StringVar(&o.EtcdCAFile, "etcd-cafile", "", "SSL Certificate Authority file used to secure etcd communication")
	fs.StringVar(&o.EtcdUsername, "etcd-username", "", "username for BasicAuth to etcd")
	fs.StringVar(&o.EtcdPassword, "etcd-password", "", "password for BasicAuth to etcd")
	fs.Var((*listFlag)(&o.Iface), "iface", "interface to use (IP or name) for inter-host communication; may be repeated")
	fs.Var(&text.ifaceRegex, "iface-regex", "regex matching the first interface (name or IP) to use; may be repeated")
	fs.StringVar(&text.canReach, "iface-can-reach", "", "use the interface that routes to this IP")
	fs.StringVar(&text.publicIP, "public-ip", "", "IP accessible by other nodes for inter-host communication")
	fs.BoolVar(&o.IPMasq, "ip-masq", false, "setup IP masquerade rule for traffic destined outside of overlay network")
	fs.StringVar(&o.SubnetFile, "subnet-file", subnetenv.DefaultPath, "filename where env variables (subnet, MTU, ...) will be written to")
	fs.IntVar(&text.margin, "subnet-lease-renew-margin", 60, "subnet lease renewal margin, in minutes, ranging from 1 to 1439")
	fs.StringVar(&o.HealthzIP, "healthz-ip", "0.0.0.0", "the IP address for healthz server to listen")
	fs.IntVar(&o.HealthzPort, "healthz-port", 0, "the port for healthz server to listen (0 to disable)")
	fs.BoolVar(&o.Version, "version", false, "print version and exit")
	fs.BoolVar(&o.KubeSubnetMgr, "kube-subnet-mgr", false, "contact the Kubernetes API for subnet assignment instead of etcd")
	fs.StringVar(&o.KubeAPIURL, "kube-api-url", "", "Kubernetes API server URL; not needed in a pod")
	fs.StringVar(&o.KubeconfigFile, "kubeconfig-file", "", "kubeconfig file; not needed in a pod")
	fs.StringVar(&o.KubeAnnotationPrefix, "kube-annotation-prefix", kube.DefaultAnnotationPrefix, `Kubernetes annotation prefix; may contain one "/", else "/" is appended`)
	fs.StringVar(&o.NetConfigPath, "net-config-path", "/etc/kube-flannel/net-conf.json", "network config file of the Kubernetes mode")
	fs.BoolVar(&o.SetNodeNetworkUnavailable, "set-node-network-unavailable", true, "set the Node's NetworkUnavailable condition to False once ready")
	fs.DurationVar(&o.LeaseTTL, "subnet-lease-ttl", registry.DefaultTTL, "TTL of the subnet lease (Cairn; stock flannel fixes it at 24h)")
	fs.StringVar(&o.DataDir, "data-dir", "/var/lib/flannel", "where the embedded etcd keeps its data")
	fs.DurationVar(&o.ReconcileInterval, "reconcile-interval", 10*time.Second, "how often the dataplane is checked against the leases even when nothing was reported")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
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

	for e := range strings.SplitSeq(text.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			o.EtcdEndpoints = append(o.EtcdEndpoints, e)
		}
	}
	bad := func(format string, args ...any) (*Options, error) {
		fmt.Fprintf(stderr, "flanneld: "+format+"\n", args...)
		return nil, ErrUsage
	}
	for _, r := range text.ifaceRegex {
		re, err := regexp.Compile(r)
		if err != nil {
			return bad("-iface-regex %q: %v", r, err)
		}
		o.IfaceRegex = append(o.IfaceRegex, re)
	}
	var err error
	if text.canReach != "" {
		if o.IfaceCanReach, err = netip.ParseAddr(text.canReach); err != nil {
			return bad("-iface-can-reach %q is not an IP address", text.canReach)
		}
	}
	if text.publicIP != "" {
		if o.PublicIP, err = netip.ParseAddr(text.publicIP); err != nil || !o.PublicIP.Is4() {
			return bad("-public-ip %q is not an IPv4 address", text.publicIP)
		}
	}
	if text.margin < 1 || text.margin > 1439 {
		return bad("-subnet-lease-renew-margin %d must be between 1 and 1439 minutes", text.margin)
	}
	o.RenewMargin = time.Duration(text.margin) * time.Minute
	if o.LeaseTTL < 2*time.Second {
		return bad("-subnet-lease-ttl %s is too short", o.LeaseTTL)
	}
	if o.ReconcileInterval <= 0 || o.ReconcileInterval > 10*time.Second {
		return bad("-reconcile-interval %s must be in (0, 10s]", o.ReconcileInterval)
	}
	if o.HealthzPort < 0 || o.HealthzPort > 65535 {
		return bad("-healthz-port %d out of range", o.HealthzPort)
	}
	if o.KubeSubnetMgr {
		if _, err := kube.NewAnnotations(o.KubeAnnotationPrefix); err != nil {
			return bad("-kube-annotation-prefix: %v", err)
		}
	}
	if (o.EtcdCertFile == "") != (o.EtcdKeyFile == "") {
		return bad("-etcd-certfile and -etcd-keyfile go together")
	}
	return o, nil
}

// Getenv is os.Getenv, the env source Run uses.
var Getenv = os.Getenv
