//go:build !linux

package flanneld

import (
	"context"
	"errors"
	"io"
)

// Version is set by the build.
var Version = "dev"

// Run reports that flanneld needs Linux: the dataplane is netlink.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("flanneld runs on Linux only")
}
