package trust

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// MaxSignatureSize bounds a detached signature; one signature packet is a few hundred bytes.
const MaxSignatureSize = 64 << 10

const signatureBlock = "PGP SIGNATURE"

// Signer is the trusted key that made a valid signature.
type Signer struct {
	Fingerprint string
	UserIDs     []string
}

// Verify checks that signature is a valid detached OpenPGP signature of signed (an ACI's
// bytes, as downloaded) by a key trusted for the image name. The signature may be armored
// (the usual .asc) or binary. The error says which of the sentinel errors applies and what
// to do about it.
func (s *Store) Verify(name string, signed io.Reader, signature []byte) (*Signer, error) {
	if len(signature) > MaxSignatureSize {
		return nil, fmt.Errorf("image %q: %w: signature file larger than %d bytes", name, ErrBadSignature, MaxSignatureSize)
	}
	body, err := signatureBody(signature)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w: %v", name, ErrBadSignature, err)
	}
	issuer, err := signatureIssuer(body)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w: %v", name, ErrBadSignature, err)
	}
	keys, err := s.Keyring(name)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", name, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("image %q: %w for its prefix: trust the publisher's key with `rkt trust --prefix=%s KEYFILE`, or skip the check with --insecure-options=image",
			name, ErrNoKeys, name)
	}
	cfg := &packet.Config{Time: s.now}
	ent, err := openpgp.CheckDetachedSignature(EntityList(keys), signed, bytes.NewReader(body), cfg)
	if err == nil {
		k := &Key{Fingerprint: hex.EncodeToString(ent.PrimaryKey.Fingerprint), Entity: ent}
		return &Signer{Fingerprint: k.Fingerprint, UserIDs: k.UserIDs()}, nil
	}
	switch {
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return nil, fmt.Errorf("image %q: %w %s (not trusted for %q); if you trust it, add it with `rkt trust --prefix=%s KEYFILE`",
			name, ErrUntrusted, issuer, name, name)
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		return nil, fmt.Errorf("image %q: signing key %s is %w", name, issuer, ErrRevoked)
	case errors.Is(err, pgperrors.ErrKeyExpired):
		return nil, fmt.Errorf("image %q: signing key %s has %w", name, issuer, ErrExpired)
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		return nil, fmt.Errorf("image %q: signature by %s has %w", name, issuer, ErrExpired)
	}
	return nil, fmt.Errorf("image %q: %w (signed by key %s): %v", name, ErrBadSignature, issuer, err)
}

// signatureBody strips the ASCII armor when there is one.
func signatureBody(sig []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(sig)
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
		return sig, nil
	}
	block, err := armor.Decode(bytes.NewReader(trimmed))
	if err != nil {
		return nil, fmt.Errorf("bad armor: %v", err)
	}
	if block.Type != signatureBlock {
		return nil, fmt.Errorf("armor block is %q, want %q", block.Type, signatureBlock)
	}
	body, err := io.ReadAll(io.LimitReader(block.Body, MaxSignatureSize))
	if err != nil {
		return nil, fmt.Errorf("bad armor: %v", err)
	}
	return body, nil
}

// signatureIssuer names the key that made the signature, by fingerprint when the signature
// carries it and by key ID otherwise, for error messages.
func signatureIssuer(body []byte) (string, error) {
	p, err := packet.NewReader(bytes.NewReader(body)).Next()
	if err != nil {
		return "", fmt.Errorf("not an OpenPGP signature: %v", err)
	}
	sig, ok := p.(*packet.Signature)
	if !ok {
		return "", fmt.Errorf("not an OpenPGP signature: first packet is %T", p)
	}
	switch {
	case len(sig.IssuerFingerprint) > 0:
		return hex.EncodeToString(sig.IssuerFingerprint), nil
	case sig.IssuerKeyId != nil:
		return fmt.Sprintf("key ID %016x", *sig.IssuerKeyId), nil
	}
	return "", errors.New("signature names no issuer key")
}
