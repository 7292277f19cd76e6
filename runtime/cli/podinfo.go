package cli

import (
	"maps"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/appc/spec/schema"

	"github.com/cairn-os/cairn/runtime/network"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// podInfo is what rkt list and rkt status know of a pod, read from its directory at one
// moment.
type podInfo struct {
	UUID  string
	State pod.State
	// Orphaned: rkt run was killed and the apps run on (pod.Pod.Orphaned).
	Orphaned bool
	Created  time.Time
	Started  time.Time
	// Marked is when gc moved the pod to exited-garbage: the best guess at when the apps of
	// a pod whose rkt run was killed ended.
	Marked time.Time
	// PID is rkt run's, from the pod's pid file (kept after the pod exited, as rkt keeps
	// it); for an orphaned pod, the first running app's.
	PID             int
	Nets            []podNet
	Apps            []podApp
	UserAnnotations map[string]string
	UserLabels      map[string]string
}

// podNet is one address of the pod on one network.
type podNet struct {
	Name   string
	IfName string
	IP     netip.Prefix
	Args   string // CNI_ARGS: K=V;K=V
}

// appState is an app's state in rkt's api/v1.
type appState string

const (
	appUnknown appState = "unknown"
	appCreated appState = "created"
	appRunning appState = "running"
	appExited  appState = "exited"
)

type podApp struct {
	Name      string
	ImageName string // name:version, as rkt list shows it
	ImageID   string
	State     appState
	Exit      *pod.AppExit
	Mounts    []mountJSON
	// The app's own times (its pod's for an app of rkt run) and, for an app of a
	// sandbox, why it exited, its pid while it runs, its log.
	Created, Started, Finished time.Time
	Reason                     string
	PID                        int
	LogPath                    string
	Supervised                 bool // a sandbox's app: the times are its own

	UserAnnotations map[string]string
	UserLabels      map[string]string
}

// readPod reads what there is to know about p; a pod whose manifest is missing or broken (an
// embryo, a prepare that died early) is shown without apps.
func readPod(p *pod.Pod) podInfo {
	pi := podInfo{UUID: p.UUID, State: p.State()}
	pi.Orphaned = pi.State == pod.Running && p.Orphaned()
	pi.Created = p.Time(pod.CreatedFile)
	pi.Started = p.Time(pod.StartedFile)
	if p.Phase == pod.PhaseExitedGarbage {
		pi.Marked, _ = p.ChangeTime()
	}
	pi.PID, _ = p.PID()
	if st, err := network.LoadState(filepath.Join(p.Path(), stage1.NetStateFile)); err == nil {
		pi.Nets = podNets(st)
	}
	m, err := p.Manifest()
	if err != nil {
		return pi
	}
	pi.UserAnnotations = stringMap(m.UserAnnotations)
	pi.UserLabels = stringMap(m.UserLabels)
	apps, err := p.AppsIn(pi.State)
	if err != nil {
		return pi
	}
	for _, pa := range apps {
		pi.Apps = append(pi.Apps, appInfo(m, pa))
	}
	if pi.Orphaned {
		pi.PID = orphanPID(p.Path(), pi.Apps)
	}
	return pi
}

// orphanPID is the pid of the first app of an orphaned pod that still runs, else of any
// process left in its cgroups.
func orphanPID(podDir string, apps []podApp) int {
	for _, a := range apps {
		if pid, err := stage1.AppPID(podDir, a.Name); err == nil {
			return pid
		}
	}
	if pids, err := stage1.PodProcesses(podDir); err == nil && len(pids) > 0 {
		return pids[0]
	}
	return 0
}

// appInfo is what rkt list, status and app status show of one app of the pod manifest m.
func appInfo(m *schema.PodManifest, pa pod.App) podApp {
	ra := pa.Runtime
	a := podApp{Name: string(ra.Name), ImageName: imageName(ra.Image), ImageID: ra.Image.ID.String(), State: appState(pa.State),
		Created: pa.CreatedAt, Started: pa.StartedAt, Finished: pa.FinishedAt, Reason: pa.Reason, PID: pa.PID, LogPath: pa.LogPath, Supervised: pa.Supervised}
	if id, ok := ra.Annotations.Get(stage1.AnnotationImageID); ok {
		a.ImageID = id
	}
	if ra.App != nil {
		a.UserAnnotations = stringMap(ra.App.UserAnnotations)
		a.UserLabels = stringMap(ra.App.UserLabels)
	}
	a.Mounts = appMounts(m, ra)
	if pa.ExitKnown {
		a.Exit = &pod.AppExit{ExitCode: pa.ExitCode, Signal: pa.Signal, FinishedAt: pa.FinishedAt}
	}
	return a
}

// imageName is the image's name with its version label, as rkt list shows it
// (coreos.com/etcd:v2.0.9).
func imageName(ri schema.RuntimeImage) string {
	if ri.Name == nil {
		return ""
	}
	n := ri.Name.String()
	if v, ok := ri.Labels.Get("version"); ok && v != "" {
		n += ":" + v
	}
	return n
}

func podNets(st *network.State) []podNet {
	var nets []podNet
	for _, a := range st.Nets {
		var args []string
		for _, kv := range a.Args {
			args = append(args, kv[0]+"="+kv[1])
		}
		for _, ip := range a.IPs {
			pfx, err := netip.ParsePrefix(ip)
			if err != nil {
				addr, aerr := netip.ParseAddr(ip)
				if aerr != nil {
					continue
				}
				pfx = netip.PrefixFrom(addr, addr.BitLen())
			}
			nets = append(nets, podNet{Name: a.Name, IfName: a.IfName, IP: pfx, Args: strings.Join(args, ";")})
		}
	}
	return nets
}

// fmtNets is the NETWORKS column and status's networks=: default:ip4=172.16.28.7, as rkt
// writes it (ip6= for an IPv6 address, which rkt did not have).
func fmtNets(nets []podNet) string {
	parts := make([]string, 0, len(nets))
	for _, n := range nets {
		kind := "ip4"
		if n.IP.Addr().Is6() {
			kind = "ip6"
		}
		parts = append(parts, n.Name+":"+kind+"="+n.IP.Addr().String())
	}
	return strings.Join(parts, ", ")
}

func appMounts(m *schema.PodManifest, ra schema.RuntimeApp) []mountJSON {
	var out []mountJSON
	for _, mnt := range ra.Mounts {
		mj := mountJSON{Name: string(mnt.Volume), ContainerPath: mnt.Path}
		v := mnt.AppVolume
		if v == nil {
			for i := range m.Volumes {
				if m.Volumes[i].Name == mnt.Volume {
					v = &m.Volumes[i]
				}
			}
		}
		if v != nil {
			mj.HostPath = v.Source
			if v.ReadOnly != nil {
				mj.ReadOnly = *v.ReadOnly
			}
		}
		out = append(out, mj)
	}
	return out
}

func stringMap[M ~map[string]string](m M) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	maps.Copy(out, m)
	return out
}

