//go:build linux

package clustertest

import (
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

// stockFlanneld returns stock flanneld (flannel-io/flannel's main package) built by
// tools/flannel/build.sh (cached per machine; the first build takes a few minutes).
func stockFlanneld(t *testing.T) string {
	t.Helper()
	testenv.RequireCommand(t, "iptables") // stock flanneld keeps its FORWARD rules with it
	return filepath.Join(testenv.RequireTool(t, "flannel/build.sh"), "flanneld")
}
