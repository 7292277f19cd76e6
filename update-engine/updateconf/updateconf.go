// Package updateconf reads the update engine's configuration: KEY=VALUE files in the format
// of Container Linux's /etc/coreos/update.conf, layered from the image's defaults to the
// machine's overrides. Unknown keys are kept (and ignored by the engine) so that a CoreOS
// config with keys Cairn does not use still loads.
package updateconf

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultPaths are read in order; a later file overrides a key set by an earlier one. The
// Container Linux path is honoured so that existing configs keep working; Cairn's own
// /etc/cairn/update.conf wins over it.
var DefaultPaths = []string{
	"/usr/share/cairn/update.conf",
	"/etc/coreos/update.conf",
	"/etc/cairn/update.conf",
}

// Reboot strategies (REBOOT_STRATEGY).
const (
	StrategyReboot     = "reboot"
	StrategyEtcdLock   = "etcd-lock"
	StrategyFleetLock  = "fleetlock"
	StrategyOff        = "off"
	StrategyKubernetes = "kubernetes"  // drain the Kubernetes node under a coordination.k8s.io Lease
	StrategyBestEffort = "best-effort" // Container Linux: etcd-lock if etcd is configured, else reboot
)

// Config is the effective configuration.
type Config struct {
	Group          string // GROUP: the Omaha track
	Server         string // SERVER: Omaha endpoint URL
	AppID          string // APP_ID
	Board          string // BOARD
	PublicKeys     string // PUBLIC_KEYS: PEM file or directory of ed25519 keys
	RebootStrategy string // REBOOT_STRATEGY
	WindowStart    string // LOCKSMITHD_REBOOT_WINDOW_START, e.g. "Thu 04:00" or "04:00"
	WindowLength   string // LOCKSMITHD_REBOOT_WINDOW_LENGTH, e.g. "1h30m"
	EtcdEndpoints  []string
	LockGroup      string // LOCKSMITHD_GROUP
	FleetLockURL   string // FLEETLOCK_URL
	// PodsCommand (PODS_COMMAND, split at spaces) lists the machine's pods as JSON in rkt
	// list's format, for the update server; empty: no pods are reported.
	PodsCommand []string
	// ProgressInterval (PROGRESS_INTERVAL, a duration of at least 1s, or 0) is how often the
	// update server is told an update's progress while it is downloaded and written; 0: never.
	ProgressInterval time.Duration
	// Kube is the kubernetes strategy's settings.
	Kube Kube
	// Raw holds every key read, including the ones above.
	Raw map[string]string
}

// Kube is how REBOOT_STRATEGY=kubernetes reaches the cluster and drains the node.
type Kube struct {
	Kubeconfig string // LOCKSMITHD_KUBECONFIG
	Namespace  string // LOCKSMITHD_KUBE_NAMESPACE: where the reboot Leases are
	Lease      string // LOCKSMITHD_KUBE_LEASE: the Leases' name, NAME-0 to NAME-(Max-1)
	Max        int    // LOCKSMITHD_KUBE_MAX: how many nodes may drain and reboot at once
	// LeaseDuration (LOCKSMITHD_KUBE_LEASE_DURATION) is how long a Lease nobody renews
	// stays held: a node that never comes back holds up the others this long.
	LeaseDuration time.Duration
	// DrainTimeout (LOCKSMITHD_KUBE_DRAIN_TIMEOUT) is how long evictions are retried (a
	// PodDisruptionBudget refusing them) before the node gives up until DrainRetry.
	DrainTimeout time.Duration
	// DrainRetry (LOCKSMITHD_KUBE_DRAIN_RETRY) is the wait after a drain gave up when there
	// is no reboot window; with one, the next window is waited for.
	DrainRetry time.Duration
}

// Defaults are used for keys no file sets.
var Defaults = map[string]string{
	"GROUP":           "stable",
	"SERVER":          "https://update.cairn-os.example/v1/update/",
	"APP_ID":          "io.github.cairn-os.cairn", // Cairn's product id: an application of its own in Nebraska
	"BOARD":           "amd64-usr",
	"PUBLIC_KEYS":     "/usr/share/cairn/update-keys",
	"REBOOT_STRATEGY": StrategyBestEffort,
	// Cairn's report to its console (omaha.Report), which other servers ignore.
	"PODS_COMMAND":      "rkt list --format=json",
	"PROGRESS_INTERVAL": "10s",
	// REBOOT_STRATEGY=kubernetes. The kubeconfig is a ServiceAccount's
	// (update-engine/locksmith/kube/rbac.yaml): kubelet's own may not evict other pods or
	// write Leases in kube-system.
	"LOCKSMITHD_KUBECONFIG":          "/etc/kubernetes/locksmithd.conf",
	"LOCKSMITHD_KUBE_NAMESPACE":      "kube-system",
	"LOCKSMITHD_KUBE_LEASE":          "cairn-reboot",
	"LOCKSMITHD_KUBE_MAX":            "1",
	"LOCKSMITHD_KUBE_LEASE_DURATION": "1h",
	"LOCKSMITHD_KUBE_DRAIN_TIMEOUT":  "15m",
	"LOCKSMITHD_KUBE_DRAIN_RETRY":    "1h",
}

