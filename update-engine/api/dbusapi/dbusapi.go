// Package dbusapi is update_engine's D-Bus interface, com.coreos.update1 as CoreOS had it: the
// names the engine serves under, the StatusUpdate signal's body, and the client side a watcher
// such as locksmithd needs (SystemBus, Watch). It lives under api because it is the other way
// to reach the same engine with the same api.Status, and it is called dbusapi rather than dbus
// so that it does not shadow godbus's package in the files that use both. It imports godbus
// and api only, so that a watcher links none of the engine.
package dbusapi

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/godbus/dbus/v5"

	"github.com/cairn-os/cairn/update-engine/api"
)

// The D-Bus interface of CoreOS update_engine, kept so that agents watching it work unchanged.
const (
	Name      = "com.coreos.update1"
	Path      = dbus.ObjectPath("/com/coreos/update1")
	Interface = "com.coreos.update1.Manager"
)

// StatusUpdate is the member name of the signal the engine sends on every status change;
// StatusUpdateSignal is its full name, as Emit takes it and a received Signal carries it.
const (
	StatusUpdate       = "StatusUpdate"
	StatusUpdateSignal = Interface + "." + StatusUpdate
)

// Introspection describes the interface, for org.freedesktop.DBus.Introspectable.
const Introspection = `
<interface name="` + Interface + `">
  <method name="AttemptUpdate"/>
  <method name="ResetStatus"/>
  <method name="GetStatus">
    <arg type="x" name="last_checked_time" direction="out"/>
    <arg type="d" name="progress" direction="out"/>
    <arg type="s" name="current_operation" direction="out"/>
    <arg type="s" name="new_version" direction="out"/>
    <arg type="x" name="new_size" direction="out"/>
  </method>
  <signal name="` + StatusUpdate + `">
    <arg type="x" name="last_checked_time"/>
    <arg type="d" name="progress"/>
    <arg type="s" name="current_operation"/>
    <arg type="s" name="new_version"/>
    <arg type="x" name="new_size"/>
  </signal>
</interface>`

// StatusBody is s as GetStatus returns it and StatusUpdate carries it: last_checked_time,
// progress, current_operation, new_version, new_size.
func StatusBody(s api.Status) []any {
	return []any{s.LastCheckedTime, s.Progress, s.CurrentOperation, s.NewVersion, s.NewSize}
}

// ParseStatus reads a GetStatus reply or a StatusUpdate body.
func ParseStatus(body []any) (api.Status, error) {
	var s api.Status
	if err := dbus.Store(body, &s.LastCheckedTime, &s.Progress, &s.CurrentOperation, &s.NewVersion, &s.NewSize); err != nil {
		return api.Status{}, fmt.Errorf("%s status: %w", Name, err)
	}
	return s, nil
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

// Watch follows the engine's status on conn the way CoreOS locksmith did: it subscribes to
// StatusUpdate and then asks GetStatus (so that no change falls between the two), and asks
// again whenever com.coreos.update1 gets a new owner (the engine restarted). Only signals
// from the name's current owner count: anyone on the bus can send a signal. The channel
// holds the latest status only; it is closed when ctx ends or the bus goes away.
func Watch(ctx context.Context, conn *dbus.Conn) (<-chan api.Status, error) {
	if err := conn.AddMatchSignalContext(ctx, dbus.WithMatchSender(Name), dbus.WithMatchObjectPath(Path),
		dbus.WithMatchInterface(Interface), dbus.WithMatchMember(StatusUpdate)); err != nil {
		return nil, fmt.Errorf("D-Bus: subscribe to %s: %w", StatusUpdateSignal, err)
	}
	if err := conn.AddMatchSignalContext(ctx, dbus.WithMatchSender(busName), dbus.WithMatchInterface(busName),
		dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, Name)); err != nil {
		return nil, fmt.Errorf("D-Bus: follow the owner of %s: %w", Name, err)
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
		if err := conn.BusObject().CallWithContext(ctx, busName+".GetNameOwner", 0, Name).Store(&o); err != nil {
			return // not running (yet): NameOwnerChanged will say when it is
		}
		owner = o
		call := conn.Object(Name, Path).CallWithContext(ctx, Interface+".GetStatus", 0)
		if call.Err != nil {
			return
		}
		if s, err := ParseStatus(call.Body); err == nil {
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
					if len(sig.Body) == 3 && sig.Body[0] == Name {
						ask()
					}
				case sig.Name == StatusUpdateSignal && sig.Path == Path && sig.Sender == owner && owner != "":
					if s, err := ParseStatus(sig.Body); err == nil {
						send(s)
					}
				}
			}
		}
	}()
	return out, nil
}
