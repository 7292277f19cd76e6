// Package trust is the appc trust store and the check of an ACI's detached OpenPGP signature
// against it, laid out as rkt laid it out so that existing /etc/rkt trees keep working:
//
//	<config>/trustedkeys/root.d/<fingerprint>             trusted for every image
//	<config>/trustedkeys/prefix.d/<prefix>/<fingerprint>  trusted for images named <prefix> or below it
//
// for the system config (/usr/lib/rkt, the vendor's) and the local config (/etc/rkt, the
// administrator's). A key file is named by the lowercase hex fingerprint of the key it holds;
// an empty local file masks the system key of the same name. A prefix is matched by whole path
// elements: a key for example.com/app covers example.com/app and example.com/app/db, never
// example.com/application.
package trust

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/internal/atomicfile"
)

// Sentinel errors, checked with errors.Is.
var (
	ErrInvalidKey   = errors.New("invalid public key")
	ErrNoKeys       = errors.New("no trusted keys")
	ErrUntrusted    = errors.New("signed by an untrusted key")
	ErrBadSignature = errors.New("signature does not match the image")
	ErrExpired      = errors.New("expired")
	ErrRevoked      = errors.New("revoked")
)

// Store is a trust store rooted at a local and a system trustedkeys directory.
type Store struct {
	// LocalDir is the administrator's trustedkeys directory (/etc/rkt/trustedkeys); keys are
	// added here.
	LocalDir string
	// SystemDir is the vendor's trustedkeys directory (/usr/lib/rkt/trustedkeys); read only.
	SystemDir string
	// Now is the clock used to judge expiry and revocation; time.Now when nil.
	Now func() time.Time
}

// New returns the store for rkt's local and system config directories (/etc/rkt, /usr/lib/rkt).
func New(localConfig, systemConfig string) *Store {
	return &Store{
		LocalDir:  filepath.Join(localConfig, "trustedkeys"),
		SystemDir: filepath.Join(systemConfig, "trustedkeys"),
	}
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// RootDirs and PrefixDirs name the directories in the order they are read: system, then local.
func (s *Store) rootDirs() []string {
	return []string{filepath.Join(s.SystemDir, "root.d"), filepath.Join(s.LocalDir, "root.d")}
}

// PrefixDir is where keys for prefix are stored in the local config.
func (s *Store) PrefixDir(prefix string) (string, error) {
	p, err := checkPrefix(prefix)
	if err != nil {
		return "", err
	}
	return filepath.Join(s.LocalDir, "prefix.d", filepath.FromSlash(p)), nil
}

// RootDir is where root keys are stored in the local config.
func (s *Store) RootDir() string { return filepath.Join(s.LocalDir, "root.d") }

// CheckPrefix reports whether prefix can name images in the trust store.
func CheckPrefix(prefix string) error {
	_, err := checkPrefix(prefix)
	return err
}

// checkPrefix accepts an appc identifier (which cannot contain "..", empty elements or a
// leading slash), so that it is safe to use as a relative path.
func checkPrefix(prefix string) (string, error) {
	id, err := types.NewACIdentifier(prefix)
	if err != nil {
		return "", fmt.Errorf("prefix %q is not a valid appc image name: %w", prefix, err)
	}
	// appc's check is about characters only; ".." between slashes passes it.
	for e := range strings.SplitSeq(prefix, "/") {
		if e == "." || e == ".." || e == "" {
			return "", fmt.Errorf("prefix %q is not a valid appc image name: path element %q", prefix, e)
		}
	}
	return id.String(), nil
}

// AddPrefixKey trusts k for images named prefix or below it and returns the key file's path.
func (s *Store) AddPrefixKey(prefix string, k *Key) (string, error) {
	dir, err := s.PrefixDir(prefix)
	if err != nil {
		return "", err
	}
	return addKey(dir, k)
}

// AddRootKey trusts k for every image and returns the key file's path.
func (s *Store) AddRootKey(k *Key) (string, error) { return addKey(s.RootDir(), k) }

func addKey(dir string, k *Key) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("trust key %s: %w", k.Fingerprint, err)
	}
	path := filepath.Join(dir, k.Fingerprint)
	if err := atomicfile.WriteFile(path, k.Armored, 0o644); err != nil {
		return "", fmt.Errorf("trust key %s: %w", k.Fingerprint, err)
	}
	return path, nil
}

// Keyring returns the keys that may sign an image called name: root keys, and keys of every
// prefix that is name or a parent path of it.
func (s *Store) Keyring(name string) ([]*Key, error) {
	p, err := checkPrefix(name)
	if err != nil {
		return nil, err
	}
	dirs := s.rootDirs()
	for _, base := range []string{s.SystemDir, s.LocalDir} {
		elems := strings.Split(p, "/")
		for i := range elems {
			dirs = append(dirs, filepath.Join(base, "prefix.d", filepath.Join(elems[:i+1]...)))
		}
	}
	keys := map[string]*Key{}
	var order []string
	for _, dir := range dirs {
		if err := readKeyDir(dir, keys, &order); err != nil {
			return nil, err
		}
	}
	var out []*Key
	for _, fp := range order {
		if k, ok := keys[fp]; ok && k != nil {
			out = append(out, k)
			keys[fp] = nil // once, even if trusted in several directories
		}
	}
	return out, nil
}

var fingerprintName = regexp.MustCompile(`^[0-9a-f]{40}$|^[0-9a-f]{64}$`)

// readKeyDir adds the keys in dir to keys; an empty file removes (masks) its fingerprint.
func readKeyDir(dir string, keys map[string]*Key, order *[]string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("trusted keys %s: %w", dir, err)
	}
	for _, e := range ents {
		// Sub-directories are longer prefixes; dot files are temporaries of an interrupted write.
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if !e.Type().IsRegular() {
			// A vendor may link a key file to a shared copy; anything but a file is skipped.
			if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
				continue
			}
		}
		if !fingerprintName.MatchString(e.Name()) {
			return fmt.Errorf("trusted key %s: file name is not a lowercase hex key fingerprint", path)
		}
		data, err := readLimited(path, MaxKeySize)
		if err != nil {
			return fmt.Errorf("trusted key %s: %w", path, err)
		}
		if len(data) == 0 {
			delete(keys, e.Name())
			continue
		}
		k, err := ParseKey(data)
		if err != nil {
			return fmt.Errorf("trusted key %s: %w", path, err)
		}
		if k.Fingerprint != e.Name() {
			return fmt.Errorf("trusted key %s: holds key %s, not the one its name says", path, k.Fingerprint)
		}
		if _, seen := keys[k.Fingerprint]; !seen {
			*order = append(*order, k.Fingerprint)
		}
		keys[k.Fingerprint] = k
	}
	return nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// EntityList turns keys into the keyring type the OpenPGP library checks against.
func EntityList(keys []*Key) openpgp.EntityList {
	el := make(openpgp.EntityList, 0, len(keys))
	for _, k := range keys {
		el = append(el, k.Entity)
	}
	return el
}
