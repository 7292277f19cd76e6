package kube

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ErrLeasesHeld: other nodes hold every reboot Lease; the node asks again at the next poll.
var ErrLeasesHeld = errors.New("other nodes hold every reboot lease")

// errLostLease: a Lease this node held is someone else's now (it expired and was taken).
var errLostLease = errors.New("the reboot lease was taken over")

// leaseNames are the reboot Leases: NAME-0 to NAME-(max-1), one per node that may reboot
// at once.
func leaseNames(name string, max int) []string {
	names := make([]string, max)
	for i := range names {
		names[i] = name + "-" + strconv.Itoa(i)
	}
	return names
}

// holderOf is a Lease's holder, "" when it is free.
func holderOf(l *coordinationv1.Lease) string {
	if l == nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// expired reports whether a held Lease's holder stopped renewing it: its last renewal (or
// acquisition) plus its duration is past. A Lease that says neither when nor for how long
// counts as expired, as client-go's leader election takes a zero duration.
func expired(l *coordinationv1.Lease, now time.Time) bool {
	t := l.Spec.RenewTime
	if t == nil {
		t = l.Spec.AcquireTime
	}
	if t == nil || l.Spec.LeaseDurationSeconds == nil {
		return true
	}
	return !now.Before(t.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second))
}

// pick decides which of the Leases (as read, in order; nil: not created yet) holder takes:
// the one it holds already, else the first that is missing, free or expired. -1: others
// hold them all.
func pick(leases []*coordinationv1.Lease, holder string, now time.Time) int {
	for i, l := range leases {
		if l != nil && holderOf(l) == holder {
			return i
		}
	}
	for i, l := range leases {
		if l == nil || holderOf(l) == "" || expired(l, now) {
			return i
		}
	}
	return -1
}

// take makes l holder's from now on, for d; taking it from another holder (or a free
// Lease) counts a transition, as leader election does.
func take(l *coordinationv1.Lease, holder string, now time.Time, d time.Duration) {
	t := metav1.NewMicroTime(now)
	if holderOf(l) != holder {
		n := int32(1)
		if l.Spec.LeaseTransitions != nil {
			n = *l.Spec.LeaseTransitions + 1
		}
		l.Spec.LeaseTransitions = &n
		l.Spec.AcquireTime = &t
		l.Spec.HolderIdentity = &holder
	}
	l.Spec.RenewTime = &t
	secs := int32(d / time.Second)
	l.Spec.LeaseDurationSeconds = &secs
}

// readLeases gets the reboot Leases, nil for one not there.
func (s *Strategy) readLeases(ctx context.Context) ([]*coordinationv1.Lease, error) {
	names := leaseNames(s.leaseName(), s.max())
	leases := make([]*coordinationv1.Lease, len(names))
	for i, name := range names {
		l, err := s.Leases.Leases(s.namespace()).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, fmt.Errorf("lease %s/%s: %w", s.namespace(), name, err)
		default:
			leases[i] = l
		}
	}
	return leases, nil
}

// acquire takes a reboot Lease for the node and returns its name. Every write is
// conditional (a create fails if the Lease exists, an update if its resourceVersion is
// not the one read), so nodes racing for the last free Lease cannot both win: the loser
// reads again.
func (s *Strategy) acquire(ctx context.Context) (string, error) {
	for {
		leases, err := s.readLeases(ctx)
		if err != nil {
			return "", err
		}
		now := s.now()
		i := pick(leases, s.Node, now)
		if i < 0 {
			var held []string
			for _, l := range leases {
				held = append(held, l.Name+": "+holderOf(l))
			}
			return "", fmt.Errorf("%w (%s)", ErrLeasesHeld, strings.Join(held, ", "))
		}
		name := leaseNames(s.leaseName(), s.max())[i]
		l := leases[i]
		if l == nil {
			l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.namespace()}}
			take(l, s.Node, now, s.leaseDuration())
			_, err = s.Leases.Leases(s.namespace()).Create(ctx, l, metav1.CreateOptions{})
		} else {
			if h := holderOf(l); h != "" && h != s.Node {
				s.log().Info("taking over an expired reboot lease", "lease", name, "holder", h, "node", s.Node)
			}
			l = l.DeepCopy()
			take(l, s.Node, now, s.leaseDuration())
			_, err = s.Leases.Leases(s.namespace()).Update(ctx, l, metav1.UpdateOptions{})
		}
		switch {
		case err == nil:
			return name, nil
		case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
			s.log().Debug("reboot lease changed under us; reading it again", "lease", name)
			if err := ctx.Err(); err != nil {
				return "", err
			}
		default:
			return "", fmt.Errorf("lease %s/%s: take for %s: %w", s.namespace(), name, s.Node, err)
		}
	}
}

// update applies f to the named Lease while the node holds it, retrying on conflicts;
// errLostLease if it does not hold it (any more).
func (s *Strategy) update(ctx context.Context, name string, f func(*coordinationv1.Lease)) error {
	leases := s.Leases.Leases(s.namespace())
	for {
		l, err := leases.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || err == nil && holderOf(l) != s.Node {
			return fmt.Errorf("lease %s/%s: %w (holder %q)", s.namespace(), name, errLostLease, holderOf(l))
		}
		if err != nil {
			return fmt.Errorf("lease %s/%s: %w", s.namespace(), name, err)
		}
		f(l)
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		switch {
		case err == nil:
			return nil
		case !apierrors.IsConflict(err):
			return fmt.Errorf("lease %s/%s: %w", s.namespace(), name, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// renew moves the named Lease's renewTime to now.
func (s *Strategy) renew(ctx context.Context, name string) error {
	return s.update(ctx, name, func(l *coordinationv1.Lease) { take(l, s.Node, s.now(), s.leaseDuration()) })
}

// held returns the names of the reboot Leases the node holds.
func (s *Strategy) held(ctx context.Context) ([]string, error) {
	leases, err := s.readLeases(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range leases {
		if l != nil && holderOf(l) == s.Node {
			names = append(names, l.Name)
		}
	}
	return names, nil
}

// release frees the reboot Leases the node holds. A Lease someone took over meanwhile is
// theirs and left alone.
func (s *Strategy) release(ctx context.Context) error {
	names, err := s.held(ctx)
	if err != nil {
		return err
	}
	for _, name := range names {
		err := s.update(ctx, name, func(l *coordinationv1.Lease) { l.Spec.HolderIdentity = nil })
		if err != nil && !errors.Is(err, errLostLease) {
			return err
		}
		s.log().Info("reboot lease released", "lease", name, "node", s.Node)
	}
	return nil
}
