package cri

import (
	"fmt"
	"maps"
	"net/netip"
	"path"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/runtime/stage0"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// sandboxChoice is what the host contributes to a sandbox's configuration: the CNI network
// its pods join ("" when none is configured).
type sandboxChoice struct {
	network string
}

// sandboxConfig maps a CRI sandbox onto a rkt sandbox pod: its metadata, labels and
// annotations (recorded in the pod manifest), its network (the host's, or the CNI network
// with the pod's port mappings through portmap), name service, host name, sysctls, cgroup
// parent and host namespaces. Everything that can be checked without the host is checked
// here: a mistake is InvalidArgument before any pod exists.
func sandboxConfig(cfg *runtimeapi.PodSandboxConfig, handler string, ch sandboxChoice) (*stage0.SandboxConfig, *sandbox, error) {
	md := cfg.GetMetadata()
	if md.GetName() == "" || md.GetNamespace() == "" || md.GetUid() == "" {
		return nil, nil, invalidf("sandbox metadata needs a name, a namespace and a uid (got %q, %q, %q)", md.GetName(), md.GetNamespace(), md.GetUid())
	}
	if handler != "" && handler != Owner {
		return nil, nil, invalidf("runtime handler %q: rktlet has only the default one (\"\")", handler)
	}
	sc := cfg.GetLinux().GetSecurityContext()
	ns := sc.GetNamespaceOptions()
	if ns == nil {
		ns = &runtimeapi.NamespaceOption{}
	}
	sb := &sandbox{
		meta:   &runtimeapi.PodSandboxMetadata{Name: md.GetName(), Namespace: md.GetNamespace(), Uid: md.GetUid(), Attempt: md.GetAttempt()},
		labels: maps.Clone(cfg.GetLabels()), annotations: maps.Clone(cfg.GetAnnotations()),
		logDir: cfg.GetLogDirectory(), runtimeHandler: handler,
		namespaces: &runtimeapi.NamespaceOption{Network: ns.GetNetwork(), Pid: ns.GetPid(), Ipc: ns.GetIpc()},
		privileged: sc.GetPrivileged(),
	}
	if sb.logDir != "" && (!path.IsAbs(sb.logDir) || strings.ContainsAny(sb.logDir, ":,\n\x00")) {
		return nil, nil, invalidf("log directory %q: want an absolute path without ':', ',' or newlines", sb.logDir)
	}
	for what, m := range map[string]runtimeapi.NamespaceMode{"network": ns.GetNetwork(), "ipc": ns.GetIpc()} {
		if m != runtimeapi.NamespaceMode_POD && m != runtimeapi.NamespaceMode_NODE {
			return nil, nil, invalidf("%s namespace mode %s: a pod has its own (POD) or the host's (NODE)", what, m)
		}
	}
	if m := ns.GetPid(); m != runtimeapi.NamespaceMode_POD && m != runtimeapi.NamespaceMode_CONTAINER && m != runtimeapi.NamespaceMode_NODE {
		return nil, nil, invalidf("PID namespace mode %s: a pod's is POD, CONTAINER or NODE", m)
	}
	if ns.GetUsernsOptions() != nil && ns.GetUsernsOptions().GetMode() == runtimeapi.NamespaceMode_POD {
		return nil, nil, invalidf("user namespaces for pods are not supported by rktlet")
	}
	hostNet := ns.GetNetwork() == runtimeapi.NamespaceMode_NODE
	out := &stage0.SandboxConfig{
		Annotations:     sandboxAnnotations(sb),
		UserLabels:      maps.Clone(cfg.GetLabels()),
		UserAnnotations: maps.Clone(cfg.GetAnnotations()),
		CgroupParent:    cfg.GetLinux().GetCgroupParent(),
		HostIPC:         ns.GetIpc() == runtimeapi.NamespaceMode_NODE,
		SharedPID:       ns.GetPid() == runtimeapi.NamespaceMode_POD,
		Sysctls:         maps.Clone(cfg.GetLinux().GetSysctls()),
	}
	out.Hostname = cfg.GetHostname()
	switch {
	case hostNet:
		out.Net = []string{"host"}
	case ch.network == "":
		return nil, nil, preconditionf("no CNI network is configured (a config file in the CNI configuration directory, or in /etc/rkt/net.d): pods other than the host's network cannot start")
	default:
		// Kubernetes' CNI arguments, which plugins that care read (IgnoreUnknown is set).
		out.Net = []string{fmt.Sprintf("%s:K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_UID=%s",
			ch.network, argValue(md.GetNamespace()), argValue(md.GetName()), argValue(md.GetUid()))}
		ports, err := portMappings(cfg.GetPortMappings())
		if err != nil {
			return nil, nil, err
		}
		out.Ports = ports
	}
	if err := dnsConfig(out, cfg.GetDnsConfig()); err != nil {
		return nil, nil, err
	}
	if err := out.Validate(); err != nil {
		return nil, nil, invalidf("sandbox %s: %v", sb.fullName(), err)
	}
	// What stage0 checks when it makes the pod, checked here to say InvalidArgument.
	opts := stage1.Options{Net: strings.Join(out.Net, ","), Hostname: out.Hostname, DNS: out.DNS,
		HostIPC: out.HostIPC, Sysctls: out.Sysctls, CgroupParent: out.CgroupParent}
	if err := opts.Validate(); err != nil {
		return nil, nil, invalidf("sandbox %s: %v", sb.fullName(), err)
	}
	return out, sb, nil
}

// argValue keeps a CNI argument value from breaking the --net syntax (NAME:K=V;K=V);
// Kubernetes' names and UIDs have none of these characters.
func argValue(s string) string {
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune(";,:= ", r) {
			return '_'
		}
		return r
	}, s)
}

