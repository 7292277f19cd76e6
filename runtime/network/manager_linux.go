package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/internal/mount"
	"github.com/cairn-os/cairn/runtime/pod"
)

// Manager sets up and tears down pods' networks.
type Manager struct {
	ConfDirs   []string // network configs, highest precedence first: /etc/rkt/net.d, /usr/lib/rkt/net.d
	PluginDirs []string // where CNI plugins are looked up (CNI_PATH)
	NetnsDir   string   // where pod network namespaces are bind-mounted (/run/netns, as `ip netns`)
	CacheDir   string   // libcni's result cache ("" for its default, /var/lib/cni)
	// StateFile, when set, receives the state before every plugin call and at the end, so
	// that a setup killed half way can still be torn down by whoever finds the file.
	StateFile string
	// HostNetnsPin, when set, is where setup bind-mounts the network namespace it runs in, the
	// one that holds the pod's host side (veths, routes, masquerade and port-forward rules), so
	// that a teardown run from another namespace acts in this one.
	HostNetnsPin string
	Log          *slog.Logger
}

func (m *Manager) save(st *State) error {
	if m.StateFile == "" {
		return nil
	}
	return st.Save(m.StateFile)
}

// DefaultPluginDirs are searched for CNI plugins: Cairn's own, then the distribution's.
var DefaultPluginDirs = []string{"/usr/lib/rkt/plugins/net", "/usr/lib/cni", "/opt/cni/bin"}

// PortMapping forwards a host port to a pod port.
type PortMapping struct {
	Name          string `json:"name"`
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Phase is how far a network's ADD got.
type Phase string

const (
	// Adding is recorded before ADD: the ADD may have been cut short, and what it made is
	// unknown. A state written before phases were recorded reads as Adding too.
	Adding Phase = ""
	// Added: ADD succeeded.
	Added Phase = "added"
	// AddFailed: ADD returned an error; the plugins undo what they did themselves.
	AddFailed Phase = "failed"
)

// Attachment is a pod's membership of one network.
type Attachment struct {
	Name    string        `json:"name"`
	IfName  string        `json:"ifName"`
	Conf    string        `json:"conf"` // the config list as applied (with portmap if chained)
	Args    [][2]string   `json:"args,omitempty"`
	Phase   Phase         `json:"phase,omitempty"`
	IPs     []string      `json:"ips"`
	Gateway string        `json:"gateway,omitempty"`
	DNS     *cnitypes.DNS `json:"dns,omitempty"`
	// HostLinks are the interfaces outside the pod that ADD reported (a veth's host end, a
	// bridge). Teardown deletes the pod's own among them (ownLinks), so that the host side
	// goes even when something else keeps the pod's namespace alive.
	HostLinks []HostLink `json:"hostLinks,omitempty"`
	// Masq says that Cairn masquerades this attachment's addresses (masq_linux.go) in place
	// of the plugin's "ipMasq".
	Masq bool `json:"masq,omitempty"`
}

// State is what teardown needs, kept in the pod's directory.
type State struct {
	PodID string `json:"podID"`
	NetNS string `json:"netns"`
	// OwnNetNS says that Setup made the namespace, so Teardown removes it; a namespace that
	// the caller made (Attach) is the caller's to remove.
	OwnNetNS bool          `json:"ownNetns,omitempty"`
	Nets     []Attachment  `json:"nets"`
	Ports    []PortMapping `json:"ports,omitempty"`
	// PluginDirs are where the plugins were found, so that teardown finds the same ones.
	PluginDirs []string `json:"pluginDirs,omitempty"`
	// HostNetNS pins the network namespace that setup ran in (Manager.HostNetnsPin), and
	// HostNetNSID names it as /proc/PID/ns/net does ("net:[4026531840]").
	HostNetNS   string `json:"hostNetns,omitempty"`
	HostNetNSID string `json:"hostNetnsID,omitempty"`
}

// Save writes the state atomically (temp file and rename), without fsync, like the pod's other
// files: what it records (namespace, veths, rules, leases) matters while the host is up, and
// the pod directory that holds it is not made durable either. A sync here cost two disk
// flushes on every pod start, hundreds of milliseconds when the disk is busy.
func (s *State) Save(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return pod.WriteStateFile(path, b, 0o644)
}

// LoadState reads a state saved by Save.
func LoadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("network state %s: %w", path, err)
	}
	return &s, nil
}

