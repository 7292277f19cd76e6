package engine

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/cairn-os/cairn/internal/testenv"
)

// A private dbus-daemon stands in for the system bus.
func privateBus(t *testing.T) string {
	bin := testenv.RequireCommand(t, "dbus-daemon")
	addr := "unix:path=" + filepath.Join(t.TempDir(), "bus")
	cmd := exec.Command(bin, "--session", "--nofork", "--nopidfile", "--address="+addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for i := 0; i < 100; i++ {
		if c, err := dbus.Connect(addr); err == nil {
			c.Close()
			return addr
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("dbus-daemon did not come up")
	return ""
}

func TestDBusInterface(t *testing.T) {
	addr := privateBus(t)
	m := newMachine(t)
	m.publish("2.0.0", m.priv)
	e := m.engine("1.0.0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srvConn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer srvConn.Close()
	trigger := make(chan struct{}, 1)
	if err := ServeDBus(ctx, srvConn, e, trigger); err != nil {
		t.Fatal(err)
	}

	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.AddMatchSignal(dbus.WithMatchInterface(DBusInterface), dbus.WithMatchMember("StatusUpdate")); err != nil {
		t.Fatal(err)
	}
	signals := make(chan *dbus.Signal, 32)
	conn.Signal(signals)

	obj := conn.Object(DBusName, DBusPath)
	var last, size int64
	var progress float64
	var op, version string
	if err := obj.Call(DBusInterface+".GetStatus", 0).Store(&last, &progress, &op, &version, &size); err != nil {
		t.Fatal(err)
	}
	if op != OpIdle {
		t.Fatalf("GetStatus op %q", op)
	}
	if err := obj.Call(DBusInterface+".AttemptUpdate", 0).Err; err != nil {
		t.Fatal(err)
	}
	select {
	case <-trigger:
	default:
		t.Fatal("AttemptUpdate did not start a check")
	}
	if _, err := e.Check(ctx, "ondemandupdate"); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case s := <-signals:
			if len(s.Body) == 5 && s.Body[2] == OpUpdateAvailable && s.Body[3] == "2.0.0" {
				if err := obj.Call(DBusInterface+".ResetStatus", 0).Err; err != nil {
					t.Fatal(err)
				}
				return
			}
		case <-deadline:
			t.Fatal("no StatusUpdate signal with UPDATE_AVAILABLE")
		}
	}
}