// portMappings are the CRI's port mappings in rkt's sandbox syntax; a mapping without a
// host port forwards nothing and is left out, as in containerd.
func portMappings(pms []*runtimeapi.PortMapping) ([]string, error) {
	var out []string
	for i, pm := range pms {
		if pm.GetHostPort() <= 0 {
			continue
		}
		var proto string
		switch pm.GetProtocol() {
		case runtimeapi.Protocol_TCP:
			proto = "tcp"
		case runtimeapi.Protocol_UDP:
			proto = "udp"
		default:
			return nil, invalidf("port mapping %d: protocol %s is not supported (tcp and udp are)", i, pm.GetProtocol())
		}
		host := "0.0.0.0"
		if ip := pm.GetHostIp(); ip != "" {
			a, err := netip.ParseAddr(ip)
			if err != nil {
				return nil, invalidf("port mapping %d: host IP %q: %v", i, ip, err)
			}
			host = a.String()
			if a.Is6() {
				host = "[" + host + "]"
			}
		}
		out = append(out, fmt.Sprintf("p%d:%s:%d:%s:%d", i, proto, pm.GetContainerPort(), host, pm.GetHostPort()))
	}
	return out, nil
}

// dnsConfig sets the pod's resolv.conf: the CRI's servers, searches and options, or the
// host's when the CRI gives none, as containerd does.
func dnsConfig(out *stage0.SandboxConfig, dns *runtimeapi.DNSConfig) error {
	if len(dns.GetServers()) == 0 && len(dns.GetSearches()) == 0 && len(dns.GetOptions()) == 0 {
		out.DNS = []string{"host"}
		return nil
	}
	for _, s := range dns.GetServers() {
		if _, err := netip.ParseAddr(s); err != nil {
			return invalidf("DNS server %q: %v", s, err)
		}
	}
	for _, v := range append(append([]string(nil), dns.GetSearches()...), dns.GetOptions()...) {
		if v == "" || strings.ContainsAny(v, " \t\n\x00") {
			return invalidf("DNS search or option %q: want one word", v)
		}
	}
	// No servers: the network's answer, if any, with these searches and options.
	out.DNS, out.DNSSearch, out.DNSOpt = dns.GetServers(), dns.GetSearches(), dns.GetOptions()
	return nil
}
