//go:build !linux

package stage0

import (
	"io/fs"
	"os"
)

// Without overlayfs there are no whiteouts or opaque directories to honour.
func isWhiteout(fs.FileInfo) bool { return false }

func isOpaque(string) bool { return false }

func openNoFollow(p string) (*os.File, error) { return os.Open(p) }
