package firstboot

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/testenv"
)

func dataURL(b []byte) string { return "data:;base64," + base64.StdEncoding.EncodeToString(b) }

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func sha512Of(b []byte) string { s := sha512.Sum512(b); return "sha512-" + hex.EncodeToString(s[:]) }

// fullConfig exercises every key Cairn applies.
func fullConfig(t *testing.T) []byte {
	hello := []byte("#!/bin/sh\necho hello\n")
	cfg := map[string]any{
		"ignition": map[string]any{"version": "3.4.0"},
		"passwd": map[string]any{
			"groups": []any{map[string]any{"name": "ops"}},
			"users": []any{
				map[string]any{"name": "core", "sshAuthorizedKeys": []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests core@test"},
					"groups": []string{"ops", "sudo"}, "passwordHash": "$6$salt$hash"},
			},
		},
		"storage": map[string]any{
			"directories": []any{map[string]any{"path": "/var/lib/app", "mode": 0o750, "user": map[string]any{"name": "core"}}},
			"files": []any{
				map[string]any{"path": "/etc/hostname", "overwrite": true, "contents": map[string]any{"source": "data:,node1%0A"}},
				map[string]any{"path": "/opt/bin/hello", "mode": 0o755, "user": map[string]any{"name": "core"}, "group": map[string]any{"name": "ops"},
					"contents": map[string]any{"source": dataURL(gz(hello)), "compression": "gzip",
						"verification": map[string]any{"hash": sha512Of(hello)}}},
				map[string]any{"path": "/etc/motd", "append": []any{map[string]any{"source": "data:,second%0A"}}},
				map[string]any{"path": "/etc/systemd/network/10-eth.network", "contents": map[string]any{"source": "data:,%5BMatch%5D%0AName%3Deth0%0A"}},
			},
			"links": []any{map[string]any{"path": "/etc/localtime", "target": "/usr/share/zoneinfo/UTC", "overwrite": true}},
		},
		"systemd": map[string]any{"units": []any{
			map[string]any{"name": "hello.service", "enabled": true,
				"contents": "[Service]\nExecStart=/opt/bin/hello\n[Install]\nWantedBy=multi-user.target\n",
				"dropins":  []any{map[string]any{"name": "10-env.conf", "contents": "[Service]\nEnvironment=A=1\n"}}},
			map[string]any{"name": "getty@tty1.service", "mask": true},
		}},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newRoot makes a minimal Debian-like root with account databases.
func newRoot(t *testing.T) string {
	root := t.TempDir()
	files := map[string]string{
		"etc/passwd":   "root:x:0:0:root:/root:/bin/bash\n",
		"etc/group":    "root:x:0:\nsudo:x:27:\nusers:x:100:\n",
		"etc/shadow":   "root:*:19000:0:99999:7:::\n",
		"etc/gshadow":  "root:*::\nsudo:*::\nusers:*::\n",
		"etc/hostname": "localhost\n",
		"etc/motd":     "first\n",
	}
	for p, c := range files {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseAcceptsEverySpec30To34(t *testing.T) {
	for _, v := range []string{"3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0"} {
		raw := []byte(`{"ignition":{"version":"` + v + `"},"storage":{"files":[{"path":"/etc/x","contents":{"source":"data:,hi"}}]}}`)
		cfg, _, err := Parse(raw)
		if err != nil {
			t.Fatalf("spec %s: %v", v, err)
		}
		if len(cfg.Storage.Files) != 1 || cfg.Storage.Files[0].Path != "/etc/x" {
			t.Fatalf("spec %s: files %+v", v, cfg.Storage.Files)
		}
	}
}

func TestParseRejects(t *testing.T) {
	cases := []struct {
		name, raw, want string
	}{
		{"not json", `{"ignition":`, "ignition config"},
		{"empty", ``, "ignition config"},
		{"spec 2", `{"ignition":{"version":"2.3.0"}}`, "3.0 to 3.4"},
		{"spec 3.5", `{"ignition":{"version":"3.5.0"}}`, "3.0 to 3.4"},
		{"experimental", `{"ignition":{"version":"3.6.0-experimental"}}`, "3.0 to 3.4"},
		{"invalid per ignition", `{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"relative"}]}}`, "ignition config"},
		{"disks", `{"ignition":{"version":"3.4.0"},"storage":{"disks":[{"device":"/dev/vda","wipeTable":true}]}}`, "storage.disks"},
		{"luks", `{"ignition":{"version":"3.4.0"},"storage":{"luks":[{"name":"x","device":"/dev/vda"}]}}`, "storage.luks"},
		{"remote", `{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/x","contents":{"source":"https://example.com/x"}}]}}`, "storage.files[0].contents.source"},
		{"merge", `{"ignition":{"version":"3.4.0","config":{"merge":[{"source":"https://example.com/c.ign"}]}}}`, "ignition.config.merge"},
		{"kargs", `{"ignition":{"version":"3.4.0"},"kernelArguments":{"shouldExist":["quiet"]}}`, "kernelArguments"},
		{"delete user", `{"ignition":{"version":"3.4.0"},"passwd":{"users":[{"name":"x","shouldExist":false}]}}`, "passwd.users[0].shouldExist"},
		{"too big", `{"ignition":{"version":"3.4.0"},"x":"` + strings.Repeat("a", MaxConfigSize) + `"}`, "more than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := Parse([]byte(c.raw))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one naming %q", err, c.want)
			}
		})
	}
}

func TestUnsupportedListsEveryKey(t *testing.T) {
	raw := `{"ignition":{"version":"3.4.0"},"storage":{"raid":[{"name":"md0","level":"raid1","devices":["/dev/a","/dev/b"]}],
		"filesystems":[{"device":"/dev/vdb","format":"ext4","path":"/data"}]}}`
	_, _, err := Parse([]byte(raw))
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("err %v, want ErrUnsupported", err)
	}
	for _, k := range []string{"storage.raid", "storage.filesystems"} {
		if !strings.Contains(err.Error(), k) {
			t.Errorf("error does not name %s: %v", k, err)
		}
	}
}

