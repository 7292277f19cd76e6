package build

import (
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/testenv"
)

// The first-boot hook and the init run where there is no dynamic loader: the builder refuses
// a dynamically linked one instead of making an image that cannot boot.
func TestCheckStatic(t *testing.T) {
	static := testenv.RequireFile(t, "/bin/busybox") // Debian's busybox-static
	if err := checkStatic(static); err != nil {
		t.Fatalf("%s: %v", static, err)
	}
	dynamic := testenv.RequireFile(t, "/bin/ls")
	if err := checkStatic(dynamic); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("%s accepted: %v", dynamic, err)
	}
}