// The JSON of rkt list and rkt status --format=json: rkt's api/v1 Pod, App, Mount and
// NetInfo, field for field, and a few fields of Cairn's that rkt did not have (pid,
// exit_code, an app's image name and signal).

type podJSON struct {
	UUID            string            `json:"name"`
	State           string            `json:"state"`
	Networks        []netInfoJSON     `json:"networks,omitempty"`
	AppNames        []string          `json:"app_names,omitempty"`
	Apps            []appJSON         `json:"apps,omitempty"`
	CreatedAt       *int64            `json:"created_at,omitempty"` // Unix seconds, as rkt's
	StartedAt       *int64            `json:"started_at,omitempty"`
	UserAnnotations map[string]string `json:"user_annotations,omitempty"`
	UserLabels      map[string]string `json:"user_labels,omitempty"`

	PID      int  `json:"pid,omitempty"`
	ExitCode *int `json:"exit_code,omitempty"` // the first app's, once the pod has exited
}

type appJSON struct {
	Name            string            `json:"name"`
	State           appState          `json:"state"`
	CreatedAt       *int64            `json:"created_at,omitempty"` // Unix nanoseconds, as rkt's
	StartedAt       *int64            `json:"started_at,omitempty"`
	FinishedAt      *int64            `json:"finished_at,omitempty"`
	ExitCode        *int              `json:"exit_code,omitempty"`
	ImageID         string            `json:"image_id"`
	Mounts          []mountJSON       `json:"mounts,omitempty"`
	UserAnnotations map[string]string `json:"user_annotations,omitempty"`
	UserLabels      map[string]string `json:"user_labels,omitempty"`

	Image   string `json:"image,omitempty"`
	Signal  string `json:"signal,omitempty"`
	Reason  string `json:"reason,omitempty"`
	PID     int    `json:"pid,omitempty"`
	LogPath string `json:"log_path,omitempty"`
}

