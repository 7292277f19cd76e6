package stage1

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-os/cairn/runtime/pod"
)

// OptionsFile holds the pod-level settings that the appc pod manifest has no field for.
const OptionsFile = "stage1.json"

// Sentinel errors.
var (
	ErrNoVolume = errors.New("no such volume in the pod (add --volume NAME,kind=...)")
	ErrBadNet   = errors.New("unsupported --net (supported here: none, host, default)")
)

// Options are a pod's settings from rkt run/prepare beyond the pod manifest.
type Options struct {
	// Net is "none" (only loopback), "host" (the host's network namespace) or "default".
	// Until CNI networks exist, "default" is a private namespace with loopback, like none.
	Net         string   `json:"net"`
	Hostname    string   `json:"hostname,omitempty"`
	DNS         []string `json:"dns,omitempty"` // "host", "none" or nameserver addresses
	DNSSearch   []string `json:"dnsSearch,omitempty"`
	Interactive bool     `json:"interactive,omitempty"`
	NoOverlay   bool     `json:"noOverlay,omitempty"`
	// InsecureSeccomp (--insecure-options=seccomp) runs apps without a seccomp filter.
	InsecureSeccomp bool `json:"insecureSeccomp,omitempty"`
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
	switch o.Net {
	case "", "none", "host", "default":
	default:
		return fmt.Errorf("--net=%s: %w", o.Net, ErrBadNet)
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

// HostsFile is the pod's /etc/hosts.
func HostsFile(hostname string) []byte {
	return []byte("127.0.0.1\tlocalhost localhost.localdomain " + hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n")
}

// ResolvConf is the pod's /etc/resolv.conf for --dns addresses; nil when the pod gets none
// of its own.
func ResolvConf(dns, search []string) []byte {
	var b strings.Builder
	for _, d := range dns {
		if d == "host" || d == "none" {
			return nil
		}
		fmt.Fprintf(&b, "nameserver %s\n", d)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if b.Len() == 0 {
		return nil
	}
	return []byte(b.String())
}

// ImagesInUse lists the image IDs that the pods in podsDir (<dir>/pods) were made from, so that
// image gc keeps them (the store's InUse hook). Pods being deleted count until they are gone.
func ImagesInUse(podsDir string) ([]string, error) {
	seen := map[string]bool{}
	var ids []string
	for _, ph := range []string{"prepare", "prepared", "run", "exited-garbage", "garbage"} {
		ents, err := os.ReadDir(filepath.Join(podsDir, ph))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, err
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
			for _, a := range o.Apps {
				if a.ImageID != "" && !seen[a.ImageID] {
					seen[a.ImageID] = true
					ids = append(ids, a.ImageID)
				}
			}
		}
	}
	return ids, nil
}
