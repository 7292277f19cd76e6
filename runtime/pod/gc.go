package pod

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// Cleaner undoes what a stage1 left behind outside the pod directory (mounts, cgroups,
// namespaces, processes). It is called with the pod locked exclusively and must be idempotent:
// a pod whose rkt run was killed may have any subset of it left.
type Cleaner func(ctx context.Context, p *Pod) error

// GCOptions say what one gc pass collects.
type GCOptions struct {
	// GracePeriod is how long a pod stays in exited-garbage, counted from its mark, before
	// it is removed; abandoned embryos older than it are removed too.
	GracePeriod time.Duration
	// ExpirePrepared is how long a prepared pod that never ran is kept (rkt's default is a
	// day); zero collects every prepared pod, a negative value none.
	ExpirePrepared time.Duration
	// MarkOnly moves exited pods and aborted prepares to the garbage and stops there:
	// nothing is removed and no prepared pod expires (rkt gc --mark-only).
	MarkOnly bool
	// Clean undoes what a stage1 left outside a pod directory. It runs before a pod is
	// removed, and before an orphaned pod (see Pod.Orphaned) is marked, to kill its apps.
	Clean Cleaner
}

// GCResult says what one gc pass did, pod by pod.
type GCResult struct {
	Marked  []string // moved run -> exited-garbage, or prepare -> garbage
	Expired []string // prepared pods older than ExpirePrepared, moved to garbage
	Kept    []string // in exited-garbage, within the grace period
	// Owned are garbage pods that a running owner (a CRI server) keeps: it removes them.
	Owned   []string
	Removed []string
	Errors  []error
}

// GC runs rkt's two-pass garbage collection. Mark: exited pods in run/ move to exited-garbage/,
// aborted prepares in prepare/ move to garbage/; an orphaned pod (its supervisor killed, its
// apps alive) is cleaned first, which kills its apps, and then marked like an exited one.
// Expire: prepared pods older than ExpirePrepared move to garbage/. Sweep: pods in
// exited-garbage/ whose grace period (since they were marked) is over, and every pod in
// garbage/, are locked exclusively, cleaned and deleted. Pods locked by someone else, and
// pods whose owner runs (AnnotationOwner), are skipped and left for the next pass.
func (s *Store) GC(ctx context.Context, opts GCOptions) (GCResult, error) {
	var res GCResult
	pods, err := s.List()
	if err != nil {
		return res, err
	}
	now := time.Now()
	for _, p := range pods {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		switch p.Phase {
		case PhaseRun, PhasePrepare:
			to := PhaseExitedGarbage
			if p.Phase == PhasePrepare {
				to = PhaseGarbage
			}
			if err := p.Lock(true, false); err != nil {
				continue // running or preparing
			}
			if p.Orphaned() && opts.Clean != nil {
				// Marked while its apps run, it would say "exited garbage" of a pod that
				// runs until the sweep, a grace period later.
				if err := opts.Clean(ctx, p); err != nil {
					p.Close()
					res.Errors = append(res.Errors, fmt.Errorf("pod %s: stop orphaned apps: %w", p.UUID, err))
					continue
				}
			}
			err := p.move(to)
			p.Close()
			if err == nil {
				res.Marked = append(res.Marked, p.UUID)
			} else if !errors.Is(err, ErrNotFound) {
				res.Errors = append(res.Errors, err)
			}
		case PhaseEmbryo:
			if opts.MarkOnly {
				continue
			}
			// An embryo is locked from just after its mkdir until it moves to prepare; one
			// that is unlocked and older than the grace period was abandoned in between.
			// (Removing a locked one would pull the directory from under its creator.)
			if ct, err := p.ChangeTime(); err == nil && now.Sub(ct) > opts.GracePeriod {
				if err := p.Lock(true, false); err != nil {
					continue
				}
				if err := os.Remove(p.Path()); err == nil {
					res.Removed = append(res.Removed, p.UUID)
				}
				p.Close()
			}
		case PhasePrepared:
			if opts.MarkOnly || opts.ExpirePrepared < 0 {
				continue
			}
			// The rename into prepared/ set the ctime; nothing writes into the directory
			// until the pod runs.
			if ct, err := p.ChangeTime(); err != nil || now.Sub(ct) < opts.ExpirePrepared {
				continue
			}
			if err := p.Lock(true, false); err != nil {
				continue // rkt run-prepared is starting it
			}
			err := p.move(PhaseGarbage)
			p.Close()
			if err == nil {
				res.Expired = append(res.Expired, p.UUID)
			} else if !errors.Is(err, ErrNotFound) {
				res.Errors = append(res.Errors, err)
			}
		}
	}
	if opts.MarkOnly {
		return res, nil
	}
	pods, err = s.List()
	if err != nil {
		return res, err
	}
	// The first pass's renames changed those pods' ctimes: measure their grace from now.
	now = time.Now()
	for _, p := range pods {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		if p.Phase != PhaseExitedGarbage && p.Phase != PhaseGarbage {
			continue
		}
		if p.Phase == PhaseExitedGarbage {
			ct, err := p.ChangeTime()
			if err != nil {
				continue
			}
			if now.Sub(ct) < opts.GracePeriod {
				res.Kept = append(res.Kept, p.UUID)
				continue
			}
		}
		if p.owned() {
			res.Owned = append(res.Owned, p.UUID)
			continue
		}
		if err := p.Lock(true, false); err != nil {
			continue
		}
		err := p.destroy(ctx, opts.Clean)
		p.Close()
		if err != nil {
			res.Errors = append(res.Errors, err)
			continue
		}
		res.Removed = append(res.Removed, p.UUID)
	}
	return res, nil
}

// Remove deletes a pod that is not running (rkt rm): exited pods go through exited-garbage,
// prepared and aborted ones through garbage, and are cleaned and deleted at once.
func (s *Store) Remove(ctx context.Context, uuid string, clean Cleaner) error {
	p, err := s.Get(uuid)
	if err != nil {
		return err
	}
	if p.Phase == PhaseEmbryo {
		return fmt.Errorf("pod %s: %w: it is an embryo", p.UUID, ErrState)
	}
	if err := p.Lock(true, false); err != nil {
		if errors.Is(err, ErrLocked) {
			return fmt.Errorf("pod %s: %w: it is %s; stop it first (rkt stop %s)", p.UUID, ErrState, p.State(), p.UUID)
		}
		return err
	}
	defer p.Close()
	if p.Orphaned() {
		return fmt.Errorf("pod %s: %w: it is running (its rkt run is gone, its apps are not); stop it first (rkt stop %s)", p.UUID, ErrState, p.UUID)
	}
	switch p.Phase {
	case PhaseRun:
		err = p.move(PhaseExitedGarbage)
	case PhasePrepare, PhasePrepared:
		err = p.move(PhaseGarbage)
	}
	if err != nil {
		return err
	}
	return p.destroy(ctx, clean)
}

// destroy cleans a locked garbage pod and removes its directory. The cleaner runs first so that
// nothing mounted under the directory is deleted through.
func (p *Pod) destroy(ctx context.Context, clean Cleaner) error {
	if clean != nil {
		if err := clean(ctx, p); err != nil {
			return fmt.Errorf("pod %s: clean: %w", p.UUID, err)
		}
	}
	if err := os.RemoveAll(p.Path()); err != nil {
		return fmt.Errorf("pod %s: remove: %w", p.UUID, err)
	}
	return nil
}
