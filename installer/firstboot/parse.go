// Package firstboot is Cairn's first-boot configuration: an Ignition config of spec 3.0–3.4,
// parsed and validated by Ignition's own parser (github.com/coreos/ignition/v2/config), turned
// into a plan of file-system operations, and applied once to the new system's root before
// systemd starts. Everything that can be wrong with a config is found before the first write:
// an unsupported key, a remote source, a bad hash.
package firstboot

import (
	"errors"
	"fmt"
	"strings"

	ignerrors "github.com/coreos/ignition/v2/config/shared/errors"
	"github.com/coreos/ignition/v2/config/util"
	v34 "github.com/coreos/ignition/v2/config/v3_4"
	"github.com/coreos/ignition/v2/config/v3_4/types"
	"github.com/coreos/vcontext/report"
)

// Config is a parsed Ignition config, translated to spec 3.4.
type Config = types.Config

// ErrUnsupported is returned for a valid Ignition config that asks for something Cairn does not do.
var ErrUnsupported = errors.New("unsupported by Cairn's first boot")

// MaxConfigSize bounds the config read from the OEM partition or fw_cfg.
const MaxConfigSize = 4 << 20

// Parse parses raw with Ignition's parser (spec 3.0–3.4, older versions translated to 3.4) and
// checks that Cairn supports every key it uses. The report holds Ignition's own warnings and
// errors, with line and column; print it with report.String().
func Parse(raw []byte) (Config, report.Report, error) {
	if len(raw) > MaxConfigSize {
		return Config{}, report.Report{}, fmt.Errorf("ignition config is %d bytes, more than the %d allowed", len(raw), MaxConfigSize)
	}
	ver, rpt, err := util.GetConfigVersion(raw)
	if err != nil {
		return Config{}, rpt, fmt.Errorf("ignition config: %w", err)
	}
	if ver.Major != 3 || ver.Minor > 4 || ver.PreRelease != "" {
		return Config{}, rpt, fmt.Errorf("ignition config: spec version %s: Cairn reads specs 3.0 to 3.4: %w", ver, ignerrors.ErrUnknownVersion)
	}
	cfg, rpt, err := v34.ParseCompatibleVersion(raw)
	if err != nil {
		return Config{}, rpt, fmt.Errorf("ignition config: %w", err)
	}
	if err := CheckSupported(cfg); err != nil {
		return Config{}, rpt, err
	}
	return cfg, rpt, nil
}

// CheckSupported returns one error naming every key of cfg that Cairn's first boot does not
// apply, so that nothing is half-applied: disks, RAID, LUKS, filesystems, kernel arguments,
// merged or replaced configs, remote sources, and users or groups that should not exist.
func CheckSupported(cfg Config) error {
	var bad []string
	add := func(key, why string) { bad = append(bad, key+": "+why) }
	if len(cfg.Ignition.Config.Merge) > 0 {
		add("ignition.config.merge", "configs are not fetched on first boot; merge them before installing")
	}
	if cfg.Ignition.Config.Replace.Source != nil {
		add("ignition.config.replace", "configs are not fetched on first boot; give the final config")
	}
	if len(cfg.Ignition.Security.TLS.CertificateAuthorities) > 0 {
		add("ignition.security.tls.certificateAuthorities", "nothing is fetched over TLS on first boot; install CA files with storage.files")
	}
	if len(cfg.KernelArguments.ShouldExist)+len(cfg.KernelArguments.ShouldNotExist) > 0 {
		add("kernelArguments", "the kernel command line is part of the signed boot image")
	}
	s := cfg.Storage
	if len(s.Disks) > 0 {
		add("storage.disks", "Cairn's disk layout is fixed; partitioning is not supported")
	}
	if len(s.Raid) > 0 {
		add("storage.raid", "RAID is not supported")
	}
	if len(s.Luks) > 0 {
		add("storage.luks", "LUKS is not supported")
	}
	if len(s.Filesystems) > 0 {
		add("storage.filesystems", "filesystems are not created on first boot; files go to the root filesystem")
	}
	for i, f := range s.Files {
		checkResource(fmt.Sprintf("storage.files[%d].contents", i), f.Contents, add)
		for j, r := range f.Append {
			checkResource(fmt.Sprintf("storage.files[%d].append[%d]", i, j), r, add)
		}
	}
	for i, u := range cfg.Passwd.Users {
		if u.ShouldExist != nil && !*u.ShouldExist {
			add(fmt.Sprintf("passwd.users[%d].shouldExist", i), "removing users is not supported")
		}
	}
	for i, g := range cfg.Passwd.Groups {
		if g.ShouldExist != nil && !*g.ShouldExist {
			add(fmt.Sprintf("passwd.groups[%d].shouldExist", i), "removing groups is not supported")
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("ignition config: %w:\n  %s", ErrUnsupported, strings.Join(bad, "\n  "))
}

func checkResource(key string, r types.Resource, add func(key, why string)) {
	if r.Source == nil {
		return
	}
	src := *r.Source
	if !strings.HasPrefix(src, "data:") {
		scheme, _, _ := strings.Cut(src, ":")
		add(key+".source", fmt.Sprintf("%s sources are not fetched on first boot; inline the contents as a data: URL", scheme))
	}
	if len(r.HTTPHeaders) > 0 {
		add(key+".httpHeaders", "nothing is fetched over HTTP on first boot")
	}
	if r.Compression != nil && *r.Compression != "" && *r.Compression != "gzip" {
		add(key+".compression", fmt.Sprintf("compression %q is not supported (only gzip)", *r.Compression))
	}
}
