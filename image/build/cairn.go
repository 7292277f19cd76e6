package build

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"embed"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cairn-os/cairn/installer/imagesig"
	"github.com/cairn-os/cairn/update-engine/payload"
)

//go:embed files
var files embed.FS

// Binary is one of Cairn's programs and where it goes in /usr, with the units that come with it.
type Binary struct {
	Name  string // in BinDir
	Dest  string // in the image
	Units []string
	// Off leaves the units installed but not enabled: the first-boot config turns them on
	// (flanneld needs its etcd and network config first, as on Container Linux).
	Off bool
	// Static programs run from the initramfs (the first-boot hook), where there is no loader.
	Static bool
	// Needs are the binaries this one runs, which must come with it.
	Needs []string
}

// Binaries are the Cairn programs an image carries when `make build` made them.
var Binaries = []Binary{
	// rkt executes rkt-fetch (the full binary, beside it) to fetch images and trust keys.
	{Name: "rkt", Dest: "/usr/bin/rkt", Units: []string{"rkt-gc.service", "rkt-gc.timer"}, Needs: []string{"rkt-fetch"}},
	{Name: "rkt-fetch", Dest: "/usr/bin/rkt-fetch"},
	// The socket is enabled; the first CRI client (kubelet, crictl) starts the service.
	{Name: "rktlet", Dest: "/usr/bin/rktlet", Units: []string{"rktlet.service", "rktlet.socket"}},
	{Name: "flanneld", Dest: "/usr/bin/flanneld", Units: []string{"flanneld.service"}, Off: true},
	{Name: "flannel", Dest: "/usr/lib/cni/flannel"},
	{Name: "update_engine", Dest: "/usr/sbin/update_engine", Units: []string{"update-engine.service", "cairn-sysext-check.service"}},
	{Name: "update_engine_client", Dest: "/usr/bin/update_engine_client"},
	{Name: "locksmithd", Dest: "/usr/lib/locksmith/locksmithd", Units: []string{"locksmithd.service"}},
	{Name: "locksmithctl", Dest: "/usr/bin/locksmithctl"},
	{Name: "cairn-install", Dest: "/usr/bin/cairn-install"},
	{Name: "cairn-firstboot", Dest: "/usr/lib/cairn/first-boot", Static: true},
}

// FileOp is one change to the tree, as data: write a file (Data or Source), make a symlink
// (Link), or remove a path (Remove). Paths are absolute in the image.
type FileOp struct {
	Path   string
	Mode   fs.FileMode
	Data   []byte
	Source string
	Link   string
	Remove bool
}

// PayloadKeyPath is where the image carries the public key its update payloads are signed
// with: in the key ring directory the update engine reads by default (PUBLIC_KEYS,
// update-engine/updateconf).
const PayloadKeyPath = "/usr/share/cairn/update-keys/cairn-payload.pem"

// ImageKeyPath is where the image carries the public key of its disk images' signatures, in
// the directory cairn-install reads by default (installer/cli.DefaultKeys).
const ImageKeyPath = "/usr/share/cairn/signing-keys/cairn-image.pem"

// ExtensionStore holds the system extensions the update engine keeps, one directory per OS
// version (update-engine/extensions).
const ExtensionStore = "/var/lib/cairn/extensions"

// ExtensionLink is the base image's link to its own version's directory in ExtensionStore:
// systemd-sysext looks for images there. One link to the directory rather than a link per
// image: systemd 252 resolves a symlinked search directory inside the root it merges, while it
// follows a symlinked image only on the running host, not under --root. Relative, so that it
// resolves under systemd-sysext --root too.
const ExtensionLink = "/usr/lib/extensions"

