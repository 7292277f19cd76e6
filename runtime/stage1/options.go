package stage1

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	cnitypes "github.com/containernetworking/cni/pkg/types"

	"github.com/cairn-os/cairn/runtime/network"
	"github.com/cairn-os/cairn/runtime/pod"
)

// OptionsFile holds the pod-level settings that the appc pod manifest has no field for.
const OptionsFile = "stage1.json"

// Sentinel errors.
var (
	ErrNoVolume = errors.New("no such volume in the pod (add --volume NAME,kind=...)")
)

// NetStateFile, in the pod directory, records the pod's networks for teardown (network.State).
const NetStateFile = "net-state.json"

// Options are a pod's settings from rkt run/prepare beyond the pod manifest.
type Options struct {
	// Net is the --net value: "none" (only loopback), "host" (the host's network namespace),
	// or CNI networks: "default", "all", "net1,net2:IP=10.1.1.7", as network.ParseSelection
	// reads it ("" means default).
	Net string `json:"net"`
	// NetConfDirs are where the pod's network configs come from, highest precedence first.
	NetConfDirs []string `json:"netConfDirs,omitempty"`
	// NetPluginDirs are where CNI plugins are looked up, first match wins.
	NetPluginDirs []string              `json:"netPluginDirs,omitempty"`
	Ports         []network.PortMapping `json:"ports,omitempty"`
	Hostname      string                `json:"hostname,omitempty"`
	DNS           []string              `json:"dns,omitempty"` // "host", "none" or nameserver addresses
	DNSSearch     []string              `json:"dnsSearch,omitempty"`
	DNSOpt        []string              `json:"dnsOpt,omitempty"`
	DNSDomain     string                `json:"dnsDomain,omitempty"`
	// HostsEntries are --hosts-entry values: "host" (the host's /etc/hosts) or IP=HOST.
	HostsEntries []string `json:"hostsEntries,omitempty"`
	Interactive  bool     `json:"interactive,omitempty"`
	NoOverlay    bool     `json:"noOverlay,omitempty"`
	// PrivateUsers (--private-users) runs the pod's apps in a user namespace of their own.
	PrivateUsers *PrivateUsers `json:"privateUsers,omitempty"`
	// InsecureSeccomp (--insecure-options=seccomp) runs apps without a seccomp filter.
	InsecureSeccomp bool `json:"insecureSeccomp,omitempty"`
	// Sandbox says the pod is a sandbox (rkt app sandbox): it starts with no apps, and its
	// supervisor adds and removes them on request (runtime/podapi) and lives on without them.
	Sandbox bool `json:"sandbox,omitempty"`
	// CgroupParent, for a sandbox, is where its cgroup goes (PlanCgroupsIn); "" is under
	// the supervisor's own cgroup.
	CgroupParent string `json:"cgroupParent,omitempty"`
	// HostIPC gives the pod the host's IPC namespace instead of one of its own.
	HostIPC bool `json:"hostIPC,omitempty"`
	// SharedPID, for a sandbox, puts its apps in one PID namespace, held by a pause
	// process (Runner.PauseCommand), instead of one each.
	SharedPID bool `json:"sharedPID,omitempty"`
	// Sysctls are set in the pod's own namespaces when they are made: namespaced ones only
	// (CheckSysctl), as a CRI sandbox asks for them.
	Sysctls map[string]string `json:"sysctls,omitempty"`
	// Apps lists each app's image trees, in pod manifest order.
	Apps []AppImage `json:"apps"`
}

// AppImage is where an app's root filesystem comes from.
type AppImage struct {
	Name    string   `json:"name"`
	ImageID string   `json:"imageID"`
	Layers  []string `json:"layers"` // read-only trees, lowest first
}

// Validate checks options read from disk or built from flags.
func (o *Options) Validate() error {
	sel, err := o.Selection()
	if err != nil {
		return err
	}
	if len(o.Ports) > 0 && sel.Mode != network.Contained {
		return fmt.Errorf("--port needs a contained network, not --net=%s", o.Net)
	}
	for _, h := range o.HostsEntries {
		if h == "host" {
			if len(o.HostsEntries) > 1 {
				return errors.New("--hosts-entry=host cannot be combined with IP=HOST entries")
			}
			continue
		}
		ip, name, ok := strings.Cut(h, "=")
		if _, err := netip.ParseAddr(ip); !ok || err != nil || name == "" || strings.ContainsAny(name, " \t\n#,=") {
			return fmt.Errorf("--hosts-entry=%s: want host or IP=HOSTNAME", h)
		}
	}
	for _, d := range o.DNS {
		if d == "host" || d == "none" {
			if len(o.DNS) > 1 {
				return fmt.Errorf("--dns=%s cannot be combined with other --dns values", d)
			}
			continue
		}
		if _, err := netip.ParseAddr(d); err != nil {
			return fmt.Errorf("--dns=%s: not host, none or an IP address", d)
		}
	}
	if o.PrivateUsers != nil {
		if err := o.PrivateUsers.Validate(); err != nil {
			return err
		}
	}
	if err := CheckCgroupParent(o.CgroupParent); err != nil {
		return fmt.Errorf("--cgroup-parent: %w", err)
	}
	for k, v := range o.Sysctls {
		if err := CheckSysctl(k, v, sel.Mode != network.Host, !o.HostIPC); err != nil {
			return err
		}
	}
	if o.Hostname != "" && (len(o.Hostname) > 64 || strings.ContainsAny(o.Hostname, " /\n\t\x00")) {
		return fmt.Errorf("--hostname %q: not a valid host name", o.Hostname)
	}
	for _, a := range o.Apps {
		if len(a.Layers) == 0 {
			return fmt.Errorf("app %s: image has no layers", a.Name)
		}
		for _, l := range a.Layers {
			if !filepath.IsAbs(l) || strings.ContainsAny(l, ":,") {
				return fmt.Errorf("app %s: layer path %q must be absolute and free of ':' and ','", a.Name, l)
			}
		}
	}
	return nil
}

