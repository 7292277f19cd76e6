//go:build linux && cgo && seccomp

package cli

import (
	"strings"
	"testing"

	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// A syscall name that libseccomp does not know is refused (the filter compiler would skip it
// silently: a weaker remove set, or an app killed by its retain set).
func TestRunUnknownSyscall(t *testing.T) {
	e := newRktEnv(t)
	withBusybox(t, e)
	for _, sc := range []string{"mode=retain,nosuchsyscall", "mode=remove,nosuchsyscall"} {
		_, errOut, code := e.Rkt(t, "", "run", "--net=none", fixture.ACIName, "--seccomp="+sc)
		if code != stage1.ExitFailure || !strings.Contains(errOut, "nosuchsyscall") {
			t.Errorf("--seccomp=%s: code %d, stderr %q", sc, code, errOut)
		}
		if left := pods(t, e); len(left) > 0 {
			t.Fatalf("--seccomp=%s left pods behind: %v", sc, left)
		}
	}
}
