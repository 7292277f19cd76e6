//go:build linux

package clustertest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-os/cairn/internal/testenv"
)

// kubeBins returns the directory with kube-apiserver and kubectl, built by
// tools/kube/build.sh (cached per machine; the first build takes a quarter of an hour).
func kubeBins(t *testing.T) string {
	t.Helper()
	return testenv.RequireTool(t, "kube/build.sh", "kube-apiserver", "kubectl")
}

// stockFlanneld returns stock flanneld (flannel-io/flannel's main package): the binary
// FLANNEL_PEER_BIN names, else the one tools/flannel/build.sh builds (cached per machine; the
// first build takes a few minutes).
func stockFlanneld(t *testing.T) string {
	t.Helper()
	testenv.RequireCommand(t, "iptables") // stock flanneld keeps its FORWARD rules with it
	if p := os.Getenv("FLANNEL_PEER_BIN"); p != "" {
		return testenv.RequireFile(t, p)
	}
	return filepath.Join(testenv.RequireTool(t, "flannel/build.sh"), "flanneld")
}
