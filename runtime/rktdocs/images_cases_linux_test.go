package rktdocs

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

const fullID = `sha512-[0-9a-f]{128}`

// Cases of subcommands/image.md, fetch.md, trust.md, config.md and the signing guide.
func init() {
	cases["image/cat-manifest"] = func(c *docCase) {
		r := c.rkt("image", "cat-manifest", "coreos.com/etcd")
		var m struct{ ACVersion, ACKind, Name string }
		ls := lines(r.out)
		c.want(r.code == 0 && json.Unmarshal([]byte(r.out), &m) == nil && m.ACVersion == "0.8.11" && m.ACKind == "ImageManifest" &&
			m.Name == "coreos.com/etcd" && len(ls) > 3 && ls[0] == "{", "rkt image cat-manifest: %s", r)
	}
	cases["image/export"] = func(c *docCase) {
		r := c.rkt("image", "export", "coreos.com/etcd", "etcd.aci")
		c.want(r.code == 0, "rkt image export: %s", r)
		// Uncompressed, as the documents say, so the file's sha512 is the image's ID.
		b, err := os.ReadFile(filepath.Join(c.cwd, "etcd.aci"))
		sum := sha512.Sum512(b)
		// coreos.com/etcd names the newest of its versions in the store, v2.3.4.
		c.want(err == nil && "sha512-"+hex.EncodeToString(sum[:]) == c.imageID("coreos.com/etcd:v2.3.4"), "the exported ACI is not the stored image's tar")
		t := c.sh("tar xvf etcd.aci", opts{})
		c.want(t.code == 0 && hasLine(t.out, "manifest") && hasLine(t.out, "rootfs/etcd") && hasLine(t.out, "rootfs/etcdctl"), "tar xvf etcd.aci: %s", t)
	}
	cases["image/extract"] = func(c *docCase) {
		r := c.rkt("image", "extract", "coreos.com/etcd", "etcd-extracted")
		c.want(r.code == 0, "rkt image extract: %s", r)
		f := c.sh("find etcd-extracted", opts{})
		for _, p := range []string{"etcd-extracted", "etcd-extracted/manifest", "etcd-extracted/rootfs", "etcd-extracted/rootfs/etcd", "etcd-extracted/rootfs/etcdctl"} {
			c.want(hasLine(f.out, regexp.QuoteMeta(p)), "find etcd-extracted has no %s: %s", p, f)
		}
		// The documents extract into the same directory again, as if it had been removed.
		os.RemoveAll(filepath.Join(c.cwd, "etcd-extracted"))
		r = c.rkt("image", "extract", "--rootfs-only", "coreos.com/etcd", "etcd-extracted")
		c.want(r.code == 0, "rkt image extract --rootfs-only: %s", r)
		f = c.sh("find etcd-extracted", opts{})
		for _, p := range []string{"etcd-extracted", "etcd-extracted/etcd", "etcd-extracted/etcdctl"} {
			c.want(hasLine(f.out, regexp.QuoteMeta(p)), "find etcd-extracted has no %s: %s", p, f)
		}
		c.want(!hasLine(f.out, "etcd-extracted/manifest"), "--rootfs-only extracted the manifest: %s", f)
	}
	cases["image/gc"] = func(c *docCase) {
		c.fresh("etcd-v2.0.9-linux-amd64.aci", "redis.aci")
		// Images fetched a moment ago are within 48 hours of their last use: nothing goes.
		r := c.rkt("image", "gc", "--grace-period", "48h")
		c.want(r.code == 0 && r.out == "" && !strings.Contains(r.err, "removed"), "rkt image gc --grace-period 48h: %s", r)
		r = c.rkt("image", "gc", "--grace-period", "0s")
		c.want(r.code == 0 && matchLines(r.out, `successfully removed aci for image: "`+fullID+`"( \(".*"\))?`, `successfully removed aci for image: "`+fullID+`"( \(".*"\))?`) == nil &&
			hasLine(r.err, `(gc: |rkt: )?2 image\(s\) successfully removed`), "rkt image gc --grace-period 0s: %s", r)
		l := c.rkt("image", "list", "--no-legend")
		c.want(strings.TrimSpace(l.out) == "", "images left after gc: %s", l)
	}
	cases["image/list"] = func(c *docCase) {
		// The documents show an older rkt's columns; rkt 1.30 printed ID NAME SIZE IMPORT TIME
		// LAST USED (its --fields default), as Cairn does.
		size := `\d+(\.\d+)?[KMG]?i?B`
		r := c.rkt("image", "list")
		ls := strings.Split(strings.TrimRight(r.out, "\n"), "\n")
		c.want(r.code == 0 && slices.Equal(fieldsOf(ls, 0), []string{"ID", "NAME", "SIZE", "IMPORT TIME", "LAST USED"}), "rkt image list's header: %s", r)
		c.want(c.row(ls, shortID, `coreos\.com/etcd:v2\.0\.9`, size, relTime, relTime), "no etcd row in rkt image list: %s", r)
		r = c.rkt("image", "list", "--full")
		ls = strings.Split(strings.TrimRight(r.out, "\n"), "\n")
		c.want(r.code == 0 && slices.Equal(fieldsOf(ls, 0), []string{"ID", "NAME", "SIZE", "IMPORT TIME", "LAST USED"}), "rkt image list --full's header: %s", r)
		c.want(c.row(ls, fullID, `coreos\.com/etcd:v2\.0\.9`, `\d+`, absTime, absTime), "no etcd row in rkt image list --full: %s", r)
		// The --full example is a Docker image: its name and ID are the registry's.
		c.differs("docker-images")
		c.want(c.row(ls, `sha256:[0-9a-f]{64}`, `docker\.io/library/redis:latest`, `\d+`, absTime, absTime), "no redis row in rkt image list --full: %s", r)
	}
	cases["image/rm"] = func(c *docCase) {
		c.fresh("etcd-v2.0.9-linux-amd64.aci", "redis.aci")
		id := c.imageID("redis")
		r := c.rkt("image", "rm", id[:len("sha512-")+12], "coreos.com/etcd")
		c.want(r.code == 0 && matchLines(r.out, `successfully removed aci for image: "`+id+`"( \("redis"\))?`,
			`successfully removed aci for image: "`+fullID+`"( \("coreos\.com/etcd"\))?`) == nil &&
			hasLine(r.err, `(rm: |rkt: )?2 image\(s\) successfully removed`), "rkt image rm: %s", r)
		l := c.rkt("image", "list", "--no-legend")
		c.want(strings.TrimSpace(l.out) == "", "images left after rm: %s", l)
	}
	cases["image/verify"] = func(c *docCase) {
		c.differs("docker-images")
		id := c.imageID("coreos.com/etcd:v2.0.9")
		r := c.rkt("image", "verify", "quay.io/coreos/etcd:v3.1.0", id[:len("sha512-")+12])
		c.want(r.code == 0 && matchLines(r.out,
			`successfully verified checksum for image: "quay\.io/coreos/etcd:v3\.1\.0" \("sha256:[0-9a-f]{64}"\)`,
			`successfully verified checksum for image: "`+id[:len("sha512-")+12]+`" \("`+id+`"\)`) == nil, "rkt image verify: %s", r)
	}
	cases["fetch"] = func(c *docCase) {
		// What discovery or the URL would download, as a file with its signature beside it.
		c.fresh()
		aci := c.file("etcd-v2.0.0-linux-amd64.aci")
		r := c.rkt("fetch", aci)
		c.want(r.code == 0 && matchLines(r.out, `sha512-[0-9a-f]{32}`) == nil && hasLine(r.err, `.*signature verified.* signer="Cairn docs replay .*`),
			"rkt fetch of a trusted image: %s", r)
		r = c.rkt("fetch", filepath.Join(c.cwd, aci))
		c.want(r.code == 0 && matchLines(r.out, `sha512-[0-9a-f]{32}`) == nil, "rkt fetch from a location: %s", r)
		// The documents' untrusted fetch went through unverified in an early rkt; rkt 1.30
		// refused it, as Cairn does, and says how to trust the key.
		untrusted := c.TempDir()
		r = c.rkt("--system-config="+untrusted, "fetch", aci)
		c.want(r.code != 0 && strings.Contains(r.err, "rkt trust"), "rkt fetch of an image whose publisher is not trusted: %s", r)
	}
	cases["trust"] = func(c *docCase) {
		defer os.RemoveAll("/etc/rkt/trustedkeys")
		root := c.gpgKey("Root Key <root@example.com>", filepath.Join(c.r.home, "aci-pubkeys.gpg"))
		r := c.rktWith(opts{stdin: "yes\n"}, "trust", "--root", filepath.Join(c.r.home, "aci-pubkeys.gpg"))
		c.want(r.code == 0 && matchLines(r.out, `Added root key at "/etc/rkt/trustedkeys/root\.d/`+root+`"`) == nil, "rkt trust --root: %s", r)
		// The key's URL becomes its file: the documents say keys come from disk or https.
		keyFile := filepath.Join(c.cwd, "aci-pubkeys.gpg")
		etcd := c.gpgKey("CoreOS ACI Builder <release@coreos.com>", keyFile)
		r = c.rktWith(opts{stdin: "yes\n"}, "trust", "--prefix=coreos.com/etcd", keyFile)
		c.want(r.code == 0 && matchLines(r.err, `Prefix: "coreos\.com/etcd"`, `Key: "`+regexp.QuoteMeta(keyFile)+`"`,
			`GPG key fingerprint is: `+grouped(etcd), `\s+CoreOS ACI Builder <release@coreos\.com>`,
			`Are you sure you want to trust this key \(yes/no\)\?( yes)?`,
			`Trusting "`+regexp.QuoteMeta(keyFile)+`" for prefix "coreos\.com/etcd"( after fingerprint review)?\.`) == nil &&
			matchLines(r.out, `Added key for prefix "coreos\.com/etcd" at "/etc/rkt/trustedkeys/prefix\.d/coreos\.com/etcd/`+etcd+`"`) == nil,
			"rkt trust --prefix=coreos.com/etcd KEY: %s", r)
		f := c.sh("find /etc/rkt/trustedkeys/", opts{})
		want := []string{"/etc/rkt/trustedkeys/", "/etc/rkt/trustedkeys/prefix.d", "/etc/rkt/trustedkeys/prefix.d/coreos.com",
			"/etc/rkt/trustedkeys/prefix.d/coreos.com/etcd", "/etc/rkt/trustedkeys/prefix.d/coreos.com/etcd/" + etcd,
			"/etc/rkt/trustedkeys/root.d", "/etc/rkt/trustedkeys/root.d/" + root}
		c.want(slices.Equal(sorted(lines(f.out)), sorted(want)), "find /etc/rkt/trustedkeys/: %q, want %q", lines(f.out), want)
	}
	cases["config"] = func(c *docCase) {
		defer os.RemoveAll("/etc/rkt/auth.d")
		defer os.RemoveAll("/etc/rkt/paths.d")
		defer os.RemoveAll("/etc/rkt/stage1.d")
		user := filepath.Join(c.r.home, ".config", "rkt")
		defer os.RemoveAll(user)
		c.writeFile("/etc/rkt/auth.d/basic.json", `{"rktKind": "auth", "rktVersion": "v1", "domains": ["foo.com", "bar.com", "baz.com"],
			"type": "basic", "credentials": {"user": "sysUser", "password": "sysPassword"}}`)
		c.writeFile(user+"/auth.d/basic.json", `{"rktKind": "auth", "rktVersion": "v1", "domains": ["foo.com"],
			"type": "basic", "credentials": {"user": "user", "password": "password"}}`)
		// rkt read a user configuration directory only when --user-config named one; the
		// documents' example has it in ~/.config/rkt.
		r := c.rkt("--user-config="+user, "config")
		c.want(r.code == 0 && reflect.DeepEqual(authEntries(c, r.out), []any{
			authEntry("bar.com", "basic", "user", "sysUser", "password", "sysPassword"),
			authEntry("baz.com", "basic", "user", "sysUser", "password", "sysPassword"),
			authEntry("foo.com", "basic", "user", "user", "password", "password"),
		}), "rkt config merging the system's and the user's auth.d: %s", r)
		// The second example's output, from the files that make it.
		c.writeFile("/etc/rkt/auth.d/basic.json", `{"rktKind": "auth", "rktVersion": "v1", "domains": ["foo.com"],
			"type": "basic", "credentials": {"user": "user", "password": "userPassword"}}`)
		c.writeFile("/etc/rkt/auth.d/oauth.json", `{"rktKind": "auth", "rktVersion": "v1", "domains": ["bar.com"],
			"type": "oauth", "credentials": {"token": "someToken"}}`)
		c.writeFile("/etc/rkt/paths.d/paths.json", `{"rktKind": "paths", "rktVersion": "v1", "data": "/var/lib/rkt", "stage1-images": "/usr/lib/rkt"}`)
		c.writeFile("/etc/rkt/stage1.d/coreos.json", `{"rktKind": "stage1", "rktVersion": "v1", "name": "coreos.com/rkt/stage1-coreos",
			"version": "0.15.0+git", "location": "/usr/libexec/rkt/stage1-coreos.aci"}`)
		// rkt config does not touch the data directory: it runs as the documents show it.
		cmd := plain(c, c.r.rkt, "config")
		var got, want any
		json.Unmarshal([]byte(cmd.out), &got)
		json.Unmarshal([]byte(`{"stage0": [
			{"rktVersion": "v1", "rktKind": "auth", "domains": ["bar.com"], "type": "oauth", "credentials": {"token": "someToken"}},
			{"rktVersion": "v1", "rktKind": "auth", "domains": ["foo.com"], "type": "basic", "credentials": {"user": "user", "password": "userPassword"}},
			{"rktVersion": "v1", "rktKind": "paths", "data": "/var/lib/rkt", "stage1-images": "/usr/lib/rkt"},
			{"rktVersion": "v1", "rktKind": "stage1", "name": "coreos.com/rkt/stage1-coreos", "version": "0.15.0+git", "location": "/usr/libexec/rkt/stage1-coreos.aci"}]}`), &want)
		c.want(cmd.code == 0 && reflect.DeepEqual(got, want), "rkt config: %s", cmd)
	}
	cases["signing"] = signingGuide
}