// netnsFreeDel are plugins whose DEL releases everything without the pod's network namespace
// (its interfaces go with the namespace), as long as they masquerade nothing themselves.
var netnsFreeDel = map[string]bool{"ptp": true, "bridge": true, "macvlan": true, "ipvlan": true, "portmap": true}

// TeardownNeedsNetns reports whether some plugin must see the pod's network namespace to undo
// what it did: a plugin outside netnsFreeDel, one that masquerades by itself (it finds the
// addresses whose rules it removes on the pod's interface), or any plugin whose ADD did not
// succeed (it may have made interfaces that no record names). When it is false, the namespace
// can be dropped first, and teardown deletes the host ends of the pod's links itself.
func (s *State) TeardownNeedsNetns() bool {
	for _, a := range s.Nets {
		if a.Phase != Added {
			return true
		}
		var list struct {
			Plugins []struct {
				Type   string `json:"type"`
				IPMasq bool   `json:"ipMasq"`
				// bridge's MAC spoof check is an nftables chain that its DEL removes only
				// when it sees the namespace.
				MacSpoofChk bool `json:"macspoofchk"`
			} `json:"plugins"`
		}
		if err := json.Unmarshal([]byte(a.Conf), &list); err != nil || len(list.Plugins) == 0 {
			return true
		}
		for _, p := range list.Plugins {
			if !netnsFreeDel[p.Type] || p.IPMasq || p.MacSpoofChk {
				return true
			}
		}
	}
	return false
}

func (m *Manager) pluginDirs() []string {
	if len(m.PluginDirs) == 0 {
		return DefaultPluginDirs
	}
	return m.PluginDirs
}

func (m *Manager) cni() *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir(m.pluginDirs(), m.CacheDir, nil)
}

func (m *Manager) log() *slog.Logger {
	if m.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Log
}

// NetnsPath is where the network namespace of pod id is bind-mounted.
func (m *Manager) NetnsPath(podID string) string {
	dir := m.NetnsDir
	if dir == "" {
		dir = "/run/netns"
	}
	return filepath.Join(dir, "rkt-"+podID)
}

// loopback brings up lo in the pod's namespace with the loopback plugin, as rkt did.
var loopbackConf = `{"cniVersion":"0.4.0","name":"lo","plugins":[{"type":"loopback"}]}`

// Setup creates the pod's network namespace and joins it to the selected networks, in
// file-name order, with interfaces eth0, eth1, ... . Ports are forwarded through the first
// masquerading network, else the last one (rkt's rule). On any failure everything done so far
// is undone and the error names the network.
func (m *Manager) Setup(ctx context.Context, podID string, sel Selection, ports []PortMapping) (*State, error) {
	if sel.Mode == Host {
		return &State{PodID: podID}, nil
	}
	nets, err := m.resolve(sel, ports) // before anything is made
	if err != nil {
		return nil, err
	}
	path := m.NetnsPath(podID)
	if err := createNetns(path); err != nil {
		return nil, fmt.Errorf("pod %s: create network namespace: %w", podID, err)
	}
	st, err := m.attach(ctx, podID, path, true, nets, sel, ports)
	if err != nil {
		if rerr := removeNetns(path); rerr != nil {
			m.log().Warn("removing the network namespace of a failed setup", "pod", podID, "err", rerr)
		}
		return nil, err
	}
	return st, nil
}

// Attach joins an existing network namespace (the pod sandbox's, bind-mounted at netns, with
// its loopback already up) to the selected networks, as Setup does. Teardown leaves that
// namespace in place.
func (m *Manager) Attach(ctx context.Context, podID, netns string, sel Selection, ports []PortMapping) (*State, error) {
	if sel.Mode == Host {
		return &State{PodID: podID}, nil
	}
	nets, err := m.resolve(sel, ports)
	if err != nil {
		return nil, err
	}
	return m.attach(ctx, podID, netns, false, nets, sel, ports)
}

func (m *Manager) resolve(sel Selection, ports []PortMapping) ([]*Net, error) {
	all, err := LoadAll(m.ConfDirs)
	if err != nil {
		return nil, err
	}
	nets, err := Resolve(all, sel)
	if err != nil {
		return nil, err
	}
	if len(ports) > 0 && len(nets) == 0 {
		return nil, errors.New("port forwards need a network (not --net=none)")
	}
	return nets, nil
}

