package rktdocs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// gpgBatch is the signing guide's key: RSA 2048 with an RSA subkey, passphrase rkt.
const gpgBatch = `%echo Generating a default key
Key-Type: RSA
Key-Length: 2048
Subkey-Type: RSA
Subkey-Length: 2048
Name-Real: Carly Container
Name-Comment: ACI signing key
Name-Email: carly@example.com
Expire-Date: 0
Passphrase: rkt
%pubring rkt.pub
%secring rkt.sec
%commit
%echo done
`

// signingGuide walks signing-and-verification-guide.md: gpg makes the key and the detached
// signature of the hello ACI (GnuPG 2 in batch mode, in a home of its own: it asks for the
// passphrase through --pinentry-mode loopback, ignores --secret-keyring, and reads an armored
// key with --show-keys rather than as a keyring), and rkt trusts the key and verifies the image.
// The image is the file that discovery of example.com/hello:0.0.1 would download.
func signingGuide(c *docCase) {
	defer os.RemoveAll("/etc/rkt/trustedkeys")
	c.fresh()
	gpg := opts{env: []string{"GNUPGHOME=" + c.TempDir()}}
	c.writeFile(filepath.Join(c.cwd, "gpg-batch"), gpgBatch)
	step := func(line string) result {
		c.Helper()
		r := c.sh(line, gpg)
		if r.code != 0 {
			c.Fatalf("%s: %s", line, r)
		}
		return r
	}
	step("gpg --batch --gen-key gpg-batch")
	r := step("gpg --no-default-keyring --secret-keyring ./rkt.sec --keyring ./rkt.pub --list-keys")
	c.want(hasLine(r.out, `uid\s+\[ ?unknown\] Carly Container \(ACI signing key\) <carly@example\.com>`), "the key: %s", r)
	step("gpg --no-default-keyring --armor --secret-keyring ./rkt.sec --keyring ./rkt.pub --export carly@example.com > pubkeys.gpg")
	aci := c.file("hello-0.0.1-linux-amd64.aci")
	step("gpg --no-default-keyring --armor --secret-keyring ./rkt.sec --keyring ./rkt.pub --batch --pinentry-mode loopback --passphrase rkt " +
		"--output hello-0.0.1-linux-amd64.aci.asc --detach-sig hello-0.0.1-linux-amd64.aci")
	r = step("gpg --no-default-keyring --secret-keyring ./rkt.sec --keyring ./rkt.pub --verify hello-0.0.1-linux-amd64.aci.asc hello-0.0.1-linux-amd64.aci")
	c.want(strings.Contains(r.err, `Good signature from "Carly Container (ACI signing key) <carly@example.com>"`), "gpg --verify: %s", r)
	r = step("gpg --with-colons --show-keys pubkeys.gpg | awk -F: '$1 == \"fpr\" {print $10; exit}' | tr -d '[:space:]' | tr '[:upper:]' '[:lower:]'")
	fp := strings.TrimSpace(r.out)
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(fp) {
		c.Fatalf("the key's fingerprint: %q", fp)
	}

	// rkt trust, with the key's file for its URL.
	r = c.rktWith(opts{stdin: "yes\n"}, "trust", "--prefix=example.com/hello", "pubkeys.gpg")
	c.want(r.code == 0 && matchLines(r.out, `Added key for prefix "example\.com/hello" at "/etc/rkt/trustedkeys/prefix\.d/example\.com/hello/`+fp+`"`) == nil &&
		hasLine(r.err, `GPG key fingerprint is: `+grouped(fp)) && hasLine(r.err, `\s+Carly Container \(ACI signing key\) <carly@example\.com>`),
		"rkt trust --prefix=example.com/hello: %s", r)
	// By hand, as the guide does it next.
	os.RemoveAll("/etc/rkt/trustedkeys")
	step("mkdir -p /etc/rkt/trustedkeys/prefix.d/example.com/hello && mv pubkeys.gpg /etc/rkt/trustedkeys/prefix.d/example.com/hello/" + fp)

	carly := `.*signature verified.* signer="Carly Container \(ACI signing key\) <carly@example\.com>".*`
	r = c.rkt("run", "./"+aci)
	c.want(r.code == 0 && r.out == "hello\n" && hasLine(r.err, carly), "rkt run of the verified image: %s", r)
	r = c.rkt("--insecure-options=image", "run", "./"+aci)
	c.want(r.code == 0 && r.out == "hello\n" && hasLine(r.err, `(?i).*signature verification (has been|is) disabled.*`), "rkt run without the check: %s", r)
	r = c.rkt("fetch", "./"+aci)
	c.want(r.code == 0 && matchLines(r.out, `sha512-[0-9a-f]{32}`) == nil && hasLine(r.err, carly), "rkt fetch of the verified image: %s", r)
	id := strings.TrimSpace(r.out)
	r = c.rkt("--insecure-options=image", "fetch", "./"+aci)
	c.want(r.code == 0 && strings.TrimSpace(r.out) == id && hasLine(r.err, `(?i).*signature verification (has been|is) disabled.*`), "rkt fetch without the check: %s", r)
	// Without the key, the image is refused.
	os.RemoveAll("/etc/rkt/trustedkeys")
	r = c.rkt("fetch", "./"+aci)
	c.want(r.code != 0, "rkt fetch with no key for example.com/hello: %s", r)
}

// signingMask: a distribution's key for a prefix, in /usr/lib/rkt, is disabled by an empty file
// of the same name in /etc/rkt. The vendor key here is the replay's, moved from root.d to
// prefix.d/coreos.com for the case.
func signingMask(c *docCase) {
	fp, err := os.ReadFile(filepath.Join(c.r.images, "replay.fingerprint"))
	if err != nil {
		c.Fatal(err)
	}
	root := "/usr/lib/rkt/trustedkeys/root.d/" + string(fp)
	vendor := "/usr/lib/rkt/trustedkeys/prefix.d/coreos.com/" + string(fp)
	mask := "/etc/rkt/trustedkeys/prefix.d/coreos.com/" + string(fp)
	c.mkdir(filepath.Dir(vendor))
	if err := os.Rename(root, vendor); err != nil {
		c.Fatal(err)
	}
	defer os.Rename(vendor, root)
	defer os.RemoveAll("/etc/rkt/trustedkeys")
	c.fresh()
	aci := c.file("etcd-v2.0.0-linux-amd64.aci")
	r := c.rkt("fetch", aci)
	c.want(r.code == 0 && matchLines(r.out, `sha512-[0-9a-f]{32}`) == nil, "rkt fetch with the vendor's key for coreos.com: %s", r)
	c.writeFile(mask, "")
	r = c.rkt("fetch", aci)
	c.want(r.code != 0 && strings.Contains(r.err, "coreos.com/etcd"), "rkt fetch with the vendor's key masked: %s", r)
}

func init() { cases["signing/mask"] = signingMask }
