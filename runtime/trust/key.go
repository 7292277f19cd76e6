package trust

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// MaxKeySize bounds a key file; real public keys, even with many signatures, are far smaller.
const MaxKeySize = 1 << 20

const publicKeyBlock = "PGP PUBLIC KEY BLOCK"

// Key is one trusted public key as stored in a trust directory.
type Key struct {
	// Fingerprint is the lowercase hex fingerprint of the primary key: the key's file name.
	Fingerprint string
	// Armored is the key as stored: the bytes the user gave, ASCII-armored.
	Armored []byte
	Entity  *openpgp.Entity
}

// UserIDs lists the key's identities ("Name (comment) <email>"), sorted.
func (k *Key) UserIDs() []string {
	var out []string
	for id := range k.Entity.Identities {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Revoked reports whether the primary key is revoked.
func (k *Key) Revoked(now time.Time) bool { return k.Entity.Revoked(now) }

// Expired reports whether the primary key has expired by now.
func (k *Key) Expired(now time.Time) bool {
	sig, _ := k.Entity.PrimarySelfSignature()
	return sig != nil && k.Entity.PrimaryKey.KeyExpired(sig, now)
}

// GroupedFingerprint formats the fingerprint in the blocks of four that gpg prints, uppercase,
// for a person to compare with what the publisher announced.
func (k *Key) GroupedFingerprint() string { return GroupFingerprint(k.Fingerprint) }

// GroupFingerprint formats a hex fingerprint in gpg's blocks of four.
func GroupFingerprint(fp string) string {
	fp = strings.ToUpper(fp)
	var b strings.Builder
	for i := 0; i < len(fp); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
			if i == len(fp)/2 {
				b.WriteByte(' ')
			}
		}
		b.WriteString(fp[i:min(i+4, len(fp))])
	}
	return b.String()
}

// ParseKey reads one ASCII-armored OpenPGP public key, as rkt trust accepts it. It refuses a
// block that holds several keys or any private key material: a trust directory holds public
// keys only, one per file.
func ParseKey(data []byte) (*Key, error) {
	if len(data) > MaxKeySize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalidKey, MaxKeySize)
	}
	block, err := armor.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: not an ASCII-armored OpenPGP key (export it with gpg --armor --export): %v", ErrInvalidKey, err)
	}
	if block.Type != publicKeyBlock {
		return nil, fmt.Errorf("%w: armor block is %q, want %q (a public key, never a private one)", ErrInvalidKey, block.Type, publicKeyBlock)
	}
	ents, err := openpgp.ReadKeyRing(io.LimitReader(block.Body, MaxKeySize))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	switch {
	case len(ents) == 0:
		return nil, fmt.Errorf("%w: no key in the file", ErrInvalidKey)
	case len(ents) > 1:
		return nil, fmt.Errorf("%w: %d keys in one file; trust them one at a time", ErrInvalidKey, len(ents))
	}
	e := ents[0]
	if e.PrivateKey != nil {
		return nil, fmt.Errorf("%w: the file holds a private key", ErrInvalidKey)
	}
	return &Key{Fingerprint: hex.EncodeToString(e.PrimaryKey.Fingerprint), Armored: data, Entity: e}, nil
}
