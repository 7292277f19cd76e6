package trust

import (
	"bytes"
	"testing"
)

// FuzzParseKey feeds hostile key files to the parser that reads /etc/rkt/trustedkeys and
// `rkt trust` input: it must fail cleanly, never panic, and never accept private material.
func FuzzParseKey(f *testing.F) {
	f.Add([]byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKey(data)
		if err != nil {
			return
		}
		if k.Entity.PrivateKey != nil || len(k.Fingerprint) == 0 {
			t.Fatalf("accepted key %+v", k)
		}
	})
}

// FuzzVerifySignature feeds hostile detached signatures to Verify with one trusted key.
func FuzzVerifySignature(f *testing.F) {
	f.Add([]byte("-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n"))
	f.Add([]byte{0x88, 0x75, 0x04, 0x00})
	s := New(f.TempDir(), f.TempDir())
	f.Fuzz(func(t *testing.T, sig []byte) {
		if _, err := s.Verify("example.com/app", bytes.NewReader([]byte("image")), sig); err == nil {
			t.Fatal("a signature verified against an empty trust store")
		}
	})
}
