package extensions

import (
	"bytes"

	"golang.org/x/sys/unix"
)

// strictFalse reports whether the file at path (not followed) has strictAttr set to "false",
// compared as systemd does: as a C string.
func strictFalse(path string) bool {
	b := make([]byte, 64)
	n, err := unix.Lgetxattr(path, strictAttr, b)
	if err != nil {
		return false // none, not supported, or a value longer than "false"
	}
	v, _, _ := bytes.Cut(b[:n], []byte{0})
	return string(v) == "false"
}
