package locksmith

import (
	"context"
	"errors"
	"fmt"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// EtcdLock is the reboot semaphore in etcd v3. Every change is a read-modify-write that
// commits only if the key's mod revision is still the one read (optimistic concurrency), so
// machines racing for the lock cannot both win.
type EtcdLock struct {
	Client *clientv3.Client
	Key    string // SemaphoreKey(group)
	ID     string // this machine's id (its machine-id)
}

// Get reads the semaphore (a missing key reads as the default).
func (l *EtcdLock) Get(ctx context.Context) (*Semaphore, error) {
	s, _, err := l.get(ctx)
	return s, err
}

func (l *EtcdLock) get(ctx context.Context) (*Semaphore, int64, error) {
	resp, err := l.Client.Get(ctx, l.Key)
	if err != nil {
		return nil, 0, fmt.Errorf("reboot semaphore %s: %w", l.Key, err)
	}
	if len(resp.Kvs) == 0 {
		return NewSemaphore(), 0, nil
	}
	s, err := ParseSemaphore(resp.Kvs[0].Value)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", l.Key, err)
	}
	return s, resp.Kvs[0].ModRevision, nil
}

// update applies f to the semaphore and writes it back atomically, retrying on conflicts.
func (l *EtcdLock) update(ctx context.Context, f func(*Semaphore) error) error {
	for {
		s, rev, err := l.get(ctx)
		if err != nil {
			return err
		}
		if err := f(s); err != nil {
			return err
		}
		cmp := clientv3.Compare(clientv3.ModRevision(l.Key), "=", rev)
		if rev == 0 {
			cmp = clientv3.Compare(clientv3.CreateRevision(l.Key), "=", 0)
		}
		resp, err := l.Client.Txn(ctx).If(cmp).Then(clientv3.OpPut(l.Key, string(s.Marshal()))).Commit()
		if err != nil {
			return fmt.Errorf("reboot semaphore %s: %w", l.Key, err)
		}
		if resp.Succeeded {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// Someone else changed it between our read and write: read again.
	}
}

// Lock takes the reboot lock for ID; ErrNoSemaphore if it is taken.
func (l *EtcdLock) Lock(ctx context.Context) error {
	return l.update(ctx, func(s *Semaphore) error { return s.Lock(l.ID) })
}

// Unlock releases ID's hold; releasing a lock not held is not an error here.
func (l *EtcdLock) Unlock(ctx context.Context) error {
	err := l.update(ctx, func(s *Semaphore) error { return s.Unlock(l.ID) })
	if errors.Is(err, ErrNotHeld) {
		return nil
	}
	return err
}

// UnlockHolder releases another machine's hold (an operator's recovery for a holder that
// never came back).
func (l *EtcdLock) UnlockHolder(ctx context.Context, id string) error {
	return l.update(ctx, func(s *Semaphore) error { return s.Unlock(id) })
}

// LockHolder takes the lock for another id (locksmithctl lock ID).
func (l *EtcdLock) LockHolder(ctx context.Context, id string) error {
	return l.update(ctx, func(s *Semaphore) error { return s.Lock(id) })
}

// SetMax changes how many machines may reboot at once.
func (l *EtcdLock) SetMax(ctx context.Context, max int) error {
	return l.update(ctx, func(s *Semaphore) error { return s.SetMax(max) })
}

// Held reports whether ID holds the lock.
func (l *EtcdLock) Held(ctx context.Context) (bool, error) {
	s, err := l.Get(ctx)
	if err != nil {
		return false, err
	}
	if slices.Contains(s.Holders, l.ID) {
		return true, nil
	}
	return false, nil
}