type mountJSON struct {
	Name          string `json:"name"`
	ContainerPath string `json:"container_path"`
	HostPath      string `json:"host_path"`
	ReadOnly      bool   `json:"read_only"`
}

// netInfoJSON is rkt's netinfo.NetInfo. Cairn keeps no config path or plugin path per
// network, so those two are empty.
type netInfoJSON struct {
	NetName    string `json:"netName"`
	ConfPath   string `json:"netConf"`
	PluginPath string `json:"pluginPath"`
	IfName     string `json:"ifName"`
	IP         string `json:"ip"`
	Args       string `json:"args"`
	Mask       string `json:"mask"`
}

func unixTime(t time.Time, nano bool) *int64 {
	if t.IsZero() {
		return nil
	}
	v := t.Unix()
	if nano {
		v = t.UnixNano()
	}
	return &v
}

func (pi *podInfo) json() podJSON {
	pj := podJSON{
		UUID: pi.UUID, State: string(pi.State), PID: pi.PID,
		CreatedAt: unixTime(pi.Created, false), StartedAt: unixTime(pi.Started, false),
		UserAnnotations: pi.UserAnnotations, UserLabels: pi.UserLabels,
	}
	for _, n := range pi.Nets {
		bits := n.IP.Addr().BitLen()
		pj.Networks = append(pj.Networks, netInfoJSON{
			NetName: n.Name, IfName: n.IfName, IP: n.IP.Addr().String(), Args: n.Args,
			Mask: net.IP(net.CIDRMask(n.IP.Bits(), bits)).String(),
		})
	}
	for i, a := range pi.Apps {
		if !a.Supervised {
			// An app of rkt run has its pod's times, as in rkt.
			if a.Created.IsZero() && a.State != appUnknown {
				a.Created = pi.Created
			}
			if a.Started.IsZero() && (a.State == appRunning || a.State == appExited) {
				a.Started = pi.Started
			}
			if a.Finished.IsZero() && a.State == appExited {
				a.Finished = pi.Marked
			}
		}
		aj := a.json()
		if a.Exit != nil && i == 0 && pi.State != pod.Running {
			pj.ExitCode = aj.ExitCode
		}
		pj.AppNames = append(pj.AppNames, a.Name)
		pj.Apps = append(pj.Apps, aj)
	}
	return pj
}

func (a *podApp) json() appJSON {
	aj := appJSON{
		Name: a.Name, State: a.State, ImageID: a.ImageID, Image: a.ImageName, Mounts: a.Mounts,
		UserAnnotations: a.UserAnnotations, UserLabels: a.UserLabels,
		CreatedAt: unixTime(a.Created, true), StartedAt: unixTime(a.Started, true),
		Reason: a.Reason, PID: a.PID, LogPath: a.LogPath,
	}
	switch {
	case a.Exit != nil:
		code := a.Exit.ExitCode
		aj.ExitCode, aj.Signal, aj.FinishedAt = &code, a.Exit.Signal, unixTime(a.Exit.FinishedAt, true)
	case a.State == appExited:
		aj.FinishedAt = unixTime(a.Finished, true)
	}
	return aj
}
