package fetch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/appc/spec/schema"
)

// MaxDependencyDepth bounds a chain of ACI dependencies (and so ends a cycle).
const MaxDependencyDepth = 16

type chainKey struct{}

// cycleError is a dependency chain that comes back to an image already being fetched.
type cycleError struct{ chain []string }

func (e *cycleError) Error() string {
	return "dependency cycle: " + strings.Join(e.chain, " -> ")
}

// fetchDependencies brings an ACI's dependencies into the store before the ACI itself, as
// rkt did, so that the store can stack them under it. A dependency is found like any appc
// name (store, then discovery) and checked with the same trust rules; when the manifest pins
// its image ID, the fetched image must have it.
func (f *Fetcher) fetchDependencies(ctx context.Context, m *schema.ImageManifest) error {
	if len(m.Dependencies) == 0 {
		return nil
	}
	chain, _ := ctx.Value(chainKey{}).([]string)
	chain = append(slices.Clip(chain), m.Name.String())
	for _, n := range chain[:len(chain)-1] {
		if n == m.Name.String() {
			return &cycleError{chain: chain}
		}
	}
	if len(chain) > MaxDependencyDepth {
		return fmt.Errorf("image %s: dependencies nested deeper than %d", chain[0], MaxDependencyDepth)
	}
	ctx = context.WithValue(ctx, chainKey{}, chain)
	sub := *f
	if sub.PullPolicy != PullNever {
		sub.PullPolicy = PullNew
	}
	for _, d := range m.Dependencies {
		if d.ImageID != nil {
			if img, err := f.Store.Get(ctx, d.ImageID.String()); err == nil && img.Name == d.ImageName.String() {
				continue
			}
		}
		arg := d.ImageName.String()
		for _, l := range d.Labels {
			arg += "," + l.Name.String() + "=" + l.Value
		}
		img, err := sub.fetchName(ctx, Request{Image: arg})
		if cycle, ok := errors.AsType[*cycleError](err); ok {
			return cycle // once, not wrapped at every level of the loop
		}
		if err != nil {
			return fmt.Errorf("image %s: dependency %s: %w", m.Name, arg, err)
		}
		if d.ImageID != nil && !strings.HasPrefix(img.ID, d.ImageID.String()) {
			return fmt.Errorf("image %s: dependency %s: %w: got image %s, the manifest pins %s",
				m.Name, arg, ErrNameMismatch, img.ID, d.ImageID)
		}
	}
	return nil
}
