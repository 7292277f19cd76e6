// Package locksmith coordinates reboots after updates, as CoreOS locksmith did: a counting
// semaphore in etcd (the same JSON value and key layout, updated with etcd v3 transactions
// that compare the key's mod revision), or a FleetLock server (Zincati's protocol), a reboot
// strategy (reboot, etcd-lock, fleetlock, kubernetes, off) and a reboot window. The
// kubernetes strategy's Locker, a Lease and the node's drain, is locksmith/kube.
package locksmith

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Key layout, as locksmith used it (etcd v2 paths, kept in v3 as key names).
const (
	KeyPrefix   = "/coreos.com/updateengine/rebootlock"
	SemaphoreOf = KeyPrefix + "/semaphore"
)

// SemaphoreKey is the key of the default semaphore, or of a group's.
func SemaphoreKey(group string) string {
	if group == "" {
		return SemaphoreOf
	}
	return KeyPrefix + "/groups/" + group + "/semaphore"
}

// Sentinel errors.
var (
	ErrNoSemaphore = errors.New("semaphore is at 0: another machine holds the reboot lock")
	ErrHeld        = errors.New("this machine already holds the reboot lock")
	ErrNotHeld     = errors.New("this machine does not hold the reboot lock")
)

// Semaphore is locksmith's value: how many more holders may enter, the maximum, and who holds it.
type Semaphore struct {
	Semaphore int      `json:"semaphore"`
	Max       int      `json:"max"`
	Holders   []string `json:"holders"`
}

// NewSemaphore is the value a missing key starts as: one reboot at a time.
func NewSemaphore() *Semaphore { return &Semaphore{Semaphore: 1, Max: 1, Holders: []string{}} }

// ParseSemaphore reads the JSON value, checking it is consistent.
func ParseSemaphore(b []byte) (*Semaphore, error) {
	var s Semaphore
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("reboot semaphore: %w", err)
	}
	if s.Max < 0 || s.Semaphore > s.Max || len(s.Holders) > s.Max+len(s.Holders) {
		return nil, fmt.Errorf("reboot semaphore: inconsistent value %s", b)
	}
	if s.Holders == nil {
		s.Holders = []string{}
	}
	return &s, nil
}

// Marshal encodes the value.
func (s *Semaphore) Marshal() []byte {
	b, _ := json.Marshal(s)
	return b
}

// Lock takes one unit for id.
func (s *Semaphore) Lock(id string) error {
	if slices.Contains(s.Holders, id) {
		return ErrHeld
	}
	if s.Semaphore <= 0 {
		return ErrNoSemaphore
	}
	s.Semaphore--
	s.Holders = append(s.Holders, id)
	return nil
}

// Unlock gives id's unit back.
func (s *Semaphore) Unlock(id string) error {
	i := slices.Index(s.Holders, id)
	if i < 0 {
		return ErrNotHeld
	}
	s.Holders = slices.Delete(s.Holders, i, i+1)
	s.Semaphore++
	return nil
}

// SetMax changes the maximum, keeping the current holders.
func (s *Semaphore) SetMax(max int) error {
	if max < 0 {
		return fmt.Errorf("reboot semaphore: max %d < 0", max)
	}
	s.Semaphore += max - s.Max
	s.Max = max
	return nil
}
