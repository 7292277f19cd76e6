package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/image/bootparams"
	"github.com/cairn-os/cairn/internal/disklayout"
)

func TestDefaults(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1234567890")
	c := Config{ExtraPackages: []string{"strace"}}.Defaults()
	if c.SourceDateEpoch != 1234567890 || c.Suite != "bookworm" || c.Packages[len(c.Packages)-1] != "strace" {
		t.Fatalf("%+v", c)
	}
	if !strings.Contains(c.Cmdline, "console=ttyS0") {
		t.Fatalf("cmdline %q", c.Cmdline)
	}
}

func TestLoadConfigRefusesUnknownFields(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(p, []byte(`{"version": "1.2.3", "pakages": ["x"]}`), 0o644)
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), "pakages") {
		t.Fatalf("typo accepted: %v", err)
	}
	os.WriteFile(p, []byte(`{"version": "1.2.3", "extra_packages": ["strace"]}`), 0o644)
	c, err := LoadConfig(p)
	if err != nil || c.Version != "1.2.3" || c.ExtraPackages[0] != "strace" {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestCairnFiles(t *testing.T) {
	b := &Builder{Config: Config{Version: "9.8.7", BinDir: "/nonexistent"}.Defaults()}
	if _, err := b.CairnFiles(map[string]bool{"rkt": true}); err == nil || !strings.Contains(err.Error(), "rkt needs rkt-fetch") {
		t.Errorf("rkt without rkt-fetch: %v", err)
	}
	ops, err := b.CairnFiles(map[string]bool{"rkt": true, "rkt-fetch": true, "rktlet": true, "update_engine": true, "flanneld": true})
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]FileOp{}
	for _, op := range ops {
		byPath[op.Path] = op
	}
	if op := byPath["/usr/lib/os-release"]; !strings.Contains(string(op.Data), "ID=cairn\n") || !strings.Contains(string(op.Data), "VERSION_ID=9.8.7\n") {
		t.Errorf("os-release %q", op.Data)
	}
	if op := byPath["/usr/share/cairn/update.conf"]; !strings.Contains(string(op.Data), "GROUP=stable\n") {
		t.Errorf("update.conf %q", op.Data)
	}
	for _, want := range []string{
		"/usr/bin/rkt", "/usr/bin/rkt-fetch", "/usr/sbin/update_engine",
		"/usr/lib/systemd/system/rkt-gc.timer", "/usr/lib/systemd/system/timers.target.wants/rkt-gc.timer",
		"/usr/lib/systemd/system/multi-user.target.wants/update-engine.service",
		"/usr/lib/systemd/system/multi-user.target.wants/cairn-booted.service",
		"/usr/bin/rktlet", "/usr/lib/systemd/system/rktlet.service", "/usr/lib/systemd/system/sockets.target.wants/rktlet.socket",
	} {
		if _, ok := byPath[want]; !ok {
			t.Errorf("no %s", want)
		}
	}
	// Extensions are merged at boot, their units loaded, and looked up in this version's store.
	for _, want := range []string{
		"/usr/lib/systemd/system/sysinit.target.wants/systemd-sysext.service",
		"/usr/lib/systemd/system/cairn-sysext.service", "/usr/lib/systemd/system/sysinit.target.wants/cairn-sysext.service",
	} {
		if _, ok := byPath[want]; !ok {
			t.Errorf("no %s", want)
		}
	}
	if l := byPath[ExtensionLink].Link; ExtensionLink != "/usr/lib/extensions" || l != "../../var/lib/cairn/extensions/9.8.7" {
		t.Errorf("%s -> %q, want this version's extension store", ExtensionLink, l)
	}
	// rktlet starts when a client connects to its socket.
	if _, ok := byPath["/usr/lib/systemd/system/multi-user.target.wants/rktlet.service"]; ok {
		t.Error("rktlet.service enabled itself; its socket starts it")
	}
	for _, absent := range []string{"/usr/bin/locksmithctl", "/usr/lib/systemd/system/locksmithd.service"} {
		if _, ok := byPath[absent]; ok {
			t.Errorf("%s installed without its binary", absent)
		}
	}
	// flanneld comes installed but off: the first-boot config enables it with its config.
	if _, ok := byPath["/usr/lib/systemd/system/flanneld.service"]; !ok {
		t.Error("flanneld.service not installed")
	}
	if _, ok := byPath["/usr/lib/systemd/system/multi-user.target.wants/flanneld.service"]; ok {
		t.Error("flanneld enabled by default")
	}
	if !byPath["/etc/ssh/ssh_host_*"].Remove {
		t.Error("host keys are not removed")
	}

	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/ssh"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/ssh/ssh_host_rsa_key"), []byte("secret"), 0o600)
	b.keyPEM = nil
	if err := Apply(root, ops[:len(ops)-0]); err == nil {
		t.Fatal("Apply installed binaries that do not exist")
	}
	var noBins []FileOp
	for _, op := range ops {
		if op.Source == "" {
			noBins = append(noBins, op)
		}
	}
	if err := Apply(root, noBins); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/ssh/ssh_host_rsa_key")); err == nil {
		t.Error("host key survived")
	}
	if l, err := os.Readlink(filepath.Join(root, "usr/lib/systemd/system/multi-user.target.wants/cairn-booted.service")); err != nil || l != "../cairn-booted.service" {
		t.Errorf("enablement link %q %v", l, err)
	}
}

func TestSlotParams(t *testing.T) {
	b := &Builder{usr: bootparams.Params{RootHash: strings.Repeat("1", 64), DataBlocks: 7, Salt: "aa"}}
	p := b.SlotParams(disklayout.SlotB)
	if p.USRPartUUID != disklayout.GUIDUSRB || p.Slot != "B" {
		t.Fatalf("%+v", p)
	}
	q, err := bootparams.Parse(p.Cmdline())
	if err != nil || q != p {
		t.Fatalf("%+v %v", q, err)
	}
}

func TestRefusesNonEmptyOutput(t *testing.T) {
	out := t.TempDir()
	os.WriteFile(filepath.Join(out, "keep"), []byte("x"), 0o644)
	b := &Builder{Out: out}
	err := b.prepare(context.Background())
	if !errors.Is(err, ErrOutputExists) {
		t.Fatalf("want ErrOutputExists, got %v", err)
	}
}

func TestInstalledPackages(t *testing.T) {
	p := filepath.Join(t.TempDir(), "status")
	os.WriteFile(p, []byte("Package: a\nStatus: install ok installed\nVersion: 1\n\nPackage: b\nStatus: deinstall ok config-files\nVersion: 2\n"), 0o644)
	m, err := installedPackages(p)
	if err != nil || len(m) != 1 || m["a"] != "1" {
		t.Fatalf("%v %v", m, err)
	}
}