// Load reads paths in order over the defaults. Missing files are skipped.
func Load(paths []string) (*Config, error) {
	raw := map[string]string{}
	maps.Copy(raw, Defaults)
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("update config %s: %w", p, err)
		}
		kv, err := Parse(b)
		if err != nil {
			return nil, fmt.Errorf("update config %s: %w", p, err)
		}
		maps.Copy(raw, kv)
	}
	return FromMap(raw)
}

// FromMap builds a Config from keys and checks their values.
func FromMap(raw map[string]string) (*Config, error) {
	c := &Config{
		Group: raw["GROUP"], Server: raw["SERVER"], AppID: raw["APP_ID"], Board: raw["BOARD"],
		PublicKeys: raw["PUBLIC_KEYS"], RebootStrategy: raw["REBOOT_STRATEGY"],
		WindowStart: raw["LOCKSMITHD_REBOOT_WINDOW_START"], WindowLength: raw["LOCKSMITHD_REBOOT_WINDOW_LENGTH"],
		LockGroup: raw["LOCKSMITHD_GROUP"], FleetLockURL: raw["FLEETLOCK_URL"], PodsCommand: strings.Fields(raw["PODS_COMMAND"]), Raw: raw,
	}
	if v := strings.TrimSpace(raw["PROGRESS_INTERVAL"]); v != "" && v != "0" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			return nil, fmt.Errorf("PROGRESS_INTERVAL %q: want a duration of at least 1s (such as 10s), or 0 for no progress reports", v)
		}
		c.ProgressInterval = d
	}
	if e := raw["LOCKSMITHD_ENDPOINT"]; e != "" {
		for s := range strings.SplitSeq(e, ",") {
			if s = strings.TrimSpace(s); s != "" {
				c.EtcdEndpoints = append(c.EtcdEndpoints, s)
			}
		}
	}
	if err := c.Kube.read(raw); err != nil {
		return nil, err
	}
	switch c.RebootStrategy {
	case StrategyReboot, StrategyEtcdLock, StrategyFleetLock, StrategyKubernetes, StrategyOff:
	case StrategyBestEffort, "":
		switch {
		case len(c.EtcdEndpoints) > 0:
			c.RebootStrategy = StrategyEtcdLock
		case c.FleetLockURL != "":
			c.RebootStrategy = StrategyFleetLock
		default:
			c.RebootStrategy = StrategyReboot
		}
	default:
		return nil, fmt.Errorf("REBOOT_STRATEGY %q: want reboot, etcd-lock, fleetlock, kubernetes, best-effort or off", c.RebootStrategy)
	}
	if (c.WindowStart == "") != (c.WindowLength == "") {
		return nil, errors.New("LOCKSMITHD_REBOOT_WINDOW_START and LOCKSMITHD_REBOOT_WINDOW_LENGTH must be set together")
	}
	if c.WindowLength != "" {
		if d, err := time.ParseDuration(c.WindowLength); err != nil || d <= 0 {
			return nil, fmt.Errorf("LOCKSMITHD_REBOOT_WINDOW_LENGTH %q is not a positive duration", c.WindowLength)
		}
	}
	if c.Server == "" {
		return nil, errors.New("SERVER is empty")
	}
	return c, nil
}

// read takes the LOCKSMITHD_KUBE* keys; a key set empty means its default.
func (k *Kube) read(raw map[string]string) error {
	get := func(key string) string {
		if v := strings.TrimSpace(raw[key]); v != "" {
			return v
		}
		return Defaults[key]
	}
	k.Kubeconfig, k.Namespace, k.Lease = get("LOCKSMITHD_KUBECONFIG"), get("LOCKSMITHD_KUBE_NAMESPACE"), get("LOCKSMITHD_KUBE_LEASE")
	v := get("LOCKSMITHD_KUBE_MAX")
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return fmt.Errorf("LOCKSMITHD_KUBE_MAX %q: want how many nodes may reboot at once, at least 1", v)
	}
	k.Max = n
	for _, d := range []struct {
		key string
		to  *time.Duration
	}{
		{"LOCKSMITHD_KUBE_LEASE_DURATION", &k.LeaseDuration},
		{"LOCKSMITHD_KUBE_DRAIN_TIMEOUT", &k.DrainTimeout},
		{"LOCKSMITHD_KUBE_DRAIN_RETRY", &k.DrainRetry},
	} {
		v := get(d.key)
		t, err := time.ParseDuration(v)
		if err != nil || t < time.Second {
			return fmt.Errorf("%s %q: want a duration of at least 1s, such as %s", d.key, v, Defaults[d.key])
		}
		*d.to = t
	}
	return nil
}

// Parse reads KEY=VALUE lines: '#' comments, blank lines, optional "export ", values
// optionally in single or double quotes (as systemd's EnvironmentFile= and sh read them).
func Parse(b []byte) (map[string]string, error) {
	kv := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || !validKey(k) {
			return nil, fmt.Errorf("line %d: want KEY=VALUE", n)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		kv[k] = v
	}
	return kv, sc.Err()
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		if !(c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
