// Package kube is locksmithd's kubernetes strategy (REBOOT_STRATEGY=kubernetes): what the
// Container Linux Update Operator and kured do for a Kubernetes node, done by the machine
// that knows it needs a reboot. Before the reboot into an installed update it takes one of
// the cluster's reboot Leases (coordination.k8s.io/v1, NAME-0 to NAME-(max-1), held by the
// node's name), cordons the node and evicts its pods through the Eviction API, so that
// PodDisruptionBudgets hold; a drain that runs out of time is reported and undone, never
// forced. After the boot, once the new version is blessed good or rolled back from, it says
// which on the Node (an event and the CairnUpdateRolledBack condition), uncordons the node
// and gives the Lease back. Strategy is a locksmith.Locker: Lock is the step before the
// reboot, Unlock the step after it.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/cairn-os/cairn/update-engine/api"
	"github.com/cairn-os/cairn/update-engine/locksmith"
)

// Defaults of the Strategy's settings (and of update.conf's LOCKSMITHD_KUBE* keys).
const (
	DefaultNamespace     = "kube-system"
	DefaultLeaseName     = "cairn-reboot"
	DefaultLeaseDuration = time.Hour
	DefaultDrainTimeout  = 15 * time.Minute
	DefaultInterval      = 5 * time.Second
)

// Strategy drains the node for a reboot and takes it back after. Its clients are
// client-go's typed clients of the two API groups it uses (an Eviction is posted by the
// core client's EvictV1), so locksmithd links no other.
type Strategy struct {
	Core   corev1client.CoreV1Interface
	Leases coordinationv1client.LeasesGetter
	// Node is this node's name, the Leases' holder.
	Node string
	// Namespace and LeaseName name the reboot Leases: Namespace/LeaseName-0 to
	// LeaseName-(Max-1); Max nodes may drain and reboot at once.
	Namespace string
	LeaseName string
	Max       int
	// LeaseDuration is how long a Lease stays held without renewal: a node that does not
	// come back holds up the others this long. It is renewed while the node drains and
	// while its new version is on trial, and taken fresh just before the reboot.
	LeaseDuration time.Duration
	// DrainTimeout is how long refused evictions are retried before the node gives up.
	DrainTimeout time.Duration
	// Interval is how often the drain lists the node's pods and asks again.
	Interval time.Duration
	// Slots reads update_engine's slots: before the reboot, the slot it goes into; after
	// it, whether that slot was blessed good or rolled back from.
	Slots func(ctx context.Context) (*api.SlotList, error)
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	Log   *slog.Logger
}

var _ locksmith.Locker = (*Strategy)(nil)

func (s *Strategy) namespace() string { return orDefault(s.Namespace, DefaultNamespace) }
func (s *Strategy) leaseName() string { return orDefault(s.LeaseName, DefaultLeaseName) }
func (s *Strategy) max() int          { return max(s.Max, 1) }
func (s *Strategy) leaseDuration() time.Duration {
	return orDefault(s.LeaseDuration.Truncate(time.Second), DefaultLeaseDuration)
}
func (s *Strategy) drainTimeout() time.Duration {
	return orDefault(s.DrainTimeout, DefaultDrainTimeout)
}
func (s *Strategy) interval() time.Duration { return orDefault(s.Interval, DefaultInterval) }

