// Package build is the Cairn image pipeline: a list of named steps from a Debian package
// list and Cairn's binaries to a GPT disk image, its qcow2, a PXE pair, a signed update
// payload and a manifest. Every step works inside a temporary directory next to the output,
// which is renamed into place only when all steps succeeded: a failed build leaves nothing.
package build

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/cairn-os/cairn/image"
)

// Config is what a build is made from. The zero value of a field means its default.
type Config struct {
	Version         string   `json:"version"`           // VERSION_ID, e.g. "0.1.0"
	Board           string   `json:"board"`             // payload board, "amd64-usr"
	Suite           string   `json:"suite"`             // Debian suite, "bookworm"
	AptSources      string   `json:"apt_sources"`       // the machine's apt sources file
	Packages        []string `json:"packages"`          // replaces image/packages.txt when set
	ExtraPackages   []string `json:"extra_packages"`    // added to the list
	SourceDateEpoch int64    `json:"source_date_epoch"` // every timestamp in the output
	CacheDir        string   `json:"cache_dir"`         // debs and finished rootfs trees
	BinDir          string   `json:"bin_dir"`           // Cairn's binaries (make build)
	Cmdline         string   `json:"cmdline"`           // kernel command line before Cairn's words
	DiskSize        int64    `json:"disk_size"`         // bytes; 0: the smallest the layout allows
	PayloadKey      string   `json:"payload_key"`       // ed25519 PEM private key; "": a dev key in the cache
	UpdateServer    string   `json:"update_server"`     // SERVER= of /usr/share/cairn/update.conf
	UpdateGroup     string   `json:"update_group"`      // GROUP=
	// RootfsDir, when set, is used as the Debian tree instead of running mmdebstrap (a tree
	// made elsewhere, or a small fake one in tests).
	RootfsDir string `json:"rootfs_dir"`
}

// Defaults fills unset fields. SOURCE_DATE_EPOCH from the environment wins over the default.
func (c Config) Defaults() Config {
	if c.Version == "" {
		c.Version = "0.1.0"
	}
	if c.Board == "" {
		c.Board = "amd64-usr"
	}
	if c.Suite == "" {
		c.Suite = "bookworm"
	}
	if c.AptSources == "" {
		c.AptSources = "/etc/apt/sources.list.d/debian.sources"
	}
	if c.Packages == nil {
		for _, p := range image.DefaultPackages() {
			c.Packages = append(c.Packages, p.Name)
		}
	}
	c.Packages = append(append([]string(nil), c.Packages...), c.ExtraPackages...)
	c.ExtraPackages = nil
	if c.SourceDateEpoch == 0 {
		if e, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil && e > 0 {
			c.SourceDateEpoch = e
		} else {
			c.SourceDateEpoch = 1704067200 // 2024-01-01T00:00:00Z
		}
	}
	if c.CacheDir == "" {
		c.CacheDir = "/var/cache/cairn-image"
	}
	if c.BinDir == "" {
		c.BinDir = "bin"
	}
	if c.Cmdline == "" {
		c.Cmdline = "console=tty0 console=ttyS0,115200n8 rw"
	}
	if c.UpdateGroup == "" {
		c.UpdateGroup = "stable"
	}
	return c
}

// LoadConfig reads a JSON config; unknown fields are an error (a typo must not be ignored).
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	var c Config
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}
