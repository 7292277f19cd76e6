package trust

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/fixture/fixturetest"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	dir := t.TempDir()
	return New(filepath.Join(dir, "etc/rkt"), filepath.Join(dir, "usr/lib/rkt"))
}

func mustParse(t *testing.T, b []byte) *Key {
	t.Helper()
	k, err := ParseKey(b)
	if err != nil {
		t.Fatalf("ParseKey: %v", err)
	}
	return k
}

func TestParseKey(t *testing.T) {
	k := fixturetest.NewKey(t, "alice", fixture.KeyOptions{})
	got := mustParse(t, k.Public)
	if got.Fingerprint != k.Fingerprint || len(got.Fingerprint) != 40 || strings.ToLower(got.Fingerprint) != got.Fingerprint {
		t.Fatalf("fingerprint %q, want %q (lowercase hex)", got.Fingerprint, k.Fingerprint)
	}
	if ids := got.UserIDs(); len(ids) != 1 || !strings.Contains(ids[0], "alice@example.com") {
		t.Fatalf("user IDs %q", ids)
	}
	if g := got.GroupedFingerprint(); len(g) != 50 || g[24:26] != "  " {
		t.Fatalf("grouped fingerprint %q", g)
	}
}

func TestParseKeyRejects(t *testing.T) {
	a := fixturetest.NewKey(t, "alice", fixture.KeyOptions{})
	b := fixturetest.NewKey(t, "bob", fixture.KeyOptions{})
	var priv bytes.Buffer
	w, _ := armorEncode(&priv, "PGP PRIVATE KEY BLOCK")
	a.Entity.SerializePrivate(w, nil)
	w.Close()
	var privAsPublic bytes.Buffer
	w, _ = armorEncode(&privAsPublic, "PGP PUBLIC KEY BLOCK")
	a.Entity.SerializePrivate(w, nil)
	w.Close()
	var two bytes.Buffer
	w, _ = armorEncode(&two, "PGP PUBLIC KEY BLOCK")
	a.Entity.Serialize(w)
	b.Entity.Serialize(w)
	w.Close()

	for _, tc := range []struct {
		name, data, want string
	}{
		{"empty", "", "not an ASCII-armored"},
		{"garbage", "hello world", "not an ASCII-armored"},
		{"private block", priv.String(), "never a private one"},
		{"private key in a public block", privAsPublic.String(), "private key"},
		{"two keys", two.String(), "2 keys"},
		{"signature block", string(a.Sign([]byte("x"))), "PGP SIGNATURE"},
		{"huge", strings.Repeat("A", MaxKeySize+1), "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKey([]byte(tc.data))
			if !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v; want ErrInvalidKey mentioning %q", err, tc.want)
			}
		})
	}
}

