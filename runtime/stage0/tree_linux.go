package stage0

import (
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// isWhiteout says whether an entry is an overlayfs whiteout: a character device 0/0, as the
// store keeps OCI whiteouts.
func isWhiteout(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && fi.Mode()&fs.ModeCharDevice != 0 && st.Rdev == 0
}

// isOpaque says whether a directory hides the layers below it (trusted.overlay.opaque=y).
func isOpaque(dir string) bool {
	b := make([]byte, 1)
	n, err := unix.Lgetxattr(dir, "trusted.overlay.opaque", b)
	return err == nil && n == 1 && b[0] == 'y'
}

func openNoFollow(p string) (*os.File, error) {
	return os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
}
