package cri

import (
	"os"
	"testing"

	"github.com/cairn-os/cairn/internal/testenv"
)

// innerEnv tells the test binary it runs inside TestCRI's private host namespaces.
const innerEnv = "CAIRN_CRI_INNER"

// TestCRI drives rktlet's gRPC API over its socket, in a network and mount namespace of
// its own that stands for the host: sandboxes on a CNI network (Debian's ptp and portmap)
// and on the host's, containers through their whole lifecycle, logs, exec, streaming
// sessions (exec, attach, port-forward with client-go's clients), security
// settings, a restart of rktlet, a killed supervisor, and 50 sandboxes at once.
func TestCRI(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireFile(t, "/bin/busybox")
	testenv.RequireCommand(t, "iptables")
	for _, p := range []string{"ptp", "host-local", "portmap", "loopback"} {
		testenv.RequireFile(t, "/usr/lib/cni/"+p)
	}
	t.Logf("%s", testenv.InPrivateHost(t, "TestCRIInHost", innerEnv+"=1"))
}

// TestCRIInHost is the inner half of TestCRI.
func TestCRIInHost(t *testing.T) {
	if os.Getenv(innerEnv) != "1" {
		t.Skip("runs only inside TestCRI's namespaces")
	}
	testenv.SetUpPrivateHost(t, "/var/lib/cni", "/run/flannel")
	e := newCRI(t)
	steps := []struct {
		name string
		f    func(*testing.T, *criEnv)
	}{
		{"status before a network", statusNoNetwork},
		{"lifecycle", lifecycle},
		{"bad input", badInput},
		{"network", podNetwork},
		{"streaming", streamingSessions},
		{"security", security_},
		{"shared PID namespace", sharedPID},
		{"mount propagation", propagation},
		{"resources", resourcesAndOOM},
		{"images", images},
		{"events", events},
		{"restart", restart},
		{"killed rktlet", killedRktlet},
		{"killed supervisor", killedSupervisor},
		{"fifty sandboxes", fiftySandboxes},
	}
	for _, st := range steps {
		if !t.Run(st.name, func(t *testing.T) {
			parent := e.t
			e.t = t
			defer func() { e.t = parent }()
			st.f(t, e)
		}) {
			break
		}
	}
}
