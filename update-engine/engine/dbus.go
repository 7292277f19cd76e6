package engine

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"

	"github.com/cairn-os/cairn/update-engine/api"
)

// The D-Bus interface of CoreOS update_engine, kept so that agents watching it work unchanged.
const (
	DBusName      = "com.coreos.update1"
	DBusPath      = dbus.ObjectPath("/com/coreos/update1")
	DBusInterface = "com.coreos.update1.Manager"
)

type dbusManager struct {
	e       *Engine
	trigger chan<- struct{}
}

// AttemptUpdate starts an update check now (it returns at once, as update_engine's did).
func (m *dbusManager) AttemptUpdate() *dbus.Error {
	select {
	case m.trigger <- struct{}{}:
	default:
	}
	return nil
}

// ResetStatus returns to idle (undoing an applied update that was not booted).
func (m *dbusManager) ResetStatus() *dbus.Error {
	if err := m.e.ResetStatus(context.Background()); err != nil {
		return dbus.MakeFailedError(err)
	}
	return nil
}

// GetStatus returns last_checked_time, progress, current_operation, new_version, new_size.
func (m *dbusManager) GetStatus() (int64, float64, string, string, int64, *dbus.Error) {
	s := m.e.Status()
	return s.LastCheckedTime, s.Progress, s.CurrentOperation, s.NewVersion, s.NewSize, nil
}

const introspection = `
<interface name="` + DBusInterface + `">
  <method name="AttemptUpdate"/>
  <method name="ResetStatus"/>
  <method name="GetStatus">
    <arg type="x" name="last_checked_time" direction="out"/>
    <arg type="d" name="progress" direction="out"/>
    <arg type="s" name="current_operation" direction="out"/>
    <arg type="s" name="new_version" direction="out"/>
    <arg type="x" name="new_size" direction="out"/>
  </method>
  <signal name="StatusUpdate">
    <arg type="x" name="last_checked_time"/>
    <arg type="d" name="progress"/>
    <arg type="s" name="current_operation"/>
    <arg type="s" name="new_version"/>
    <arg type="x" name="new_size"/>
  </signal>
</interface>`

// ServeDBus exports the engine on conn as com.coreos.update1 and emits StatusUpdate on every
// status change until ctx ends.
func ServeDBus(ctx context.Context, conn *dbus.Conn, e *Engine, trigger chan<- struct{}) error {
	m := &dbusManager{e: e, trigger: trigger}
	if err := conn.Export(m, DBusPath, DBusInterface); err != nil {
		return err
	}
	node := "<node>" + introspection + introspect.IntrospectDataString + "</node>"
	if err := conn.Export(introspect.Introspectable(node), DBusPath, "org.freedesktop.DBus.Introspectable"); err != nil {
		return err
	}
	reply, err := conn.RequestName(DBusName, dbus.NameFlagDoNotQueue)
	if err != nil {
		return fmt.Errorf("D-Bus name %s: %w", DBusName, err)
	}
	if reply != dbus.RequestNameReplyPrimaryOwner {
		return fmt.Errorf("D-Bus name %s is taken", DBusName)
	}
	ch, stop := e.Subscribe()
	go func() {
		defer stop()
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-ch:
				if err := conn.Emit(DBusPath, DBusInterface+".StatusUpdate", s.LastCheckedTime, s.Progress, s.CurrentOperation, s.NewVersion, s.NewSize); err != nil {
					e.log().Warn("emitting StatusUpdate", "err", err)
				}
			}
		}
	}()
	return nil
}

// SystemBus connects to the system D-Bus, or says why there is none (no bus on a build host
// or in a container: callers fall back to the unix socket).
func SystemBus() (*dbus.Conn, error) {
	if os.Getenv("DBUS_SYSTEM_BUS_ADDRESS") == "" {
		if _, err := os.Stat("/run/dbus/system_bus_socket"); err != nil {
			return nil, errors.New("no /run/dbus/system_bus_socket")
		}
	}
	return dbus.ConnectSystemBus()
}

const busName = "org.freedesktop.DBus"

// WatchDBus follows the engine's status on conn the way CoreOS locksmith did: it subscribes
// to StatusUpdate and then asks GetStatus (so that no change falls between the two), and
// asks again whenever com.coreos.update1 gets a new owner (the engine restarted). Only
// signals from the name's current owner count: anyone on the bus can send a signal. The
// channel holds the latest status only; it is closed when ctx ends or the bus goes away.
func WatchDBus(ctx context.Context, conn *dbus.Conn) (<-chan api.Status, error) {
	if err := conn.AddMatchSignalContext(ctx, dbus.WithMatchSender(DBusName), dbus.WithMatchObjectPath(DBusPath),
		dbus.WithMatchInterface(DBusInterface), dbus.WithMatchMember("StatusUpdate")); err != nil {
		return nil, fmt.Errorf("D-Bus: subscribe to %s.StatusUpdate: %w", DBusInterface, err)
	}
	if err := conn.AddMatchSignalContext(ctx, dbus.WithMatchSender(busName), dbus.WithMatchInterface(busName),
		dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, DBusName)); err != nil {
		return nil, fmt.Errorf("D-Bus: follow the owner of %s: %w", DBusName, err)
	}
	sigs := make(chan *dbus.Signal, 16)
	conn.Signal(sigs)
	out := make(chan api.Status, 1)
	send := func(s api.Status) {
		for {
			select {
			case out <- s:
				return
			default: // replace a status nobody has read yet
				select {
				case <-out:
				default:
				}
			}
		}
	}
	owner := ""
	ask := func() {
		owner = ""
		var o string
		if err := conn.BusObject().CallWithContext(ctx, busName+".GetNameOwner", 0, DBusName).Store(&o); err != nil {
			return // not running (yet): NameOwnerChanged will say when it is
		}
		owner = o
		var s api.Status
		if err := conn.Object(DBusName, DBusPath).CallWithContext(ctx, DBusInterface+".GetStatus", 0).
			Store(&s.LastCheckedTime, &s.Progress, &s.CurrentOperation, &s.NewVersion, &s.NewSize); err == nil {
			send(s)
		}
	}
	go func() {
		defer close(out)
		defer conn.RemoveSignal(sigs)
		ask()
		for {
			select {
			case <-ctx.Done():
				return
			case sig, ok := <-sigs:
				if !ok {
					return
				}
				switch {
				case sig.Name == busName+".NameOwnerChanged" && sig.Sender == busName:
					if len(sig.Body) == 3 && sig.Body[0] == DBusName {
						ask()
					}
				case sig.Name == DBusInterface+".StatusUpdate" && sig.Path == DBusPath && sig.Sender == owner && owner != "":
					var s api.Status
					if dbus.Store(sig.Body, &s.LastCheckedTime, &s.Progress, &s.CurrentOperation, &s.NewVersion, &s.NewSize) == nil {
						send(s)
					}
				}
			}
		}
	}()
	return out, nil
}
