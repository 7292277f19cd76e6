//go:build linux

package clustertest

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/testenv"
)

// buildTool runs tools/<script> with args, which builds (or finds cached) and prints the
// directory of its binaries. A build that fails skips the test, or fails it under CI=true.
func buildTool(t *testing.T, script string, args ...string) string {
	t.Helper()
	testenv.RequireCommand(t, "go")
	out, err := exec.CommandContext(t.Context(), filepath.Join("../../tools", script), args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			stderr = ee.Stderr
		}
		testenv.Require(t, false, "tools/%s %s: %v\n%s", script, strings.Join(args, " "), err, tail(string(stderr), 30))
	}
	return strings.TrimSpace(string(out))
}

// kubeBins returns the directory with kube-apiserver and kubectl, built by
// tools/kube/build.sh (cached per machine; the first build takes a quarter of an hour).
func kubeBins(t *testing.T) string {
	t.Helper()
	return buildTool(t, "kube/build.sh", "kube-apiserver", "kubectl")
}

// stockFlanneld returns stock flanneld (flannel-io/flannel's main package) built by
// tools/flannel/build.sh (cached per machine; the first build takes a few minutes).
func stockFlanneld(t *testing.T) string {
	t.Helper()
	testenv.RequireCommand(t, "iptables") // stock flanneld keeps its FORWARD rules with it
	return filepath.Join(buildTool(t, "flannel/build.sh"), "flanneld")
}
