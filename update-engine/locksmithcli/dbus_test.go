package locksmithcli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/update-engine/api"
	"github.com/cairn-os/cairn/update-engine/api/dbusapi"
)

// fakeEngine owns com.coreos.update1 and answers GetStatus with op; asked ticks on every call.
type fakeEngine struct {
	mu    sync.Mutex
	op    string
	asked chan struct{}
}

func (f *fakeEngine) GetStatus() (int64, float64, string, string, int64, *dbus.Error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case f.asked <- struct{}{}:
	default:
	}
	return 0, 0, f.op, "", 0, nil
}

type daemonRun struct {
	rebooted string
	done     chan int
	logs     *bytes.Buffer
}

// startLocksmithd runs locksmithd (strategy reboot) with a poll so long that only a status
// change can wake it.
func startLocksmithd(t *testing.T, ctx context.Context, socket string, extra ...string) *daemonRun {
	dir := t.TempDir()
	conf := filepath.Join(dir, "update.conf")
	os.WriteFile(conf, []byte("REBOOT_STRATEGY=reboot\n"), 0o644)
	r := &daemonRun{rebooted: filepath.Join(dir, "rebooted"), done: make(chan int, 1), logs: &bytes.Buffer{}}
	args := append([]string{"-config", conf, "-machine-id", "/dev/null", "-need-reboot-file", filepath.Join(dir, "need-reboot"),
		"-socket", socket, "-poll", "1h", "-reboot-command", "touch " + r.rebooted}, extra...)
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return r.logs.Write(p)
	})
	go func() { r.done <- RunDaemon(ctx, args, w, w) }()
	return r
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (r *daemonRun) waitReboot(t *testing.T) {
	t.Helper()
	select {
	case code := <-r.done:
		if code != 0 {
			t.Fatalf("locksmithd exit %d", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("locksmithd did not reboot")
	}
	if _, err := os.Stat(r.rebooted); err != nil {
		t.Fatal("locksmithd returned without rebooting")
	}
}

// locksmithd follows the engine's StatusUpdate signal: it reboots when the engine says it
// needs one, without asking the socket (there is none) and without waiting for a poll.
func TestLocksmithdFollowsStatusSignal(t *testing.T) {
	addr := testenv.PrivateBus(t)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)
	eng, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	fake := &fakeEngine{op: api.OpIdle, asked: make(chan struct{}, 1)}
	if err := eng.Export(fake, dbusapi.Path, dbusapi.Interface); err != nil {
		t.Fatal(err)
	}
	if reply, err := eng.RequestName(dbusapi.Name, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("request name: %v %v", reply, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run := startLocksmithd(t, ctx, filepath.Join(t.TempDir(), "no.sock"), "-dbus", "on")
	select {
	case <-fake.asked: // subscribed, then asked: idle
	case <-time.After(10 * time.Second):
		t.Fatal("locksmithd did not ask GetStatus on the bus")
	}
	emit := func(c *dbus.Conn, op string) {
		if err := c.Emit(dbusapi.Path, dbusapi.StatusUpdateSignal, int64(0), 0.5, op, "2.0.0", int64(1)); err != nil {
			t.Fatal(err)
		}
	}
	emit(eng, api.OpDownloading)
	// Anyone may send a signal; only the owner of com.coreos.update1 counts.
	stranger, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	emit(stranger, api.OpNeedReboot)
	time.Sleep(300 * time.Millisecond)
	if _, err := os.Stat(run.rebooted); err == nil {
		t.Fatal("rebooted on a stranger's signal")
	}
	emit(eng, api.OpNeedReboot)
	run.waitReboot(t)
}

// Without a bus locksmithd asks the engine's unix socket, as before.
func TestLocksmithdWithoutBusAsksSocket(t *testing.T) {
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "no-bus"))
	socket := filepath.Join(t.TempDir(), "ue.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var call api.Call
			line, _ := bufio.NewReader(c).ReadBytes('\n')
			if json.Unmarshal(line, &call) == nil && call.Method == api.MethodGetStatus {
				json.NewEncoder(c).Encode(api.Reply{Status: &api.Status{CurrentOperation: api.OpNeedReboot}})
			}
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run := startLocksmithd(t, ctx, socket)
	run.waitReboot(t)
	if !bytes.Contains(run.logs.Bytes(), []byte("no system D-Bus")) {
		t.Fatalf("no word of the fallback in the log:\n%s", run.logs)
	}
}
