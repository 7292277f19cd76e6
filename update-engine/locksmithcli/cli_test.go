package locksmithcli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/internal/testenv"
)

func TestLocksmithdAndCtl(t *testing.T) {
	ep := testenv.Etcd(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "update.conf")
	os.WriteFile(conf, []byte("REBOOT_STRATEGY=etcd-lock\nLOCKSMITHD_ENDPOINT="+ep+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "machine-id"), []byte("m1\n"), 0o644)
	flags := []string{"-config", conf, "-machine-id", filepath.Join(dir, "machine-id"), "-need-reboot-file", filepath.Join(dir, "need-reboot")}
	ctl := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := RunCtl(context.Background(), append(append([]string{}, flags...), args...), &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := ctl("status"); code != 0 || out != "Available: 1\nMax: 1\n" {
		t.Fatalf("status: %d %q", code, out)
	}
	// Another machine holds the lock: locksmithd must wait for it.
	if code, out := ctl("lock", "other"); code != 0 {
		t.Fatalf("lock other: %s", out)
	}
	if code, _ := ctl("send-need-reboot"); code != 0 {
		t.Fatal("send-need-reboot")
	}
	rebooted := filepath.Join(dir, "rebooted")
	done := make(chan int)
	var logs bytes.Buffer
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done <- RunDaemon(ctx, append(append([]string{}, flags...), "-socket", filepath.Join(dir, "none.sock"), "-poll", "50ms",
			"-reboot-command", "touch "+rebooted), &logs, &logs)
	}()
	time.Sleep(300 * time.Millisecond)
	if _, err := os.Stat(rebooted); err == nil {
		t.Fatal("rebooted while another machine held the lock")
	}
	if code, out := ctl("unlock", "other"); code != 0 { // the operator frees the stuck holder
		t.Fatalf("unlock other: %s", out)
	}
	if code := <-done; code != 0 {
		t.Fatalf("locksmithd exit %d\n%s", code, logs.String())
	}
	if _, err := os.Stat(rebooted); err != nil {
		t.Fatal("locksmithd did not reboot")
	}
	if code, out := ctl("status"); code != 0 || !strings.Contains(out, "Available: 0") || !strings.Contains(out, "m1") {
		t.Fatalf("status while rebooting: %q", out)
	}
	if code, out := ctl("set-max", "3"); code != 0 {
		t.Fatal(out)
	}
	if code, out := ctl("-format=json", "status"); code != 0 || !strings.Contains(out, `"semaphore":2,"max":3,"holders":["m1"]`) {
		t.Fatalf("json status: %q", out)
	}
	if code, _ := ctl("set-max", "x"); code == 0 {
		t.Fatal("set-max x accepted")
	}
}
