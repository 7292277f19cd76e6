package testenv

import (
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
)

// InPrivateHost runs the test function named inner of this test binary in a new network and
// mount namespace that stands for the host, with env set (KEY=VALUE): whatever a network test
// makes there (veths, addresses, routes, iptables rules, bind mounts) dies with the namespace,
// so the machine's own network is never touched. It fails t unless inner passed, and returns
// inner's output.
func InPrivateHost(t TB, inner string, env ...string) string {
	t.Helper()
	RequireRoot(t)
	RequireCommand(t, "unshare")
	RequireCommand(t, "ip") // SetUpPrivateHost brings lo up with it
	cmd := exec.Command("unshare", "--net", "--mount", "--propagation", "private", "--fork",
		os.Args[0], "-test.run", "^"+inner+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+inner) {
		t.Fatalf("%s in a private host namespace: %v\n%s", inner, err, out)
	}
	return string(out)
}

// SetUpPrivateHost is the first thing the inner test of InPrivateHost does: private tmpfs
// mounts over dirs (where CNI plugins keep state: /var/lib/cni, /run/flannel, ...), loopback
// up, and forwarding on, as on a host that runs pods.
func SetUpPrivateHost(t TB, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", d, "tmpfs", 0, "mode=755"); err != nil {
			t.Fatalf("private %s: %v", d, err)
		}
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v %s", err, out)
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
}
