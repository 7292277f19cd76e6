// Package auth holds the console's secrets: operators' passwords (bcrypt), and the random
// secrets of sessions and API tokens, of which the store keeps only a SHA-256.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// MinPasswordLen is the shortest password accepted.
const MinPasswordLen = 10

// TokenPrefix starts every API token, so that one is recognised where it leaks.
const TokenPrefix = "cairn_"

// ErrWeakPassword: a password shorter than MinPasswordLen (or longer than bcrypt takes).
var ErrWeakPassword = errors.New("password too weak")

// HashPassword is the bcrypt hash of a password.
func HashPassword(pw string) (string, error) {
	if len(pw) < MinPasswordLen {
		return "", fmt.Errorf("%w: use at least %d characters", ErrWeakPassword, MinPasswordLen)
	}
	if len(pw) > 72 {
		return "", fmt.Errorf("%w: bcrypt reads at most 72 bytes", ErrWeakPassword)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	return string(h), err
}

// dummyHash is compared with when there is no such user, so that a login takes as long
// for a name that does not exist as for a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("no such user, no such password"), bcrypt.DefaultCost)

// CheckPassword reports whether pw matches hash; an empty hash (no such user) never does,
// in the same time.
func CheckPassword(hash, pw string) bool {
	if hash == "" {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(pw)) // for its time only
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}

// NewSecret is 32 random bytes, URL-safe base64, after prefix.
func NewSecret(prefix string) string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// NewToken is a new API token.
func NewToken() string { return NewSecret(TokenPrefix) }

// Hash is what the store keeps of a secret: its SHA-256, hex.
func Hash(secret string) string {
	s := sha256.Sum256([]byte(strings.TrimSpace(secret)))
	return hex.EncodeToString(s[:])
}
