package firstboot

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"
)

const (
	unitDir    = "/etc/systemd/system"
	presetFile = "/etc/systemd/system-preset/20-ignition.preset"
)

// Where systemd finds units, in order of precedence.
var unitSearchPath = []string{"/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}

func (a *applier) unit(u Unit) error {
	if u.Contents != nil {
		if err := a.writeOwned(path.Join(unitDir, u.Name), []byte(*u.Contents), 0o644, 0, 0); err != nil {
			return fmt.Errorf("unit %s: %w", u.Name, err)
		}
	}
	for _, d := range u.Dropins {
		if d.Contents == nil {
			continue
		}
		if err := a.writeOwned(path.Join(unitDir, u.Name+".d", d.Name), []byte(*d.Contents), 0o644, 0, 0); err != nil {
			return fmt.Errorf("unit %s: drop-in %s: %w", u.Name, d.Name, err)
		}
	}
	if u.Mask != nil {
		if err := a.mask(u.Name, *u.Mask); err != nil {
			return fmt.Errorf("unit %s: %w", u.Name, err)
		}
	}
	if u.Enabled != nil {
		if err := a.enable(u.Name, *u.Enabled); err != nil {
			return fmt.Errorf("unit %s: %w", u.Name, err)
		}
	}
	return nil
}

func (a *applier) mask(name string, on bool) error {
	p, err := a.join(path.Join(unitDir, name))
	if err != nil {
		return err
	}
	t, linkErr := os.Readlink(p)
	if !on {
		if linkErr == nil && t == "/dev/null" {
			return os.Remove(p)
		}
		return nil
	}
	if linkErr == nil && t == "/dev/null" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.RemoveAll(p); err != nil {
		return err
	}
	return os.Symlink("/dev/null", p)
}

// template returns the file name holding a unit: foo@bar.service lives in foo@.service.
func template(name string) string {
	at := strings.IndexByte(name, '@')
	dot := strings.LastIndexByte(name, '.')
	if at < 0 || dot < at || at+1 == dot {
		return name
	}
	return name[:at+1] + name[dot:]
}

// enable does what `systemctl enable` does for the [Install] section's WantedBy= and
// RequiredBy= (symlinks in <target>.wants/ and .requires/), and records the choice in a
// preset file as Ignition does, so that `systemctl preset` agrees.
func (a *applier) enable(name string, on bool) error {
	file := template(name)
	var unitPath string
	var contents []byte
	for _, dir := range unitSearchPath {
		p, err := a.join(path.Join(dir, file))
		if err != nil {
			return err
		}
		if b, err := os.ReadFile(p); err == nil {
			unitPath, contents = path.Join(dir, file), b
			break
		}
	}
	if unitPath == "" {
		return fmt.Errorf("cannot enable: no unit file %s in %s", file, strings.Join(unitSearchPath, ", "))
	}
	opts, err := unit.DeserializeOptions(strings.NewReader(string(contents)))
	if err != nil {
		return fmt.Errorf("parse %s: %w", unitPath, err)
	}
	var links []string
	for _, o := range opts {
		if o.Section != "Install" {
			continue
		}
		var suffix string
		switch o.Name {
		case "WantedBy":
			suffix = ".wants"
		case "RequiredBy":
			suffix = ".requires"
		default:
			continue
		}
		for target := range strings.FieldsSeq(o.Value) {
			links = append(links, path.Join(unitDir, target+suffix, name))
		}
	}
	if on && len(links) == 0 {
		return fmt.Errorf("cannot enable: %s has no WantedBy= or RequiredBy= in [Install]", unitPath)
	}
	for _, l := range links {
		p, err := a.join(l)
		if err != nil {
			return err
		}
		if err := os.RemoveAll(p); err != nil {
			return err
		}
		if !on {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(unitPath, p); err != nil {
			return err
		}
	}
	verb := "disable"
	if on {
		verb = "enable"
	}
	return a.appendPreset(verb + " " + name)
}

func (a *applier) appendPreset(line string) error {
	p, err := a.join(presetFile)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(p)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	return a.writeOwned(presetFile, append(old, []byte(line+"\n")...), 0o644, 0, 0)
}