// row reports whether a line of the table ls has columns matching the patterns.
func (c *docCase) row(ls []string, patterns ...string) bool {
	for _, l := range ls[min(1, len(ls)):] {
		f := fields(l)
		if len(f) != len(patterns) {
			continue
		}
		ok := true
		for i, p := range patterns {
			ok = ok && regexp.MustCompile("^"+p+"$").MatchString(f[i])
		}
		if ok {
			return true
		}
	}
	return false
}

// gpgKey makes a signing key for identity with gpg, writes its armored public key to path
// and returns its fingerprint (lower-case hex, as rkt names key files).
func (c *docCase) gpgKey(identity, path string) string {
	c.Helper()
	home := opts{env: []string{"GNUPGHOME=" + c.TempDir()}}
	for _, line := range []string{
		"gpg --batch --passphrase '' --quick-gen-key " + shellQuote([]string{identity}) + " ed25519 sign never",
		"gpg --armor --export " + shellQuote([]string{identity}) + " > " + shellQuote([]string{path}),
	} {
		if r := c.sh(line, home); r.code != 0 {
			c.Fatalf("%s: %s", line, r)
		}
	}
	r := c.sh("gpg --with-colons --show-keys "+shellQuote([]string{path})+" | awk -F: '$1 == \"fpr\" {print tolower($10); exit}'", home)
	fp := strings.TrimSpace(r.out)
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(fp) {
		c.Fatalf("the key's fingerprint: %s", r)
	}
	return fp
}

