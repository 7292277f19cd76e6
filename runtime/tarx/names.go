package tarx

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// CleanName turns an archive entry name into a clean relative path ("a/b"), or "." for the root
// itself ("./", or "/" as umoci names it when a directory is inserted at the root). It refuses
// other absolute names, ".." components and NUL bytes, rather than rewriting them: an archive
// that contains them was not made by an honest tool.
func CleanName(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty name", ErrUnsafe)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: name contains a NUL byte", ErrUnsafe)
	}
	if slices.Contains(strings.Split(name, "/"), "..") {
		return "", fmt.Errorf("%w: path contains \"..\"", ErrUnsafe)
	}
	if strings.HasPrefix(name, "/") {
		if path.Clean(name) == "/" {
			return ".", nil
		}
		return "", fmt.Errorf("%w: absolute path", ErrUnsafe)
	}
	return path.Clean(name), nil
}

// whiteout classifies an OCI whiteout name: opaque for ".wh..wh..opq", or the hidden name.
func whiteout(base string) (hidden string, opaque, ok bool) {
	const prefix = ".wh."
	if !strings.HasPrefix(base, prefix) {
		return "", false, false
	}
	if base == ".wh..wh..opq" {
		return "", true, true
	}
	return base[len(prefix):], false, true
}
