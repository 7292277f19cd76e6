package engine

import (
	"context"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/update-engine/api"
	"github.com/cairn-os/cairn/update-engine/api/dbusapi"
	"github.com/cairn-os/cairn/update-engine/omaha"
)

func TestDBusInterface(t *testing.T) {
	addr := testenv.PrivateBus(t)
	m := newMachine(t)
	m.publish("2.0.0", m.priv)
	e := m.engine("1.0.0")
	ctx := t.Context()
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
	if err := conn.AddMatchSignal(dbus.WithMatchInterface(dbusapi.Interface), dbus.WithMatchMember(dbusapi.StatusUpdate)); err != nil {
		t.Fatal(err)
	}
	signals := make(chan *dbus.Signal, 32)
	conn.Signal(signals)

	obj := conn.Object(dbusapi.Name, dbusapi.Path)
	var last, size int64
	var progress float64
	var op, version string
	if err := obj.Call(dbusapi.Interface+".GetStatus", 0).Store(&last, &progress, &op, &version, &size); err != nil {
		t.Fatal(err)
	}
	if op != api.OpIdle {
		t.Fatalf("GetStatus op %q", op)
	}
	if err := obj.Call(dbusapi.Interface+".AttemptUpdate", 0).Err; err != nil {
		t.Fatal(err)
	}
	select {
	case <-trigger:
	default:
		t.Fatal("AttemptUpdate did not start a check")
	}
	if _, err := e.Check(ctx, omaha.InstallSourceOnDemand); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case s := <-signals:
			if len(s.Body) == 5 && s.Body[2] == api.OpUpdateAvailable && s.Body[3] == "2.0.0" {
				if err := obj.Call(dbusapi.Interface+".ResetStatus", 0).Err; err != nil {
					t.Fatal(err)
				}
				return
			}
		case <-deadline:
			t.Fatal("no StatusUpdate signal with UPDATE_AVAILABLE")
		}
	}
}

// dbusapi.Watch against ServeDBus, as locksmithd uses it: the status at start, then every
// StatusUpdate of the engine, and nothing from a stranger who sends a lookalike signal.
func TestWatchDBus(t *testing.T) {
	addr := testenv.PrivateBus(t)
	m := newMachine(t)
	m.publish("2.0.0", m.priv)
	e := m.engine("1.0.0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	connect := func() *dbus.Conn {
		c, err := dbus.Connect(addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	if err := ServeDBus(ctx, connect(), e, make(chan struct{}, 1)); err != nil {
		t.Fatal(err)
	}
	statuses, err := dbusapi.Watch(ctx, connect())
	if err != nil {
		t.Fatal(err)
	}
	next := func() api.Status {
		t.Helper()
		select {
		case s, ok := <-statuses:
			if !ok {
				t.Fatal("status channel closed")
			}
			return s
		case <-time.After(5 * time.Second):
			t.Fatal("no status")
		}
		return api.Status{}
	}
	if s := next(); s.CurrentOperation != api.OpIdle {
		t.Fatalf("first status %+v, want the engine's GetStatus (idle)", s)
	}
	stranger := connect()
	if err := stranger.Emit(dbusapi.Path, dbusapi.StatusUpdateSignal, int64(0), 1.0, api.OpNeedReboot, "6.6.6", int64(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Check(ctx, omaha.InstallSourceOnDemand); err != nil {
		t.Fatal(err)
	}
	for {
		s := next()
		if s.CurrentOperation == api.OpNeedReboot || s.NewVersion == "6.6.6" {
			t.Fatalf("took a stranger's signal: %+v", s)
		}
		if s.CurrentOperation == api.OpUpdateAvailable && s.NewVersion == "2.0.0" {
			break
		}
	}
	cancel()
	for range statuses { // closed when ctx ends
	}
}