func (m *Manager) attach(ctx context.Context, podID, netns string, own bool, nets []*Net, sel Selection, ports []PortMapping) (st *State, err error) {
	st = &State{PodID: podID, NetNS: netns, OwnNetNS: own, Ports: ports, PluginDirs: m.pluginDirs()}
	defer func() {
		if err != nil {
			if terr := m.Teardown(context.WithoutCancel(ctx), st); terr != nil {
				m.log().Warn("undoing a failed network setup", "pod", podID, "err", terr)
			}
		}
	}()
	if m.HostNetnsPin != "" {
		if st.HostNetNSID, err = pinNetns(m.HostNetnsPin); err != nil {
			return st, fmt.Errorf("pod %s: %w", podID, err)
		}
		st.HostNetNS = m.HostNetnsPin
	}
	if own {
		// A namespace made here has lo down; a sandbox brings up its own.
		lo, _ := libcni.NetworkConfFromBytes([]byte(loopbackConf))
		if _, err := m.cni().AddNetworkList(ctx, lo, &libcni.RuntimeConf{ContainerID: podID, NetNS: st.NetNS, IfName: "lo"}); err != nil {
			return st, fmt.Errorf("pod %s: loopback: %w", podID, err)
		}
	}
	fwd := -1
	if len(ports) > 0 {
		fwd = len(nets) - 1
		for i, n := range nets {
			masq, err := n.Masq()
			if err != nil {
				return st, fmt.Errorf("pod %s: %w", podID, err)
			}
			if masq {
				fwd = i
				break
			}
		}
	}
	args := map[string][][2]string{}
	for _, r := range sel.Nets {
		args[r.Name] = r.Args
	}
	for i, n := range nets {
		list := n.List
		b, masq, err := takeOverMasq(list.Bytes)
		if err != nil {
			return st, fmt.Errorf("pod %s: network %s: %w", podID, n.Name, err)
		}
		if masq {
			if list, err = libcni.NetworkConfFromBytes(b); err != nil {
				return st, fmt.Errorf("pod %s: network %s: %w", podID, n.Name, err)
			}
		}
		rt := &libcni.RuntimeConf{ContainerID: podID, NetNS: st.NetNS, IfName: fmt.Sprintf("eth%d", i), Args: args[n.Name]}
		if len(rt.Args) > 0 {
			rt.Args = append([][2]string{{"IgnoreUnknown", "1"}}, rt.Args...)
		}
		if i == fwd {
			if list, err = withPortmap(list); err != nil {
				return st, fmt.Errorf("pod %s: network %s: %w", podID, n.Name, err)
			}
			pm := make([]map[string]any, 0, len(ports))
			for _, p := range ports {
				e := map[string]any{"hostPort": p.HostPort, "containerPort": p.ContainerPort, "protocol": p.Protocol}
				if p.HostIP != "" {
					e["hostIP"] = p.HostIP
				}
				pm = append(pm, e)
			}
			rt.CapabilityArgs = map[string]any{"portMappings": pm}
		}
		// Recorded before ADD, so that a failed or interrupted ADD is still deleted (CNI DEL
		// is idempotent).
		st.Nets = append(st.Nets, Attachment{Name: n.Name, IfName: rt.IfName, Conf: string(list.Bytes), Args: rt.Args, Masq: masq})
		if err := m.save(st); err != nil {
			return st, err
		}
		m.log().Debug("loading network", "pod", podID, "net", n.Name, "type", pluginTypes(list), "conf", n.Path)
		start := time.Now()
		res, err := m.cni().AddNetworkList(ctx, list, rt)
		a := &st.Nets[len(st.Nets)-1]
		if err != nil {
			err = fmt.Errorf("pod %s: network %s (%s): %w", podID, n.Name, n.Path, err)
			if ctx.Err() == nil {
				// Returned, not cut short: the state says so, for teardown (see del).
				a.Phase = AddFailed
				if serr := m.save(st); serr != nil {
					err = errors.Join(err, serr)
				}
			}
			return st, err
		}
		a.Phase = Added
		if r, err := current.NewResultFromResult(res); err == nil {
			for _, ip := range r.IPs {
				a.IPs = append(a.IPs, ip.Address.String())
				if ip.Gateway != nil && a.Gateway == "" {
					a.Gateway = ip.Gateway.String()
				}
			}
			for _, i := range r.Interfaces {
				if i.Sandbox == "" {
					a.HostLinks = append(a.HostLinks, HostLink{Name: i.Name, MAC: i.Mac})
				}
			}
			if len(r.DNS.Nameservers) > 0 {
				a.DNS = &r.DNS
			}
		}
		if masq {
			if err := addMasq(podID, n.Name, rt.IfName, a.IPs); err != nil {
				return st, fmt.Errorf("pod %s: network %s: %w", podID, n.Name, err)
			}
		}
		m.log().Debug("joined network", "pod", podID, "net", n.Name, "if", rt.IfName, "ips", a.IPs, "took", time.Since(start))
	}
	return st, m.save(st)
}

