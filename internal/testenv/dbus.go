package testenv

import (
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// PrivateBus starts a dbus-daemon of the test's own (with the session bus policy, which lets
// the test own any name) and returns its address. It is stopped when the test ends.
func PrivateBus(t TB) string {
	t.Helper()
	SkipShort(t, "needs a dbus-daemon")
	bin := RequireCommand(t, "dbus-daemon")
	addr := "unix:path=" + filepath.Join(t.TempDir(), "bus")
	cmd := exec.Command(bin, "--session", "--nofork", "--nopidfile", "--address="+addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	sock := strings.TrimPrefix(addr, "unix:path=")
	for range 100 {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return addr
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("dbus-daemon did not come up")
	return ""
}
