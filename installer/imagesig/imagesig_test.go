package imagesig

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
)

func key(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func TestSignVerify(t *testing.T) {
	pub, priv := key(t)
	other, _ := key(t)
	img := bytes.Repeat([]byte("cairn"), 1000)
	st, _ := Of(bytes.NewReader(img))
	sig := Sign(priv, st)

	got, err := Verify([]ed25519.PublicKey{other, pub}, sig)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Check(st); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify([]ed25519.PublicKey{other}, sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("untrusted key: %v", err)
	}
	trunc, _ := Of(bytes.NewReader(img[:len(img)-1]))
	if err := got.Check(trunc); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("truncated image: %v", err)
	}
	flipped := bytes.Clone(img)
	flipped[7] ^= 1
	f, _ := Of(bytes.NewReader(flipped))
	if err := got.Check(f); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("flipped byte: %v", err)
	}
	// A changed statement (bigger size) must not verify with the old signature line.
	forged := bytes.Replace(sig, []byte("size 5000"), []byte("size 5001"), 1)
	if _, err := Verify([]ed25519.PublicKey{pub}, forged); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged size: %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	_, priv := key(t)
	good := string(Sign(priv, Statement{Size: 10}))
	for name, b := range map[string]string{
		"empty":      "",
		"header":     strings.Replace(good, "v1", "v2", 1),
		"size":       strings.Replace(good, "size 10", "size -1", 1),
		"leading 0":  strings.Replace(good, "size 10", "size 010", 1),
		"sha":        strings.Replace(good, "sha512 00", "sha512 zz", 1),
		"upper hex":  strings.Replace(good, "sha512 0000", "sha512 00AA", 1),
		"extra line": good + "x\n",
		"no newline": strings.TrimSuffix(good, "\n"),
		"short sig":  good[:len(good)-10] + "\n",
		"huge":       strings.Repeat("a", MaxSize+1),
	} {
		if _, _, err := Parse([]byte(b)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func FuzzParse(f *testing.F) {
	_, priv := key(f)
	f.Add(Sign(priv, Statement{Size: 42}))
	f.Add([]byte("cairn-image-signature-v1\nsize 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, sig, err := Parse(b)
		if err != nil {
			return
		}
		// Whatever parses must re-serialise to the same bytes: one statement, one encoding.
		if len(sig) != ed25519.SignatureSize || !bytes.HasPrefix(b, s.message()) {
			t.Fatalf("parsed %q into %+v", b, s)
		}
	})
}
