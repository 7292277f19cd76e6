package conformance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/kube/clustertest"
)

// pinName is the file that keeps a mount point's directory from being empty.
const pinName = ".cairn-conformance-pin"

// pinMountpoints keeps the machine's directories on which the node's host paths are bound
// (/etc/kubernetes, /var/lib/kubelet, ...) from being removed while the run lasts.
// clustertest removes such a directory when the cluster that made it ends, if it is empty on
// the machine, and removing a directory detaches the mounts on it in every mount namespace:
// another package's cluster ending mid-run would take this cluster's /etc/kubernetes (and
// with it the static pods) away. A file in each keeps it; it goes when the test ends.
func pinMountpoints(t *testing.T, n *clustertest.Node) {
	t.Helper()
	info := n.MustExec("cat", "/proc/self/mountinfo")
	for line := range strings.SplitSeq(info, "\n") {
		// mountinfo(5): ID, parent ID, major:minor, root, mount point, ...
		// A host path is bound from the same path under the node's directory.
		f := strings.Fields(line)
		if len(f) < 5 || !strings.HasSuffix(f[3], "/"+n.Name+f[4]) {
			continue
		}
		dir := f[4]
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			continue // a file (a sysctl the node shows), or not on the machine's side
		}
		pin := filepath.Join(dir, pinName)
		if err := os.WriteFile(pin, nil, 0o644); err != nil {
			t.Fatalf("pin %s: %v", dir, err)
		}
		t.Cleanup(func() { os.Remove(pin) })
	}
}
