package images

import (
	"context"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Push uploads imgs, keyed by references under Registry as Build makes them, to registry
// (host:port, plain HTTP). Each image goes there under two names, so that both ways of
// pointing kubeadm at it find it: its path under Registry (registry/coredns/coredns:v1.14.6),
// for a runtime that mirrors registry.k8s.io there, and its last path element
// (registry/coredns:v1.14.6), which is what kubeadm pulls when its imageRepository is
// registry. A line per name goes to progress.
func Push(ctx context.Context, imgs map[string]v1.Image, registry string, progress io.Writer) error {
	for _, ref := range slices.Sorted(maps.Keys(imgs)) {
		names, err := pushNames(ref, registry)
		if err != nil {
			return err
		}
		img := imgs[ref]
		for _, n := range names {
			dst, err := name.ParseReference(n, name.Insecure)
			if err != nil {
				return fmt.Errorf("image %s: %w", ref, err)
			}
			start := time.Now()
			if err := remote.Write(dst, img, remote.WithContext(ctx)); err != nil {
				return fmt.Errorf("push %s as %s: %w", ref, n, err)
			}
			d, err := img.Digest()
			if err != nil {
				return fmt.Errorf("image %s: %w", ref, err)
			}
			fmt.Fprintf(progress, "pushed %s@%s in %s\n", n, d, time.Since(start).Round(time.Millisecond))
		}
	}
	return nil
}

// pushNames are the names ref is pushed as to registry; see Push.
func pushNames(ref, registry string) ([]string, error) {
	rest, ok := strings.CutPrefix(ref, Registry+"/")
	if !ok || registry == "" {
		return nil, fmt.Errorf("image %s: not under %s, cannot name it in %q", ref, Registry, registry)
	}
	names := []string{registry + "/" + rest}
	if short := path.Base(rest); short != rest {
		names = append(names, registry+"/"+short)
	}
	return names, nil
}
