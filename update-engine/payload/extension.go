package payload

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// DescribeExtension reads the system extension image at path, NAME.raw with its root hash in
// NAME.usrhash beside it (as cairn-image sysext writes them), into a manifest's description
// of it: name, size, SHA-256 and root hash. URL, where hosts fetch it, is the caller's to set.
func DescribeExtension(path string) (Extension, error) {
	name, ok := strings.CutSuffix(filepath.Base(path), ".raw")
	if !ok {
		return Extension{}, fmt.Errorf("extension %s: want a NAME.raw file", path)
	}
	hash, err := os.ReadFile(strings.TrimSuffix(path, ".raw") + ".usrhash")
	if err != nil {
		return Extension{}, fmt.Errorf("extension %s: its root hash: %w", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return Extension{}, fmt.Errorf("extension %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Extension{}, fmt.Errorf("extension %s: %w", path, err)
	}
	return Extension{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil)), USRHash: strings.TrimSpace(string(hash))}, nil
}
