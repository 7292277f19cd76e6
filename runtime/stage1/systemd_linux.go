package stage1

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/coreos/go-systemd/v22/machine1"
)

// SystemdReady returns the readiness hook of a pod run by systemd: it registers the pod with
// systemd-machined as rkt-<uuid> when machined answers on the system bus (leaving the pod in
// the unit's cgroup, so the unit still owns it), then sends READY=1 when NOTIFY_SOCKET is set.
func SystemdReady(uuid string, log *slog.Logger) func(ctx context.Context, leader int) error {
	return func(ctx context.Context, leader int) error {
		if err := registerMachine(uuid, leader); err != nil && log != nil {
			lvl := slog.LevelDebug
			if !errors.Is(err, errNoBus) {
				lvl = slog.LevelWarn
			}
			log.Log(ctx, lvl, "pod not registered with systemd-machined", "err", err)
		}
		if os.Getenv("NOTIFY_SOCKET") == "" {
			return nil
		}
		ok, err := daemon.SdNotify(false, daemon.SdNotifyReady)
		if err != nil {
			return fmt.Errorf("sd_notify: %w", err)
		}
		if !ok {
			return fmt.Errorf("sd_notify: NOTIFY_SOCKET not usable")
		}
		return nil
	}
}

var errNoBus = errors.New("no system bus")

// MachineName is the pod's name in systemd-machined.
func MachineName(uuid string) string { return "rkt-" + uuid }

func registerMachine(uuid string, leader int) error {
	if _, err := os.Stat("/run/dbus/system_bus_socket"); err != nil {
		return errNoBus
	}
	id, err := hex.DecodeString(strings.ReplaceAll(uuid, "-", ""))
	if err != nil {
		return err
	}
	conn, err := machine1.New()
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.RegisterMachine(MachineName(uuid), id, "rkt", "container", leader, "/")
}