// CairnFiles is what Cairn adds to (and removes from) the Debian tree. present says which
// binaries exist in BinDir.
func (b *Builder) CairnFiles(present map[string]bool) ([]FileOp, error) {
	c := b.Config
	ops := []FileOp{
		{Path: "/usr/lib/os-release", Mode: 0o644, Data: []byte(OSRelease(c.Version))},
		{Path: "/etc/os-release", Link: "../usr/lib/os-release"},
		{Path: "/usr/share/cairn/update.conf", Mode: 0o644, Data: []byte(UpdateConf(c))},
		{Path: PayloadKeyPath, Mode: 0o644, Data: b.publicKeyPEM()},
		// Disk images are signed with the same key: cairn-install checks them with it.
		{Path: ImageKeyPath, Mode: 0o644, Data: b.publicKeyPEM()},
		{Path: "/usr/share/oem", Mode: fs.ModeDir | 0o755},
		{Path: "/etc/issue", Mode: 0o644, Data: []byte("Cairn " + c.Version + " \\n \\l\n\n")},
		{Path: "/etc/issue.net", Mode: 0o644, Data: []byte("Cairn " + c.Version + "\n")},
		// Host keys are made on first boot (cairn-ssh-keygen.service): no two machines share one.
		{Path: "/etc/ssh/ssh_host_*", Remove: true},
		// An empty machine-id makes systemd treat the first boot as one.
		{Path: "/etc/machine-id", Mode: 0o444, Data: nil},
		{Path: "/var/lib/dbus/machine-id", Remove: true},
	}
	units := []string{"cairn-booted.service", "cairn-ssh-keygen.service", "boot.mount", "boot.automount", "cairn-sysext.service"}
	off := map[string]bool{}
	ops = append(ops,
		file("/usr/lib/cairn/booted", "booted", 0o755),
		file("/usr/lib/systemd/network/50-cairn-dhcp.network", "50-cairn-dhcp.network", 0o644),
		file("/usr/share/dbus-1/system.d/com.coreos.update1.conf", "com.coreos.update1.conf", 0o644),
	)
	for _, bin := range Binaries {
		if !present[bin.Name] {
			continue
		}
		for _, n := range bin.Needs {
			if !present[n] {
				return nil, fmt.Errorf("%s needs %s beside it in %s (make build makes both)", bin.Name, n, c.BinDir)
			}
		}
		ops = append(ops, FileOp{Path: bin.Dest, Mode: 0o755, Source: filepath.Join(c.BinDir, bin.Name)})
		units = append(units, bin.Units...)
		for _, u := range bin.Units {
			off[u] = bin.Off
		}
	}
	for _, u := range units {
		ops = append(ops, file("/usr/lib/systemd/system/"+u, u, 0o644))
		data, err := files.ReadFile("files/" + u)
		if err != nil {
			return nil, err
		}
		if off[u] {
			continue
		}
		// Enabled in /usr (vendor presets): they come and go with the /usr they belong to.
		for _, target := range wantedBy(string(data)) {
			ops = append(ops, FileOp{Path: "/usr/lib/systemd/system/" + target + ".wants/" + u, Link: "../" + u})
		}
	}
	for _, u := range []string{"systemd-networkd.service", "systemd-resolved.service"} {
		ops = append(ops, FileOp{Path: "/usr/lib/systemd/system/multi-user.target.wants/" + u, Link: "../" + u})
	}
	// System extensions (kubernetes-VERSION.raw) are merged over /usr at boot. An extension
	// fits one OS version; the update engine keeps them per version under ExtensionStore, and
	// this /usr's ExtensionLink, one of systemd-sysext's search directories, is its own
	// version's: each slot boots with the extensions of its version.
	ops = append(ops,
		FileOp{Path: "/usr/lib/systemd/system/sysinit.target.wants/systemd-sysext.service", Link: "../systemd-sysext.service"},
		FileOp{Path: ExtensionLink, Link: "../.." + ExtensionStore + "/" + c.Version})
	// network-online.target means a link is up: update_engine, flanneld and locksmithd wait for it.
	ops = append(ops,
		FileOp{Path: "/usr/lib/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service", Link: "../systemd-networkd-wait-online.service"},
		file("/usr/lib/systemd/system/systemd-networkd-wait-online.service.d/cairn.conf", "wait-online-any.conf", 0o644))
	return ops, nil
}

func file(dest, name string, mode fs.FileMode) FileOp {
	data, err := files.ReadFile("files/" + name)
	if err != nil {
		panic(err) // embedded: caught by the tests
	}
	return FileOp{Path: dest, Mode: mode, Data: data}
}

func wantedBy(unit string) []string {
	var out []string
	for line := range strings.SplitSeq(unit, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "WantedBy="); ok {
			out = append(out, strings.Fields(v)...)
		}
	}
	return out
}

// OSRelease is /usr/lib/os-release.
func OSRelease(version string) string {
	return fmt.Sprintf(`NAME="Cairn"
ID=cairn
ID_LIKE=debian
VERSION=%[1]s
VERSION_ID=%[1]s
PRETTY_NAME="Cairn %[1]s"
ANSI_COLOR="38;5;75"
HOME_URL="https://github.com/cairn-os/cairn"
`, version)
}

