package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/cairn-os/cairn/flannel/config"
	"github.com/cairn-os/cairn/flannel/lease"
)

// RenewInterval is how often the etcd lease is refreshed: when the renew margin is
// reached, and at least every TTL/3 so that a missed renewal or two is harmless.
// Failed renewals are retried every few seconds at most (retryCap), so that a lease
// survives an etcd outage that ends before the TTL runs out.
func (r *Registry) RenewInterval() time.Duration {
	iv := r.TTL - r.RenewMargin
	if iv <= 0 || iv > r.TTL/3 {
		iv = r.TTL / 3
	}
	return max(iv, 500*time.Millisecond)
}

// Keep keeps the host's lease: it renews the etcd lease, and acquires again (the same
// subnet whenever possible) when the key or the etcd lease is gone. onChange is called
// with the new lease when the subnet changed. It returns when ctx ends.
func (r *Registry) Keep(ctx context.Context, cfg *config.Config, onChange func(lease.Lease)) {
	r.mu.Lock()
	r.init()
	r.mu.Unlock()
	backoff := time.Second
	next := r.RenewInterval()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.After(next):
		case <-r.lost:
			r.Log.Warn("our subnet lease disappeared from etcd; acquiring it again", "subnet", r.Own().Subnet)
			if err := r.reacquire(ctx, cfg, onChange); err != nil {
				r.Log.Error("re-acquire subnet lease", "err", err)
				next = backoff
				backoff = min(backoff*2, r.retryCap())
				r.signalLost()
				continue
			}
			backoff, next = time.Second, r.RenewInterval()
			continue
		}
		err := r.renew(ctx)
		switch {
		case err == nil:
			backoff, next = time.Second, r.RenewInterval()
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			r.Log.Warn("etcd lease expired; acquiring the subnet again", "subnet", r.Own().Subnet)
			r.dropLease(r.LeaseID())
			if err := r.reacquire(ctx, cfg, onChange); err != nil {
				r.Log.Error("re-acquire subnet lease", "err", err, "retry_in", backoff)
				next = backoff
				backoff = min(backoff*2, r.retryCap())
				continue
			}
			backoff, next = time.Second, r.RenewInterval()
		default:
			r.Log.Warn("renew subnet lease; will retry", "err", err, "retry_in", backoff)
			next = backoff
			backoff = min(backoff*2, r.retryCap())
		}
	}
}

func (r *Registry) retryCap() time.Duration {
	return min(5*time.Second, max(r.TTL/6, 500*time.Millisecond))
}

func (r *Registry) renew(ctx context.Context) error {
	own := r.Own()
	if own.Reservation {
		return nil
	}
	id := r.LeaseID()
	if id == 0 {
		return rpctypes.ErrLeaseNotFound
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := r.Client.KeepAliveOnce(cctx, id)
	if err != nil {
		return fmt.Errorf("renew lease of %s: %w", own.Subnet, err)
	}
	r.Log.Debug("renewed subnet lease", "subnet", own.Subnet, "ttl", resp.TTL)
	return nil
}

func (r *Registry) reacquire(ctx context.Context, cfg *config.Config, onChange func(lease.Lease)) error {
	old := r.Own()
	l, err := r.Acquire(ctx, cfg, old.Attrs, old.Subnet)
	if err != nil {
		return err
	}
	if l.Subnet != old.Subnet && onChange != nil {
		onChange(l)
	}
	return nil
}

// signalLost wakes Keep to acquire again; one pending signal is enough.
func (r *Registry) signalLost() {
	select {
	case r.lost <- struct{}{}:
	default:
	}
}
