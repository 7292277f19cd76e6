package payloadtool

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestKeygenSignVerifyInspect(t *testing.T) {
	dir := t.TempDir()
	usr, uki, out := filepath.Join(dir, "usr.img"), filepath.Join(dir, "uki.efi"), filepath.Join(dir, "p.cairn")
	os.WriteFile(usr, bytes.Repeat([]byte("usr"), 10000), 0o644)
	os.WriteFile(uki, []byte("uki"), 0o644)
	if c, _, e := run(t, "keygen", "-out", filepath.Join(dir, "k")); c != 0 {
		t.Fatalf("keygen: %s", e)
	}
	if c, _, e := run(t, "keygen", "-out", filepath.Join(dir, "other")); c != 0 {
		t.Fatalf("keygen: %s", e)
	}
	if c, _, e := run(t, "sign", "-key", filepath.Join(dir, "k.key.pem"), "-version", "2.0.0", "-usr", usr, "-uki", uki, "-o", out); c != 0 {
		t.Fatalf("sign: %s", e)
	}
	if c, o, e := run(t, "verify", "-pub", filepath.Join(dir, "k.pub.pem"), out); c != 0 || !strings.Contains(o, "OK") {
		t.Fatalf("verify: %d %s %s", c, o, e)
	}
	if c, _, e := run(t, "verify", "-pub", filepath.Join(dir, "other.pub.pem"), out); c != 1 || !strings.Contains(e, "signature") {
		t.Fatalf("verify with the wrong key: %d %s", c, e)
	}
	if c, o, _ := run(t, "inspect", "-format=json", out); c != 0 || !strings.Contains(o, `"version": "2.0.0"`) {
		t.Fatalf("inspect: %s", o)
	}
	if c, _, _ := run(t, "bogus"); c != 2 {
		t.Fatal("unknown command accepted")
	}
}

func TestSignWithExtensions(t *testing.T) {
	dir := t.TempDir()
	usr, uki, out := filepath.Join(dir, "usr.img"), filepath.Join(dir, "uki.efi"), filepath.Join(dir, "p.cairn")
	os.WriteFile(usr, []byte("usr"), 0o644)
	os.WriteFile(uki, []byte("uki"), 0o644)
	ext := filepath.Join(dir, "kubernetes-v1.37.2.raw")
	os.WriteFile(ext, []byte("image"), 0o644)
	hash := strings.Repeat("5a", 32)
	os.WriteFile(filepath.Join(dir, "kubernetes-v1.37.2.usrhash"), []byte(hash+"\n"), 0o644)
	if c, _, e := run(t, "keygen", "-out", filepath.Join(dir, "k")); c != 0 {
		t.Fatalf("keygen: %s", e)
	}
	sign := []string{"sign", "-key", filepath.Join(dir, "k.key.pem"), "-version", "2.0.0", "-usr", usr, "-uki", uki, "-o", out, "-extension", ext}
	if c, _, e := run(t, sign...); c == 0 || !strings.Contains(e, "-extension-url") {
		t.Fatalf("extension without a URL: %d %s", c, e)
	}
	if c, _, e := run(t, append(sign, "-extension-url", "https://updates.example/2.0.0/")...); c != 0 {
		t.Fatalf("sign: %s", e)
	}
	c, o, _ := run(t, "inspect", out)
	// sha256 of "image"
	want := "extension kubernetes-v1.37.2 size 5 sha256 6105d6cc76af400325e94d588ce511be5bfdbb73b437dc51eca43917d7a43e3d usrhash " + hash +
		" url https://updates.example/2.0.0/kubernetes-v1.37.2.raw"
	if c != 0 || !strings.Contains(o, want) {
		t.Fatalf("inspect:\n%s\nwant the line\n%s", o, want)
	}
	if c, o, _ := run(t, "inspect", "-format=json", out); c != 0 || !strings.Contains(o, `"format": 2`) {
		t.Fatalf("inspect: %s", o)
	}
}