// pluginTypes are the types of a network's plugins, in their order: what --debug says it loads.
func pluginTypes(list *libcni.NetworkConfigList) string {
	ts := make([]string, 0, len(list.Plugins))
	for _, p := range list.Plugins {
		ts = append(ts, p.Network.Type)
	}
	return strings.Join(ts, ",")
}

// withPortmap chains the portmap plugin after a network's plugins, unless the network
// chains one itself (as the config lists written for Kubernetes do).
func withPortmap(list *libcni.NetworkConfigList) (*libcni.NetworkConfigList, error) {
	for _, p := range list.Plugins {
		if p.Network.Type == "portmap" {
			return list, nil
		}
	}
	var raw map[string]any
	if err := json.Unmarshal(list.Bytes, &raw); err != nil {
		return nil, err
	}
	if v, _ := raw["cniVersion"].(string); v == "" || v == "0.1.0" || v == "0.2.0" || v == "0.3.0" {
		raw["cniVersion"] = "0.4.0" // chaining needs prevResult
	}
	plugins, _ := raw["plugins"].([]any)
	raw["plugins"] = append(plugins, map[string]any{"type": "portmap", "snat": true, "capabilities": map[string]any{"portMappings": true}})
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	return libcni.NetworkConfFromBytes(b)
}

