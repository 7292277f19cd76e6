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
	// Raw holds every key read, including the ones above.
	Raw map[string]string
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
	switch c.RebootStrategy {
	case StrategyReboot, StrategyEtcdLock, StrategyFleetLock, StrategyOff:
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
		return nil, fmt.Errorf("REBOOT_STRATEGY %q: want reboot, etcd-lock, fleetlock, best-effort or off", c.RebootStrategy)
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
