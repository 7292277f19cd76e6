package engine

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"

	"github.com/cairn-os/cairn/update-engine/api/dbusapi"
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

// ServeDBus exports the engine on conn as com.coreos.update1 and emits StatusUpdate on every
// status change until ctx ends.
func ServeDBus(ctx context.Context, conn *dbus.Conn, e *Engine, trigger chan<- struct{}) error {
	m := &dbusManager{e: e, trigger: trigger}
	if err := conn.Export(m, dbusapi.Path, dbusapi.Interface); err != nil {
		return err
	}
	node := "<node>" + dbusapi.Introspection + introspect.IntrospectDataString + "</node>"
	if err := conn.Export(introspect.Introspectable(node), dbusapi.Path, "org.freedesktop.DBus.Introspectable"); err != nil {
		return err
	}
	reply, err := conn.RequestName(dbusapi.Name, dbus.NameFlagDoNotQueue)
	if err != nil {
		return fmt.Errorf("D-Bus name %s: %w", dbusapi.Name, err)
	}
	if reply != dbus.RequestNameReplyPrimaryOwner {
		return fmt.Errorf("D-Bus name %s is taken", dbusapi.Name)
	}
	ch, stop := e.Subscribe()
	go func() {
		defer stop()
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-ch:
				if err := conn.Emit(dbusapi.Path, dbusapi.StatusUpdateSignal, dbusapi.StatusBody(s)...); err != nil {
					e.log().Warn("emitting StatusUpdate", "err", err)
				}
			}
		}
	}()
	return nil
}