// Write stores the options in the pod directory.
func (o *Options) Write(podDir string) error {
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return err
	}
	return pod.WriteStateFile(filepath.Join(podDir, OptionsFile), b, 0o644)
}

// ReadOptions loads a pod's options.
func ReadOptions(podDir string) (*Options, error) {
	b, err := os.ReadFile(filepath.Join(podDir, OptionsFile))
	if err != nil {
		return nil, err
	}
	var o Options
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("%s: %w", OptionsFile, err)
	}
	return &o, o.Validate()
}

// Selection is the pod's --net value, parsed.
func (o *Options) Selection() (network.Selection, error) {
	var vals []string
	if o.Net != "" {
		vals = []string{o.Net}
	}
	return network.ParseSelection(vals)
}

// HostsFile is the pod's /etc/hosts: localhost, the pod's name, and the --hosts-entry IP=HOST
// pairs, one line per address with its names in the order given, as rkt wrote them.
func HostsFile(hostname string, entries []string) []byte {
	b := "127.0.0.1\tlocalhost localhost.localdomain " + hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	var ips []string
	names := map[string][]string{}
	for _, e := range entries {
		if ip, name, ok := strings.Cut(e, "="); ok {
			if _, seen := names[ip]; !seen {
				ips = append(ips, ip)
			}
			names[ip] = append(names[ip], name)
		}
	}
	for _, ip := range ips {
		b += ip + "\t" + strings.Join(names[ip], " ") + "\n"
	}
	return []byte(b)
}

// ResolvConf is the pod's generated /etc/resolv.conf in rkt's format, or nil when the pod
// keeps the image's own (or gets the host's with --dns=host). As in rkt, --dns addresses (with
// --dns-search, --dns-opt, --dns-domain) come first, then what a CNI network returned, unless
// --dns=none.
func ResolvConf(o *Options, cni *cnitypes.DNS) []byte {
	ns, search, opts, domain := o.DNS, o.DNSSearch, o.DNSOpt, o.DNSDomain
	if len(ns) == 1 && (ns[0] == "host" || ns[0] == "none") {
		return nil
	}
	if len(ns) == 0 {
		if cni == nil || len(cni.Nameservers) == 0 {
			return nil
		}
		ns = cni.Nameservers
		if len(search) == 0 {
			search = cni.Search
		}
		if len(opts) == 0 {
			opts = cni.Options
		}
		if domain == "" {
			domain = cni.Domain
		}
	}
	var b strings.Builder
	b.WriteString("# Generated by rkt run\n\n")
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	for _, d := range ns {
		fmt.Fprintf(&b, "nameserver %s\n", d)
	}
	if len(opts) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(opts, " "))
	}
	if domain != "" {
		fmt.Fprintf(&b, "domain %s\n", domain)
	}
	return []byte(b.String())
}

// ImagesInUse lists the image IDs that the pods in podsDir (<dir>/pods) were made from, so that
// image gc keeps them (the store's InUse hook). Pods being deleted count until they are gone.
func ImagesInUse(podsDir string) ([]string, error) {
	seen := map[string]bool{}
	var ids []string
	err := eachPodOptions(podsDir, func(o *Options) {
		for _, a := range o.Apps {
			if a.ImageID != "" && !seen[a.ImageID] {
				seen[a.ImageID] = true
				ids = append(ids, a.ImageID)
			}
		}
	})
	return ids, err
}

// uidShiftsInUse returns the --private-users blocks of the pods that are not gone yet: their
// files (upper dirs, empty volumes) still belong to them.
func uidShiftsInUse(podsDir string) (map[uint32]bool, error) {
	shifts := map[uint32]bool{}
	err := eachPodOptions(podsDir, func(o *Options) {
		if o.PrivateUsers != nil {
			shifts[o.PrivateUsers.Shift] = true
		}
	})
	return shifts, err
}

// eachPodOptions calls fn with the options of every pod past its embryo phase.
func eachPodOptions(podsDir string, fn func(*Options)) error {
	for _, ph := range []string{"prepare", "prepared", "run", "exited-garbage", "garbage"} {
		ents, err := os.ReadDir(filepath.Join(podsDir, ph))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return err
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(podsDir, ph, e.Name(), OptionsFile))
			if err != nil {
				continue // an embryo, or a pod being removed
			}
			var o Options
			if json.Unmarshal(b, &o) != nil {
				continue
			}
			fn(&o)
		}
	}
	return nil
}