// orDefault is v, or def when v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func (s *Strategy) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Strategy) sleep(ctx context.Context, d time.Duration) error {
	if s.Sleep != nil {
		return s.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

var discardLog = slog.New(slog.DiscardHandler)

func (s *Strategy) log() *slog.Logger {
	if s.Log == nil {
		return discardLog
	}
	return s.Log
}

// Lock readies the node for the reboot, in steps: take a reboot Lease; note on the Node
// the slot the reboot goes into and cordon it; drain it; renew the Lease for the reboot.
// A drain that runs out of time is reported (the log and a Node event), the node
// uncordoned and the Lease given back: locksmith.ErrGaveUp. ErrLeasesHeld when other
// nodes hold every Lease. A Lock stopped by ctx leaves the node as it is, for Unlock at
// the next start.
func (s *Strategy) Lock(ctx context.Context) error {
	lease, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	s.log().Info("reboot lease taken", "lease", lease, "node", s.Node)
	sl, err := s.Slots(ctx)
	if err != nil {
		return s.undo(ctx, fmt.Errorf("update_engine's slots: %w", err))
	}
	rec := target(sl)
	if err := s.cordon(ctx, rec); err != nil {
		return s.undo(ctx, err)
	}
	into := "a reboot"
	if rec.Version != "" {
		into = fmt.Sprintf("the reboot into %s (slot %s)", rec.Version, rec.Slot)
	}
	s.log().Info("cordoned; draining", "node", s.Node, "for", into)
	s.event(ctx, corev1.EventTypeNormal, ReasonDraining, fmt.Sprintf("Draining node %s for %s, under lease %s/%s", s.Node, into, s.namespace(), lease))
	if err := s.drain(ctx, lease); err != nil {
		if ctx.Err() != nil {
			return err
		}
		if errors.Is(err, errDrainTimeout) {
			s.log().Warn("giving up the reboot until the next window; nothing is forced", "err", err)
			s.event(ctx, corev1.EventTypeWarning, ReasonDrainTimedOut, fmt.Sprintf("Not rebooting for %s: %v; uncordoned, lease released, trying again at the next reboot window", into, err))
			return s.undo(ctx, fmt.Errorf("%w: %w", err, locksmith.ErrGaveUp))
		}
		return s.undo(ctx, err)
	}
	if err := s.renew(ctx, lease); err != nil {
		return s.undo(ctx, err)
	}
	s.event(ctx, corev1.EventTypeNormal, ReasonRebooting, fmt.Sprintf("Node %s drained; rebooting for %s", s.Node, into))
	return nil
}

// undo uncordons the node and releases its Lease after a Lock that went no further, and
// returns why it did not.
func (s *Strategy) undo(ctx context.Context, why error) error {
	err := s.uncordon(ctx)
	if err == nil {
		err = s.release(ctx)
	}
	if err != nil {
		// Unlock, at the next start or the next try, finishes what is left.
		s.log().Warn("undoing the drain", "err", err)
	}
	return why
}

// Unlock finishes a reboot; locksmithd runs it at every start. When the Node carries a
// Record or the node holds a Lease, the slots tell how the boot went: on trial, the
// cordon stays and the Lease is renewed (locksmith.ErrKeep, asked again at the next poll);
// blessed good or rolled back, the Node says which (an event and the
// CairnUpdateRolledBack condition); then, and when it never rebooted, the node is
// uncordoned and its Lease released, in that order, so that the next node drains only
// once this one takes pods again.
func (s *Strategy) Unlock(ctx context.Context) error {
	n, err := s.Core.Nodes().Get(ctx, s.Node, metav1.GetOptions{})
	if err != nil {
		return nodeErr(s.Node, err)
	}
	rec, recorded, err := recordOf(n)
	if err != nil {
		s.log().Warn("after the reboot", "err", err)
	}
	held, err := s.held(ctx)
	if err != nil {
		return err
	}
	if !recorded && len(held) == 0 {
		return nil
	}
	outcome := Booted
	var sl *api.SlotList
	if rec.Slot != "" {
		if sl, err = s.Slots(ctx); err != nil {
			return fmt.Errorf("update_engine's slots: %w", err)
		}
		outcome = Judge(rec, sl)
	}
	s.log().Info("after the reboot", "node", s.Node, "into", rec.Version, "slot", rec.Slot, "outcome", outcome)
	switch outcome {
	case OnTrial:
		for _, l := range held {
			if err := s.renew(ctx, l); err != nil {
				s.log().Warn("renewing the reboot lease", "err", err)
			}
		}
		return fmt.Errorf("node %s: %s (slot %s) is on trial, not yet blessed good: the node stays cordoned: %w", s.Node, rec.Version, rec.Slot, locksmith.ErrKeep)
	case RolledBack:
		running := slot(sl, sl.Active)
		msg := fmt.Sprintf("Version %s (slot %s) never booted to good; the boot loader went back to %s (slot %s)", rec.Version, rec.Slot, running.Version, running.Slot)
		s.log().Warn("rolled back", "node", s.Node, "new", rec.Version, "running", running.Version)
		if err := s.setCondition(ctx, corev1.ConditionTrue, ReasonRolledBack, msg); err != nil {
			return err
		}
		s.event(ctx, corev1.EventTypeWarning, ReasonRolledBack, msg+"; uncordoning")
	case Booted:
		if rec.Version != "" {
			msg := fmt.Sprintf("Running %s (slot %s), blessed good", rec.Version, rec.Slot)
			if err := s.setCondition(ctx, corev1.ConditionFalse, ReasonBooted, msg); err != nil {
				return err
			}
			s.event(ctx, corev1.EventTypeNormal, ReasonBooted, msg+"; uncordoning")
		}
	}
	if err := s.uncordon(ctx); err != nil {
		return err
	}
	return s.release(ctx)
}
