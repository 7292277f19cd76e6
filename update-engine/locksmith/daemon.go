package locksmith

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/cairn-os/cairn/update-engine/updateconf"
)

// Locker is a reboot lock: the etcd semaphore, a FleetLock server, or the kubernetes
// strategy's Lease with the drain before the reboot and the uncordon after it.
type Locker interface {
	// Lock takes the lock and readies the machine for the reboot.
	Lock(ctx context.Context) error
	// Unlock gives the lock back after the reboot (and at every start).
	Unlock(ctx context.Context) error
}

// Errors a Locker returns to change what the daemon does next.
var (
	// ErrGaveUp: Lock could take the lock but not ready the machine (a drain that ran out
	// of time) and gave the lock back; the daemon asks again at the next reboot window, or
	// after Retry without one, not at the next poll.
	ErrGaveUp = errors.New("gave up until the next reboot window")
	// ErrKeep: Unlock keeps the lock for now (the new version has not been blessed good
	// yet) and is asked again at the next poll.
	ErrKeep = errors.New("keeping the reboot lock for now")
)

// Daemon is locksmithd's loop: once the update engine needs a reboot, wait for the window,
// take the lock (per strategy), reboot. At start it releases a lock held from before the
// reboot that brought it up.
type Daemon struct {
	Strategy   string // updateconf.Strategy*
	Window     *Window
	Locker     Locker // for etcd-lock and fleetlock
	NeedReboot func(ctx context.Context) (bool, error)
	Reboot     func(ctx context.Context) error
	Now        func() time.Time
	Sleep      func(ctx context.Context, d time.Duration) error
	// Poll is how often the engine's status is read and a taken lock asked for again.
	Poll time.Duration
	// Retry is how long to wait after a Locker gave up (ErrGaveUp) when there is no reboot
	// window (default 1h).
	Retry time.Duration
	// Changed, when set, wakes a waiting loop at once: the engine's status changed (its
	// D-Bus StatusUpdate signal), so NeedReboot is asked again without waiting for Poll.
	Changed <-chan struct{}
	Log     *slog.Logger
}

// discardLog is the logger of a caller that set none.
var discardLog = slog.New(slog.DiscardHandler)

func (d *Daemon) log() *slog.Logger {
	if d.Log == nil {
		return discardLog
	}
	return d.Log
}

func (d *Daemon) sleep(ctx context.Context, t time.Duration) error {
	if d.Sleep != nil {
		return d.Sleep(ctx, t)
	}
	tm := time.NewTimer(t)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	case <-d.Changed: // nil: never
		return nil
	}
}

func (d *Daemon) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Daemon) poll() time.Duration {
	if d.Poll <= 0 {
		return 30 * time.Second
	}
	return d.Poll
}

func (d *Daemon) locking() bool {
	switch d.Strategy {
	case updateconf.StrategyEtcdLock, updateconf.StrategyFleetLock, updateconf.StrategyKubernetes:
		return true
	}
	return false
}

// retryAfter is how long from t a Locker that gave up waits: until the next window opens.
func (d *Daemon) retryAfter(t time.Time) time.Duration {
	if d.Window != nil {
		return d.Window.Next(t)
	}
	if d.Retry <= 0 {
		return time.Hour
	}
	return d.Retry
}

// ReleaseAfterBoot gives back a lock this machine took before it rebooted, retrying until it
// succeeds or ctx ends.
func (d *Daemon) ReleaseAfterBoot(ctx context.Context) error {
	if !d.locking() || d.Locker == nil {
		return nil
	}
	for {
		err := d.Locker.Unlock(ctx)
		if err == nil {
			d.log().Info("reboot lock released (or not held)", "strategy", d.Strategy)
			return nil
		}
		if errors.Is(err, ErrKeep) {
			d.log().Info("reboot lock kept", "reason", err)
		} else {
			d.log().Warn("releasing the reboot lock", "err", err)
		}
		if err := d.sleep(ctx, d.poll()); err != nil {
			return err
		}
	}
}

// Run returns after the reboot was requested, or when ctx ends.
func (d *Daemon) Run(ctx context.Context) error {
	if d.Strategy == updateconf.StrategyOff {
		d.log().Info("reboot strategy off: not rebooting for updates")
		<-ctx.Done()
		return nil
	}
	if err := d.ReleaseAfterBoot(ctx); err != nil {
		return err
	}
	var notBefore time.Time // set when a Locker gave up for this window
	for {
		if err := ctx.Err(); err != nil {
			return nil
		}
		need, err := d.NeedReboot(ctx)
		if err != nil {
			d.log().Warn("reading the update engine's status", "err", err)
		}
		if !need {
			if err := d.sleep(ctx, d.poll()); err != nil {
				return nil
			}
			continue
		}
		if wait := d.Window.Wait(d.now()); wait > 0 {
			d.log().Info("reboot needed; waiting for the reboot window", "in", wait)
			if err := d.sleep(ctx, min(wait, d.poll())); err != nil {
				return nil
			}
			continue
		}
		if wait := notBefore.Sub(d.now()); wait > 0 {
			if err := d.sleep(ctx, min(wait, d.poll())); err != nil {
				return nil
			}
			continue
		}
		if d.locking() {
			err := d.Locker.Lock(ctx)
			if errors.Is(err, ErrGaveUp) {
				wait := d.retryAfter(d.now())
				notBefore = d.now().Add(wait)
				d.log().Warn("reboot needed; not ready to reboot, trying again later", "in", wait, "err", err)
				continue
			}
			if err != nil && !errors.Is(err, ErrHeld) {
				d.log().Info("reboot needed; lock not available", "err", err)
				if err := d.sleep(ctx, d.poll()); err != nil {
					return nil
				}
				continue
			}
			d.log().Info("reboot lock taken")
		}
		d.log().Info("rebooting to finish the update")
		return d.Reboot(ctx)
	}
}
