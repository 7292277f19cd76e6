//go:build !linux

package fetch

import "io"

// IsTerminal reports false where terminals are not detected: no progress bar.
func IsTerminal(io.Writer) bool { return false }