// UpdateConf is /usr/share/cairn/update.conf, in Container Linux's key=value format;
// /etc/cairn/update.conf overrides it per machine.
func UpdateConf(c Config) string {
	s := "GROUP=" + c.UpdateGroup + "\n"
	if c.UpdateServer != "" {
		s += "SERVER=" + c.UpdateServer + "\n"
	}
	return s + "REBOOT_STRATEGY=reboot\n"
}

func (b *Builder) installCairn(context.Context) error {
	present := map[string]bool{}
	for _, bin := range Binaries {
		p := filepath.Join(b.Config.BinDir, bin.Name)
		if _, err := os.Stat(p); err == nil {
			if bin.Static {
				if err := checkStatic(p); err != nil {
					return err
				}
			}
			present[bin.Name] = true
		}
	}
	var names []string
	for n := range present {
		names = append(names, n)
	}
	sort.Strings(names)
	b.progress("        cairn binaries from %s: %s", b.Config.BinDir, strings.Join(names, " "))
	ops, err := b.CairnFiles(present)
	if err != nil {
		return err
	}
	examples, err := b.exampleOps()
	if err != nil {
		return err
	}
	return Apply(b.tree, append(ops, examples...))
}

// Apply carries out ops under root.
func Apply(root string, ops []FileOp) error {
	for _, op := range ops {
		p := filepath.Join(root, op.Path)
		if op.Remove {
			matches, err := filepath.Glob(p)
			if err != nil {
				return err
			}
			for _, m := range matches {
				if err := os.RemoveAll(m); err != nil {
					return err
				}
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		switch {
		case op.Link != "":
			os.Remove(p)
			if err := os.Symlink(op.Link, p); err != nil {
				return err
			}
		case op.Mode.IsDir():
			if err := os.MkdirAll(p, op.Mode.Perm()); err != nil {
				return err
			}
		case op.Source != "":
			os.Remove(p)
			if err := copyFile(op.Source, p, op.Mode); err != nil {
				return fmt.Errorf("install %s: %w", op.Path, err)
			}
		default:
			os.Remove(p)
			if err := os.WriteFile(p, op.Data, op.Mode); err != nil {
				return fmt.Errorf("install %s: %w", op.Path, err)
			}
		}
		if op.Link == "" {
			if err := os.Chmod(p, op.Mode.Perm()); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *Builder) signingKey(context.Context) error {
	path := b.Config.PayloadKey
	if path == "" {
		path = filepath.Join(b.Config.CacheDir, "dev-payload-key.pem")
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			priv, _, err := payload.GenerateKey()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(b.Config.CacheDir, 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(path, priv, 0o600); err != nil {
				return err
			}
			b.progress("        made a development signing key %s (set payload_key for releases)", path)
		}
	}
	k, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("payload signing key: %w", err)
	}
	if _, err := payload.ParsePrivateKey(k); err != nil {
		return fmt.Errorf("payload signing key %s: %w", path, err)
	}
	b.keyPEM = k
	return nil
}

func (b *Builder) publicKeyPEM() []byte {
	priv, err := payload.ParsePrivateKey(b.keyPEM)
	if err != nil {
		return nil
	}
	der, err := x509.MarshalPKIXPublicKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// payload signs the /usr image and a slot-neutral UKI (cairn.usr=auto: the initramfs takes the
// USR partition whose hash tree matches) into the update engine's format.
func (b *Builder) payload(ctx context.Context) error {
	priv, err := payload.ParsePrivateKey(b.keyPEM)
	if err != nil {
		return err
	}
	neutral := b.usr
	neutral.USRAuto = true
	b.payloadUKI = filepath.Join(b.work, "uki-any-slot.efi")
	if err := b.buildUKI(ctx, neutral, b.payloadUKI); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(b.art, PayloadFile))
	if err != nil {
		return err
	}
	_, err = payload.Build(f, payload.BuildOptions{Version: b.Config.Version, Board: b.Config.Board,
		USR: payload.FileSource("usr", b.usrImg), UKI: payload.FileSource("uki", b.payloadUKI), TempDir: b.work}, priv)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// signDisk writes the disk image's signature for cairn-install (installer/imagesig), with the
// key that signs the payload.
func (b *Builder) signDisk(context.Context) error {
	priv, err := payload.ParsePrivateKey(b.keyPEM)
	if err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(b.art, DiskImage))
	if err != nil {
		return err
	}
	st, err := imagesig.Of(f)
	f.Close()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(b.art, DiskSig), imagesig.Sign(priv, st), 0o644)
}
