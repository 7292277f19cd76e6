package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-os/cairn/internal/atomicfile"
)

// Files the engine keeps in the state directory, beside apply's.
const (
	// AttemptFile records an update attempt whose end the server has not heard yet.
	AttemptFile = "attempt.json"
	// AlephFile holds the version the machine was first installed with.
	AlephFile = "aleph-version"
)

// attempt is the record of an update attempt, from its first event to the event that ends it.
type attempt struct {
	Version string `json:"version"`
	// Canceled: the applied update was undone on the machine (ResetStatus).
	Canceled bool `json:"canceled,omitempty"`
}

func writeAttempt(dir string, a attempt) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("update state %s: %w", dir, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, AttemptFile), b, 0o600); err != nil {
		return fmt.Errorf("attempt record: %w", err)
	}
	return nil
}

// readAttempt returns the attempt record in dir, or nil if there is none.
func readAttempt(dir string) (*attempt, error) {
	p := filepath.Join(dir, AttemptFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var a attempt
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &a, nil
}

func removeAttempt(dir string) error {
	if err := os.Remove(filepath.Join(dir, AttemptFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// AlephVersion returns the version this machine was first installed with, as Flatcar's
// alephversion: what the state directory recorded at the engine's first start, or running,
// which it records now (once: later versions never overwrite it).
func AlephVersion(dir, running string) (string, error) {
	p := filepath.Join(dir, AlephFile)
	b, err := os.ReadFile(p)
	if err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("aleph version: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("update state %s: %w", dir, err)
	}
	if err := atomicfile.WriteFile(p, []byte(running+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("aleph version: %w", err)
	}
	return running, nil
}