func TestKeyringPrefixes(t *testing.T) {
	s := newStore(t)
	root := fixturetest.NewKey(t, "root", fixture.KeyOptions{})
	app := fixturetest.NewKey(t, "app", fixture.KeyOptions{})
	parent := fixturetest.NewKey(t, "parent", fixture.KeyOptions{})
	sys := fixturetest.NewKey(t, "system", fixture.KeyOptions{})
	if _, err := s.AddRootKey(mustParse(t, root.Public)); err != nil {
		t.Fatal(err)
	}
	p, err := s.AddPrefixKey("example.com/app", mustParse(t, app.Public))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(s.LocalDir, "prefix.d/example.com/app", app.Fingerprint); p != want {
		t.Fatalf("key stored at %s, want %s", p, want)
	}
	if _, err := s.AddPrefixKey("example.com", mustParse(t, parent.Public)); err != nil {
		t.Fatal(err)
	}
	sysDir := filepath.Join(s.SystemDir, "prefix.d/example.com/app")
	os.MkdirAll(sysDir, 0o755)
	os.WriteFile(filepath.Join(sysDir, sys.Fingerprint), sys.Public, 0o644)

	for _, tc := range []struct {
		name string
		want []string
	}{
		{"example.com/app", []string{root.Fingerprint, sys.Fingerprint, parent.Fingerprint, app.Fingerprint}},
		{"example.com/app/db", []string{root.Fingerprint, sys.Fingerprint, parent.Fingerprint, app.Fingerprint}},
		{"example.com/application", []string{root.Fingerprint, parent.Fingerprint}},
		{"example.org/app", []string{root.Fingerprint}},
	} {
		keys, err := s.Keyring(tc.name)
		if err != nil {
			t.Fatalf("Keyring(%s): %v", tc.name, err)
		}
		var got []string
		for _, k := range keys {
			got = append(got, k.Fingerprint)
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("Keyring(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}

	// A vendor's key may be a symlink to a shared copy.
	shared := filepath.Join(t.TempDir(), "shared.asc")
	os.WriteFile(shared, sys.Public, 0o644)
	os.Remove(filepath.Join(sysDir, sys.Fingerprint))
	if err := os.Symlink(shared, filepath.Join(sysDir, sys.Fingerprint)); err != nil {
		t.Fatal(err)
	}
	if keys, _ := s.Keyring("example.com/app"); len(keys) != 4 {
		t.Fatalf("symlinked key not read: %d keys", len(keys))
	}

	// An empty local file masks the vendor's key.
	mask := filepath.Join(s.LocalDir, "prefix.d/example.com/app", sys.Fingerprint)
	os.WriteFile(mask, nil, 0o644)
	keys, _ := s.Keyring("example.com/app")
	for _, k := range keys {
		if k.Fingerprint == sys.Fingerprint {
			t.Fatal("masked system key still trusted")
		}
	}
}

func TestKeyringBadFiles(t *testing.T) {
	s := newStore(t)
	a := fixturetest.NewKey(t, "a", fixture.KeyOptions{})
	b := fixturetest.NewKey(t, "b", fixture.KeyOptions{})
	dir := filepath.Join(s.LocalDir, "root.d")
	os.MkdirAll(dir, 0o755)
	// A temporary file of an interrupted write is ignored.
	os.WriteFile(filepath.Join(dir, ".tmp-xyz"), []byte("junk"), 0o644)
	if keys, err := s.Keyring("example.com/x"); err != nil || len(keys) != 0 {
		t.Fatalf("keys %v err %v", keys, err)
	}
	os.WriteFile(filepath.Join(dir, a.Fingerprint), b.Public, 0o644)
	if _, err := s.Keyring("example.com/x"); err == nil || !strings.Contains(err.Error(), "not the one its name says") {
		t.Fatalf("mismatched key file: err %v", err)
	}
	os.Remove(filepath.Join(dir, a.Fingerprint))
	os.WriteFile(filepath.Join(dir, "mykey.asc"), a.Public, 0o644)
	if _, err := s.Keyring("example.com/x"); err == nil || !strings.Contains(err.Error(), "mykey.asc") {
		t.Fatalf("badly named key file: err %v", err)
	}
	if _, err := s.Keyring("../../etc"); err == nil {
		t.Fatal("accepted a path-escaping prefix")
	}
	for _, bad := range []string{"Example.com/x", "example.com/../x", "example.com/./x", "../x"} {
		if _, err := s.AddPrefixKey(bad, mustParse(t, a.Public)); err == nil {
			t.Fatalf("accepted the invalid prefix %q", bad)
		}
	}
}

func TestVerify(t *testing.T) {
	now := time.Now()
	s := newStore(t)
	s.Now = func() time.Time { return now }
	good := fixturetest.NewKey(t, "publisher", fixture.KeyOptions{})
	other := fixturetest.NewKey(t, "mallory", fixture.KeyOptions{})
	expiring := fixturetest.NewKey(t, "expiring", fixture.KeyOptions{Created: now.Add(-48 * time.Hour), Lifetime: time.Hour})
	revoked := fixturetest.NewKey(t, "revoked", fixture.KeyOptions{})
	aci := []byte("the bytes of an ACI")
	sigGood := good.Sign(aci)
	sigExpired := expiring.SignAt(aci, now.Add(-47*time.Hour)) // made while the key was valid
	sigRevoked := revoked.Sign(aci)
	revoked.Revoke()

	const name = "example.com/app"
	if _, err := s.Verify(name, bytes.NewReader(aci), sigGood); !errors.Is(err, ErrNoKeys) ||
		!strings.Contains(err.Error(), "rkt trust --prefix=example.com/app") {
		t.Fatalf("no keys: err %v", err)
	}
	for _, k := range []*fixturetest.Key{good, expiring, revoked} {
		if _, err := s.AddPrefixKey("example.com", mustParse(t, k.Public)); err != nil {
			t.Fatal(err)
		}
	}
	signer, err := s.Verify(name, bytes.NewReader(aci), sigGood)
	if err != nil || signer.Fingerprint != good.Fingerprint {
		t.Fatalf("good signature: signer %+v err %v", signer, err)
	}
	// The binary form (gpg --detach-sign without --armor) is accepted too.
	bin, _ := signatureBody(sigGood)
	if _, err := s.Verify(name, bytes.NewReader(aci), bin); err != nil {
		t.Fatalf("binary signature: %v", err)
	}

	for _, tc := range []struct {
		test    string
		data    []byte
		sig     []byte
		want    error
		mention string
	}{
		{"untrusted key", aci, other.Sign(aci), ErrUntrusted, other.Fingerprint},
		{"other bytes", []byte("the bytes of another ACI"), sigGood, ErrBadSignature, good.Fingerprint},
		{"truncated image", aci[:5], sigGood, ErrBadSignature, ""},
		{"expired key", aci, sigExpired, ErrExpired, expiring.Fingerprint},
		{"revoked key", aci, sigRevoked, ErrRevoked, revoked.Fingerprint},
		{"garbage signature", aci, []byte("not a signature"), ErrBadSignature, "not an OpenPGP signature"},
		{"empty signature", aci, nil, ErrBadSignature, ""},
		{"key instead of signature", aci, good.Public, ErrBadSignature, "PGP PUBLIC KEY BLOCK"},
	} {
		t.Run(tc.test, func(t *testing.T) {
			_, err := s.Verify(name, bytes.NewReader(tc.data), tc.sig)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.mention) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err %v; want a one-line %v naming %q", err, tc.want, tc.mention)
			}
		})
	}
}