func TestPlanChecksHashBeforeWriting(t *testing.T) {
	raw := `{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/a","contents":{"source":"data:,ok"}},
		{"path":"/etc/b","contents":{"source":"data:,evil","verification":{"hash":"sha512-` + strings.Repeat("0", 128) + `"}}}]}}`
	cfg, _, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := MakePlan(cfg); err == nil || !strings.Contains(err.Error(), "verification failed") || !strings.Contains(err.Error(), "/etc/b") {
		t.Fatalf("err %v, want a verification failure naming /etc/b", err)
	}
}

func TestTemplate(t *testing.T) {
	for in, want := range map[string]string{"getty@tty1.service": "getty@.service", "foo.service": "foo.service", "a@.service": "a@.service"} {
		if got := template(in); got != want {
			t.Errorf("template(%q) = %q, want %q", in, got, want)
		}
	}
}

func apply(t *testing.T, root string, raw []byte) error {
	t.Helper()
	cfg, rpt, err := Parse(raw)
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, rpt.String())
	}
	plan, err := MakePlan(cfg)
	if err != nil {
		return err
	}
	return Apply(context.Background(), root, plan)
}

func TestApplyFullConfig(t *testing.T) {
	testenv.RequireRoot(t) // ownership of files created for other users
	root := newRoot(t)
	if err := apply(t, root, fullConfig(t)); err != nil {
		t.Fatal(err)
	}
	passwd := read(t, filepath.Join(root, "etc/passwd"))
	if !strings.Contains(passwd, "core:x:1000:1001::/home/core:/bin/bash\n") {
		t.Fatalf("passwd:\n%s", passwd)
	}
	group := read(t, filepath.Join(root, "etc/group"))
	for _, want := range []string{"sudo:x:27:core\n", "ops:x:1000:core\n", "core:x:1001:\n"} {
		if !strings.Contains(group, want) {
			t.Errorf("group lacks %q:\n%s", want, group)
		}
	}
	if s := read(t, filepath.Join(root, "etc/shadow")); !strings.Contains(s, "core:$6$salt$hash:") {
		t.Errorf("shadow:\n%s", s)
	}
	keys := read(t, filepath.Join(root, "home/core/.ssh/authorized_keys"))
	if !strings.Contains(keys, "core@test") || !strings.Contains(keys, "# ignition") {
		t.Errorf("authorized_keys:\n%s", keys)
	}
	fi, _ := os.Stat(filepath.Join(root, "home/core/.ssh/authorized_keys.d/ignition"))
	if fi == nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key fragment: %v", fi)
	}
	if got := read(t, filepath.Join(root, "etc/hostname")); got != "node1\n" {
		t.Errorf("hostname %q", got)
	}
	if got := read(t, filepath.Join(root, "etc/motd")); got != "first\nsecond\n" {
		t.Errorf("motd after append %q", got)
	}
	hello := filepath.Join(root, "opt/bin/hello")
	fi, err := os.Stat(hello)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("hello: %v %v", fi, err)
	}
	if uid, gid := fileOwner(t, hello); uid != 1000 || gid != 1000 {
		t.Errorf("hello owned by %d:%d, want 1000:1000 (core:ops)", uid, gid)
	}
	if uid, _ := fileOwner(t, filepath.Join(root, "var/lib/app")); uid != 1000 {
		t.Errorf("/var/lib/app owned by %d", uid)
	}
	if l, _ := os.Readlink(filepath.Join(root, "etc/localtime")); l != "/usr/share/zoneinfo/UTC" {
		t.Errorf("localtime -> %q", l)
	}
	if l, _ := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/hello.service")); l != "/etc/systemd/system/hello.service" {
		t.Errorf("hello.service not enabled: link %q", l)
	}
	if got := read(t, filepath.Join(root, "etc/systemd/system/hello.service.d/10-env.conf")); !strings.Contains(got, "A=1") {
		t.Errorf("drop-in %q", got)
	}
	if l, _ := os.Readlink(filepath.Join(root, "etc/systemd/system/getty@tty1.service")); l != "/dev/null" {
		t.Errorf("getty@tty1 not masked: %q", l)
	}
	if got := read(t, filepath.Join(root, presetFile)); got != "enable hello.service\n" {
		t.Errorf("preset %q", got)
	}
}

