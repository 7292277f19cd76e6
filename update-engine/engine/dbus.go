package engine

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
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
