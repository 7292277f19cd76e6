package firstboot

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cairn-os/cairn/internal/atomicfile"
)

// Where the first-boot config is looked for, in order: the OEM partition (mounted by early
// boot) and qemu's fw_cfg, under the name Cairn's qemu users pass with
// -fw_cfg name=opt/org.cairn/config,file=config.ign.
var DefaultSources = []string{
	"/usr/share/oem/config.ign",
	"/sys/firmware/qemu_fw_cfg/by_name/opt/org.cairn/config/raw",
}

// DefaultMarker, relative to the new root, records that the first boot ran; it holds the
// sha512 of the config applied (or "none").
const DefaultMarker = "/var/lib/cairn/first-boot"

// Runner applies the first-boot config once.
type Runner struct {
	Root    string   // the new system's root directory
	Sources []string // config locations tried in order, outside Root (early boot's view)
	Marker  string   // path inside Root; present means done
	Log     *slog.Logger
}

// Run applies the first config found in Sources to Root unless the marker exists. It returns
// whether a config was applied. A config that cannot be applied whole changes nothing and
// leaves the marker absent, so that the failure is seen again on the next boot.
func (r *Runner) Run(ctx context.Context) (bool, error) {
	marker := filepath.Join(r.Root, r.Marker)
	if _, err := os.Stat(marker); err == nil {
		r.Log.Debug("first boot already done", "marker", marker)
		return false, nil
	}
	raw, src, err := r.find()
	if err != nil {
		return false, err
	}
	sum := "none"
	if raw != nil {
		r.Log.Info("applying first-boot config", "source", src)
		cfg, rpt, err := Parse(raw)
		if err != nil {
			if s := rpt.String(); s != "" {
				err = fmt.Errorf("%w\n%s", err, s)
			}
			return false, fmt.Errorf("%s: %w", src, err)
		}
		plan, err := MakePlan(cfg)
		if err != nil {
			return false, fmt.Errorf("%s: %w", src, err)
		}
		if err := Apply(ctx, r.Root, plan); err != nil {
			return false, fmt.Errorf("%s: %w", src, err)
		}
		h := sha512.Sum512(raw)
		sum = "sha512-" + hex.EncodeToString(h[:])
	} else {
		r.Log.Info("no first-boot config found", "looked in", r.Sources)
	}
	if err := os.MkdirAll(filepath.Dir(marker), 0o755); err != nil {
		return false, err
	}
	if err := atomicfile.WriteFile(marker, []byte(sum+"\n"), 0o644); err != nil {
		return false, err
	}
	return raw != nil, nil
}

func (r *Runner) find() ([]byte, string, error) {
	for _, s := range r.Sources {
		f, err := os.Open(s)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("first-boot config %s: %w", s, err)
		}
		b, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
		f.Close()
		if err != nil {
			return nil, "", fmt.Errorf("first-boot config %s: %w", s, err)
		}
		if len(b) == 0 {
			continue
		}
		return b, s, nil
	}
	return nil, "", nil
}
