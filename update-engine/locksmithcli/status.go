package locksmithcli

import (
	"context"
	"log/slog"
	"sync"

	"github.com/cairn-os/cairn/update-engine/api"
)

// engineStatus is what locksmithd knows of update_engine. On a system bus it follows the
// StatusUpdate signal of com.coreos.update1 (as CoreOS locksmith did) and never asks the
// engine; without a bus, or after losing it, it asks the engine's unix socket each time.
type engineStatus struct {
	socket string
	log    *slog.Logger

	mu  sync.Mutex
	bus bool   // following the signal
	op  string // the last CurrentOperation the bus told
}

// follow takes statuses from the bus until the channel closes, then falls back to the
// socket. The returned channel ticks on every change, to wake locksmithd's loop.
func (s *engineStatus) follow(statuses <-chan api.Status) <-chan struct{} {
	changed := make(chan struct{}, 1)
	tick := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	s.mu.Lock()
	s.bus = true
	s.mu.Unlock()
	go func() {
		for st := range statuses {
			s.mu.Lock()
			s.op = st.CurrentOperation
			s.mu.Unlock()
			s.log.Debug("update_engine status (D-Bus)", "op", st.CurrentOperation, "version", st.NewVersion)
			tick()
		}
		s.mu.Lock()
		s.bus = false
		s.mu.Unlock()
		s.log.Warn("lost the system bus; asking update_engine's socket instead", "socket", s.socket)
		tick()
	}()
	return changed
}

// needReboot reports whether the engine applied an update that needs a reboot.
func (s *engineStatus) needReboot(ctx context.Context) (bool, error) {
	s.mu.Lock()
	bus, op := s.bus, s.op
	s.mu.Unlock()
	if bus {
		return op == api.OpNeedReboot, nil
	}
	need := false
	err := api.Dial(ctx, s.socket, api.Call{Method: api.MethodGetStatus}, func(r api.Reply) bool {
		need = r.Status != nil && r.Status.CurrentOperation == api.OpNeedReboot
		return false
	})
	return need, err
}