// grouped is the pattern of a fingerprint as gpg groups it (blocks of four, upper case).
func grouped(fp string) string {
	var b []string
	for i := 0; i < len(fp); i += 4 {
		b = append(b, strings.ToUpper(fp[i:min(i+4, len(fp))]))
	}
	return strings.Join(b, " +")
}

func (c *docCase) writeFile(path, content string) {
	c.Helper()
	c.mkdir(filepath.Dir(path))
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		c.Fatal(err)
	}
}

// plain runs a command as the documents show it, without the replay's data directory.
func plain(c *docCase, prog string, args ...string) result {
	c.Helper()
	return c.sh(shellQuote(append([]string{prog}, args...)), opts{})
}

// authEntries are rkt config's auth entries.
func authEntries(c *docCase, out string) []any {
	c.Helper()
	var cfg struct{ Stage0 []map[string]any }
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		c.Errorf("rkt config's output: %v", err)
		return nil
	}
	var es []any
	for _, e := range cfg.Stage0 {
		if e["rktKind"] == "auth" {
			es = append(es, e)
		}
	}
	return es
}

func authEntry(domain, typ string, creds ...string) map[string]any {
	cr := map[string]any{}
	for i := 0; i+1 < len(creds); i += 2 {
		cr[creds[i]] = creds[i+1]
	}
	return map[string]any{"rktVersion": "v1", "rktKind": "auth", "domains": []any{domain}, "type": typ, "credentials": cr}
}