// A node kept at its path (one there before, not overwritten) keeps the parts of its owner
// the config does not name, as Ignition's; a new or overwritten node is root's.
func TestApplyOwnerDefaults(t *testing.T) {
	testenv.RequireRoot(t) // chown
	const id = 1234        // the owner of what is there before
	file := func(root, p string) error { return os.WriteFile(filepath.Join(root, p), []byte("before\n"), 0o644) }
	dir := func(root, p string) error { return os.Mkdir(filepath.Join(root, p), 0o755) }
	link := func(root, p string) error { return os.Symlink("/usr/share/zoneinfo/UTC", filepath.Join(root, p)) }
	for _, c := range []struct {
		name     string
		path     string
		before   func(root, p string) error // nil: nothing there
		storage  string                     // the config's storage, of one node at path
		uid, gid int
	}{
		{"appended file", "etc/motd", file, `"files":[{"path":"/etc/motd","append":[{"source":"data:,x"}]}]`, id, id},
		{"kept file, group named", "etc/motd", file, `"files":[{"path":"/etc/motd","group":{"id":50}}]`, id, 50},
		{"kept file, user named", "etc/motd", file, `"files":[{"path":"/etc/motd","user":{"id":60}}]`, 60, id},
		{"overwritten file", "etc/motd", file, `"files":[{"path":"/etc/motd","overwrite":true,"contents":{"source":"data:,x"}}]`, 0, 0},
		{"new file", "etc/new", nil, `"files":[{"path":"/etc/new","contents":{"source":"data:,x"}}]`, 0, 0},
		{"kept directory", "var/app", dir, `"directories":[{"path":"/var/app","mode":448}]`, id, id},
		{"overwritten directory", "var/app", dir, `"directories":[{"path":"/var/app","overwrite":true}]`, 0, 0},
		{"kept link", "etc/localtime", link, `"links":[{"path":"/etc/localtime","target":"/usr/share/zoneinfo/UTC"}]`, id, id},
		{"overwritten link", "etc/localtime", link, `"links":[{"path":"/etc/localtime","target":"/usr/share/zoneinfo/UTC","overwrite":true}]`, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := newRoot(t)
			os.MkdirAll(filepath.Join(root, "var"), 0o755)
			if c.before != nil {
				if err := c.before(root, c.path); err != nil {
					t.Fatal(err)
				}
				if err := os.Lchown(filepath.Join(root, c.path), id, id); err != nil {
					t.Fatal(err)
				}
			}
			if err := apply(t, root, []byte(`{"ignition":{"version":"3.4.0"},"storage":{`+c.storage+`}}`)); err != nil {
				t.Fatal(err)
			}
			if uid, gid := fileOwner(t, filepath.Join(root, c.path)); uid != c.uid || gid != c.gid {
				t.Errorf("owned by %d:%d, want %d:%d", uid, gid, c.uid, c.gid)
			}
		})
	}
}

func TestApplyStaysInsideRoot(t *testing.T) {
	testenv.RequireRoot(t)
	root := newRoot(t)
	outside := t.TempDir()
	// A hostile (or careless) image: /etc/escape points outside the root by an absolute symlink.
	if err := os.Symlink(outside, filepath.Join(root, "etc/escape")); err != nil {
		t.Fatal(err)
	}
	raw := `{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/escape/pwned","contents":{"source":"data:,x"}}],
		"links":[{"path":"/etc/escape/l","target":"/etc/passwd","hard":true}]}}`
	if err := apply(t, root, []byte(raw)); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("wrote outside the root: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(root, outside, "pwned")); err != nil {
		t.Fatalf("file not placed inside the root: %v", err)
	}
}

