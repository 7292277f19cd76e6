// Package trusttest makes throwaway OpenPGP keys and appc detached signatures for tests.
package trusttest

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Key is a signing key with its armored public half.
type Key struct {
	Entity      *openpgp.Entity
	Public      []byte // ASCII-armored public key, as `gpg --armor --export` writes it
	Fingerprint string // lowercase hex
}

// Options tune a key; the zero value makes a key that never expires.
type Options struct {
	Created  time.Time     // creation time; now when zero
	Lifetime time.Duration // 0: no expiry
}

// NewKey makes an Ed25519 key (fast to generate) for name.
func NewKey(t testing.TB, name string, o Options) *Key {
	t.Helper()
	created := o.Created
	if created.IsZero() {
		created = time.Now()
	}
	cfg := &packet.Config{
		Algorithm:       packet.PubKeyAlgoEdDSA,
		Time:            func() time.Time { return created },
		KeyLifetimeSecs: uint32(o.Lifetime / time.Second),
	}
	e, err := openpgp.NewEntity(name, "test key", name+"@example.com", cfg)
	if err != nil {
		t.Fatalf("new key: %v", err)
	}
	return &Key{Entity: e, Public: ArmorPublic(t, e), Fingerprint: hex.EncodeToString(e.PrimaryKey.Fingerprint)}
}

// ArmorPublic serializes e's public key.
func ArmorPublic(t testing.TB, e *openpgp.Entity) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, "PGP PUBLIC KEY BLOCK", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return buf.Bytes()
}

// Sign returns an armored detached signature of data, as `gpg --armor --detach-sign` makes it.
func (k *Key) Sign(t testing.TB, data []byte) []byte {
	t.Helper()
	return k.SignAt(t, data, time.Now())
}

// SignAt signs data as if the clock said when (to sign with a key that has expired since).
func (k *Key) SignAt(t testing.TB, data []byte, when time.Time) []byte {
	t.Helper()
	var buf bytes.Buffer
	cfg := &packet.Config{Time: func() time.Time { return when }}
	if err := openpgp.ArmoredDetachSign(&buf, k.Entity, bytes.NewReader(data), cfg); err != nil {
		t.Fatalf("sign: %v", err)
	}
	return buf.Bytes()
}

// Revoke revokes the key and returns its updated armored public key.
func (k *Key) Revoke(t testing.TB) []byte {
	t.Helper()
	if err := k.Entity.RevokeKey(packet.KeyCompromised, "test", nil); err != nil {
		t.Fatal(err)
	}
	k.Public = ArmorPublic(t, k.Entity)
	return k.Public
}
