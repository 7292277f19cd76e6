package stage1

import (
	"slices"
	"strings"

	"github.com/cairn-os/cairn/internal/mount"
)

// ExportMount shows an app's root as the app left it, at target: the app's upper dir as the
// top of the overlay's lower dirs, over the image's trees. With no upper dir of its own the
// overlay is read-only, and nothing of the pod is changed by looking.
func ExportMount(layers []string, upper, target string) mount.Mount {
	lower := []string{upper}
	for _, l := range slices.Backward(layers) {
		lower = append(lower, l)
	}
	return mount.Mount{Source: "overlay", Target: target, FSType: "overlay", Data: "lowerdir=" + strings.Join(lower, ":")}
}
