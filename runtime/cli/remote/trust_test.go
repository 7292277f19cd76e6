package remote

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/runtime/fetch/fetchtest"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/fixture/fixturetest"
	"github.com/cairn-os/cairn/runtime/stage1"
)

func TestTrust(t *testing.T) {
	k := fixturetest.NewKey(t, "publisher", fixture.KeyOptions{})
	keyFile := filepath.Join(t.TempDir(), "key.asc")
	os.WriteFile(keyFile, k.Public, 0o644)
	e := newRktEnv(t)

	_, errOut, code := e.Rkt(t, "no\n", "trust", "--prefix=example.com/app", keyFile)
	if code != stage1.ExitFailure || !strings.Contains(errOut, "not confirmed") {
		t.Fatalf("declined: code %d stderr %q", code, errOut)
	}
	prefixDir := filepath.Join(e.Local, "trustedkeys/prefix.d/example.com/app")
	if _, err := os.Stat(filepath.Join(prefixDir, k.Fingerprint)); err == nil {
		t.Fatal("declined key was stored")
	}
	grouped := strings.ToUpper(k.Fingerprint[:4]) + " " + strings.ToUpper(k.Fingerprint[4:8])
	out, errOut, code := e.Rkt(t, "yes\n", "trust", "--prefix=example.com/app", keyFile)
	if code != 0 || !strings.Contains(errOut, grouped) || !strings.Contains(errOut, "publisher@example.com") ||
		!strings.Contains(out, filepath.Join(prefixDir, k.Fingerprint)) ||
		!strings.Contains(errOut, fmt.Sprintf("Trusting %q for prefix \"example.com/app\" after fingerprint review.\n", keyFile)) {
		t.Fatalf("accepted: code %d stderr %q", code, errOut)
	}
	out, errOut, code = e.Rkt(t, "", "trust", "--root", "--skip-fingerprint-review", keyFile)
	if code != 0 || !strings.Contains(out, filepath.Join(e.Local, "trustedkeys/root.d", k.Fingerprint)) ||
		!strings.Contains(errOut, fmt.Sprintf("Trusting %q for every image without fingerprint review.\n", keyFile)) {
		t.Fatalf("root: code %d stdout %q stderr %q", code, out, errOut)
	}
}

func TestTrustFromURLAndDiscovery(t *testing.T) {
	k := fixturetest.NewKey(t, "publisher", fixture.KeyOptions{})
	srv := fetchtest.New(t)
	useServer(t, srv)
	srv.Handle("/key.asc", k.Public)
	srv.Handle("/app", []byte(`<meta name="ac-discovery-pubkeys" content="example.com/app https://example.com/key.asc">`))
	e := newRktEnv(t)

	if _, _, code := e.Rkt(t, "", "trust", "--skip-fingerprint-review", "--prefix=example.com/app", "https://example.com/key.asc"); code != 0 {
		t.Fatal("trust from https failed")
	}
	_, errOut, code := e.Rkt(t, "", "trust", "--skip-fingerprint-review", "--prefix=example.com/app", "http://example.com/key.asc")
	if code != stage1.ExitFailure || !strings.Contains(errOut, "http") {
		t.Fatalf("http without --insecure-allow-http: code %d stderr %q", code, errOut)
	}
	if _, _, code := e.Rkt(t, "", "trust", "--skip-fingerprint-review", "--insecure-allow-http", "--prefix=example.com/app", "http://example.com/key.asc"); code != 0 {
		t.Fatal("trust over allowed http failed")
	}
	e2 := newRktEnv(t)
	out, _, code := e2.Rkt(t, "", "trust", "--skip-fingerprint-review", "--prefix=example.com/app")
	if code != 0 || !strings.Contains(out, k.Fingerprint) {
		t.Fatalf("discovered key: code %d stdout %q", code, out)
	}

	// Keys announced on plain http need --insecure-allow-http.
	srv.Handle("/other", []byte(`<meta name="ac-discovery-pubkeys" content="example.com/other http://example.com/key.asc">`))
	_, errOut, code = e2.Rkt(t, "", "trust", "--skip-fingerprint-review", "--prefix=example.com/other")
	if code != stage1.ExitFailure || !strings.Contains(errOut, "--insecure-options=http") {
		t.Fatalf("http key without the flag: code %d stderr %q", code, errOut)
	}
	if _, _, code = e2.Rkt(t, "", "trust", "--skip-fingerprint-review", "--insecure-allow-http", "--prefix=example.com/other"); code != 0 {
		t.Fatalf("http key with --insecure-allow-http: code %d", code)
	}
}

func TestTrustRefuses(t *testing.T) {
	k := fixturetest.NewKey(t, "publisher", fixture.KeyOptions{})
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.asc")
	os.WriteFile(keyFile, k.Public, 0o644)
	revoked := fixturetest.NewKey(t, "revoked", fixture.KeyOptions{})
	revokedFile := filepath.Join(dir, "revoked.asc")
	os.WriteFile(revokedFile, revoked.Revoke(), 0o644)
	garbage := filepath.Join(dir, "garbage.asc")
	os.WriteFile(garbage, []byte("not a key"), 0o644)
	e := newRktEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"trust", keyFile}, "--prefix required"},
		{[]string{"trust", "--root", "--prefix=example.com", keyFile}, "mutually exclusive"},
		{[]string{"trust", "--prefix=Bad/Prefix", "--skip-fingerprint-review", keyFile}, "not a valid appc image name"},
		{[]string{"trust", "--prefix=example.com/../x", "--skip-fingerprint-review", keyFile}, "not a valid appc image name"},
		{[]string{"trust", "--prefix=example.com", "--skip-fingerprint-review", revokedFile}, "revoked"},
		{[]string{"trust", "--prefix=example.com", "--skip-fingerprint-review", garbage}, "not an ASCII-armored OpenPGP key"},
		{[]string{"trust", "--prefix=example.com", "--skip-fingerprint-review", filepath.Join(dir, "missing.asc")}, "no such file"},
	} {
		_, errOut, code := e.Rkt(t, "", tc.args...)
		if code != stage1.ExitFailure || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("rkt %v: code %d stderr %q; want one line with %q", tc.args, code, errOut, tc.want)
		}
	}
}