// Teardown leaves every network in reverse order, then removes the namespace. For each
// network it removes the masquerade rules and the host ends of the pod's links itself, then
// runs CNI DEL, which releases the addresses and port-forward rules: an address is free for
// the next pod only once nothing routes it to this one, even when another mount namespace
// keeps this pod's network namespace alive. All of it happens in the network namespace that
// setup ran in (State.HostNetNS), wherever Teardown runs. It is idempotent and goes on past
// failures, returning them all, so that gc can retry a half torn-down pod.
func (m *Manager) Teardown(ctx context.Context, st *State) error {
	if st == nil || st.NetNS == "" {
		return nil
	}
	if len(st.PluginDirs) > 0 && len(m.PluginDirs) == 0 {
		m = &Manager{PluginDirs: st.PluginDirs, CacheDir: m.CacheDir, Log: m.Log}
	}
	host, err := m.hostNetns(st)
	if err != nil {
		return fmt.Errorf("pod %s: network teardown: %w", st.PodID, err)
	}
	var errs []error
	if err := inNetns(host, func() error { return m.leave(ctx, st) }); err != nil {
		errs = append(errs, err)
	}
	if st.OwnNetNS {
		if err := removeNetns(st.NetNS); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 && st.HostNetNS != "" {
		// Kept until everything is undone: a retry must find the namespace again.
		if err := removeNetns(st.HostNetNS); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("pod %s: network teardown: %w", st.PodID, errors.Join(errs...))
	}
	return nil
}

// hostNetns is the namespace teardown must enter: the pinned one when it is not the caller's,
// else "" (stay). A pin that is gone (a reboot, or an unmount by hand) leaves nothing to enter:
// the namespace went with it, or can no longer be found, and so did its links and rules.
func (m *Manager) hostNetns(st *State) (string, error) {
	if st.HostNetNS == "" {
		return "", nil
	}
	here, err := threadNetnsID()
	if err != nil {
		return "", err
	}
	if !isNetns(st.HostNetNS) {
		if st.HostNetNSID != here {
			m.log().Debug("the pod's host network namespace is gone, and its links and rules with it",
				"pod", st.PodID, "netns", st.HostNetNSID, "pin", st.HostNetNS)
		}
		return "", nil
	}
	pinned, err := netnsID(st.HostNetNS)
	if err != nil || pinned == here {
		return "", err
	}
	return st.HostNetNS, nil
}

// leave undoes each attachment, last first; the caller is in the pod's host network namespace.
func (m *Manager) leave(ctx context.Context, st *State) error {
	netns := st.NetNS
	if !isNetns(netns) {
		// Gone, or no longer a namespace mount: plugins must still release what lives outside
		// the pod (addresses, rules), and they do so for an empty path.
		netns = ""
	}
	var errs []error
	for _, a := range slices.Backward(st.Nets) {
		list, err := libcni.NetworkConfFromBytes([]byte(a.Conf))
		if err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", a.Name, err))
			continue
		}
		rt := &libcni.RuntimeConf{ContainerID: st.PodID, NetNS: netns, IfName: a.IfName, Args: a.Args}
		if strings.Contains(a.Conf, `"portmap"`) {
			pm := make([]map[string]any, 0, len(st.Ports))
			for _, p := range st.Ports {
				pm = append(pm, map[string]any{"hostPort": p.HostPort, "containerPort": p.ContainerPort, "protocol": p.Protocol})
			}
			rt.CapabilityArgs = map[string]any{"portMappings": pm}
		}
		if a.Masq {
			if err := delMasq(st.PodID, a.Name, a.IfName); err != nil {
				errs = append(errs, fmt.Errorf("network %s: %w", a.Name, err))
			}
		}
		// With the pod's namespace in reach, DEL removes the pod's links (and a plugin that
		// masquerades by itself finds its rules through them); removeHostLinks is then the
		// check that nothing was left. Without it, the host ends go first, before DEL frees
		// the addresses they route.
		if netns == "" {
			if err := removeHostLinks(a); err != nil {
				errs = append(errs, fmt.Errorf("network %s: %w", a.Name, err))
				continue
			}
		}
		start := time.Now()
		if err := m.del(ctx, list, rt, a); err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", a.Name, err))
			continue
		}
		if netns != "" {
			if err := removeHostLinks(a); err != nil {
				errs = append(errs, fmt.Errorf("network %s: %w", a.Name, err))
				continue
			}
		}
		m.log().Debug("left network", "pod", st.PodID, "net", a.Name, "if", a.IfName, "took", time.Since(start))
	}
	return errors.Join(errs...)
}

// del runs CNI DEL for one attachment. A network whose ADD did not succeed may have failed on
// its arguments, which its DEL then cannot parse either (IP=notanip): that DEL is tried again
// without them, which releases what the plugins keep by pod and interface (host-local's
// lease). If that fails too, a failed ADD's plugins undid their own work, so the error is
// only logged; an ADD that was cut short may have left anything, so its error stands.
func (m *Manager) del(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf, a Attachment) error {
	err := m.cni().DelNetworkList(ctx, list, rt)
	if err == nil || a.Phase == Added {
		return err
	}
	if len(rt.Args) > 0 {
		bare := *rt
		bare.Args = nil
		berr := m.cni().DelNetworkList(ctx, list, &bare)
		if berr == nil {
			m.log().Debug("left a network without its arguments", "pod", rt.ContainerID, "net", a.Name, "err", err)
			return nil
		}
		err = errors.Join(err, fmt.Errorf("without its arguments: %w", berr))
	}
	if a.Phase == AddFailed {
		m.log().Warn("a network whose ADD failed could not be deleted either", "pod", rt.ContainerID, "net", a.Name, "err", err)
		return nil
	}
	return err
}

// createNetns makes a new network namespace and bind-mounts it at path. The namespace is made
// on a thread that is thrown away afterwards, so no goroutine ever runs in it by accident.
func createNetns(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return err
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		errc <- mount.Mount{Source: self, Target: path, Flags: unix.MS_BIND}.Apply()
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// isNetns reports whether path is a bind-mounted network namespace (nsfs), not just the empty
// file that was its mount point.
func isNetns(path string) bool {
	var fs unix.Statfs_t
	return unix.Statfs(path, &fs) == nil && fs.Type == unix.NSFS_MAGIC
}

func removeNetns(path string) error {
	if err := mount.Unmount(path, unix.MNT_DETACH); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
