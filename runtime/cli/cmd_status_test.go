package cli

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/runtime/pod"
)

// A pod removed while status --wait-ready waits for it ends the wait with an error naming
// the pod.
func TestStatusWaitReadyPodRemoved(t *testing.T) {
	dir := t.TempDir()
	p, err := pod.NewStore(dir).Create() // preparing: locked, in the prepare phase
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	go func() {
		time.Sleep(100 * time.Millisecond)
		os.RemoveAll(p.Path())
	}()
	out, errOut, code := run(t, "--dir", dir, "status", "--wait-ready", p.UUID)
	if code == 0 || !strings.Contains(errOut, p.UUID) {
		t.Fatalf("status --wait-ready on a removed pod: code %d, stdout %q, stderr %q; want a failure naming the pod", code, out, errOut)
	}
}