func TestApplyRefusesBeforeWriting(t *testing.T) {
	testenv.RequireRoot(t)
	cases := map[string]string{
		"existing file without overwrite": `{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/hostname","contents":{"source":"data:,x"}}]}}`,
		"unknown owner":                   `{"ignition":{"version":"3.4.0"},"passwd":{"users":[{"name":"a"}]},"storage":{"files":[{"path":"/etc/x","user":{"name":"nobody2"}}]}}`,
		"unknown group":                   `{"ignition":{"version":"3.4.0"},"passwd":{"users":[{"name":"a","groups":["wheel"]}]}}`,
		"enable without install":          `{"ignition":{"version":"3.4.0"},"systemd":{"units":[{"name":"x.service","enabled":true,"contents":"[Service]\nExecStart=/bin/true\n"}]}}`,
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			root := newRoot(t)
			before := read(t, filepath.Join(root, "etc/passwd"))
			err := apply(t, root, []byte(raw))
			if err == nil {
				t.Fatal("applied; want an error")
			}
			if name != "existing file without overwrite" && name != "enable without install" {
				if after := read(t, filepath.Join(root, "etc/passwd")); after != before {
					t.Fatalf("passwd changed although the config was refused: %v", err)
				}
			}
		})
	}
}

func TestRunnerAppliesOnce(t *testing.T) {
	testenv.RequireRoot(t)
	root := newRoot(t)
	src := filepath.Join(t.TempDir(), "config.ign")
	if err := os.WriteFile(src, fullConfig(t), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &Runner{Root: root, Sources: []string{filepath.Join(t.TempDir(), "absent"), src}, Marker: DefaultMarker,
		Log: slog.New(slog.DiscardHandler)}
	applied, err := r.Run(context.Background())
	if err != nil || !applied {
		t.Fatalf("first run: applied %v, %v", applied, err)
	}
	if m := read(t, filepath.Join(root, DefaultMarker)); !strings.HasPrefix(m, "sha512-") {
		t.Fatalf("marker %q", m)
	}
	// A second boot must not apply the config again: an administrator's change stays.
	os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("changed-by-admin\n"), 0o644)
	applied, err = r.Run(context.Background())
	if err != nil || applied {
		t.Fatalf("second run: applied %v, %v", applied, err)
	}
	if got := read(t, filepath.Join(root, "etc/hostname")); got != "changed-by-admin\n" {
		t.Fatalf("second boot re-applied the config: hostname %q", got)
	}
}

func TestRunnerBadConfigLeavesNoMarker(t *testing.T) {
	root := newRoot(t)
	src := filepath.Join(t.TempDir(), "config.ign")
	os.WriteFile(src, []byte(`{"ignition":{"version":"3.4.0"},"storage":{"disks":[{"device":"/dev/vda"}]}}`), 0o600)
	r := &Runner{Root: root, Sources: []string{src}, Marker: DefaultMarker, Log: slog.New(slog.DiscardHandler)}
	if _, err := r.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "storage.disks") {
		t.Fatalf("err %v, want one naming storage.disks", err)
	}
	if _, err := os.Stat(filepath.Join(root, DefaultMarker)); !os.IsNotExist(err) {
		t.Fatalf("marker written after a failed first boot: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"ignition":{"version":"3.4.0"}}`))
	f.Add([]byte(`{"ignition":{"version":"3.0.0"},"storage":{"files":[{"path":"/a","contents":{"source":"data:;base64,aGk=","compression":"gzip"}}]}}`))
	f.Add([]byte(`{"ignition":{"version":"3.3.0"},"systemd":{"units":[{"name":"a@b.service","enabled":true}]},"passwd":{"users":[{"name":"x","uid":5}]}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, _, err := Parse(raw)
		if err != nil {
			return
		}
		if _, err := MakePlan(cfg); err != nil && errors.Is(err, ErrUnsupported) {
			t.Fatalf("MakePlan found an unsupported key that Parse accepted: %v", err)
		}
	})
}

func TestMainFlags(t *testing.T) {
	testenv.RequireRoot(t) // files are made root-owned
	root := newRoot(t)
	cfg := filepath.Join(t.TempDir(), "c.ign")
	os.WriteFile(cfg, []byte(`{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/cairn-test","contents":{"source":"data:,ok"}}]}}`), 0o600)
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"--root", root, "--config", filepath.Join(root, "absent"), "--config", cfg}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if got := read(t, filepath.Join(root, "etc/cairn-test")); got != "ok" || !strings.Contains(out.String(), "applied") {
		t.Fatalf("file %q, stdout %q", got, out.String())
	}
	if code := Main(context.Background(), []string{"--bogus"}, &out, &errb); code != 2 {
		t.Fatalf("bad flag: exit %d", code)
	}
}
