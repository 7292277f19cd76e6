package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cairn-os/cairn/runtime/fetch/insecure"
	"github.com/cairn-os/cairn/runtime/image"
	"github.com/cairn-os/cairn/runtime/store"
)

// fetchDocker pulls an image from an OCI/Docker registry. Such images carry no appc
// signature, so, as rkt did, they are fetched only with --insecure-options=image.
func (f *Fetcher) fetchDocker(ctx context.Context, req Request) (*image.Image, error) {
	raw := strings.TrimPrefix(req.Image, "docker://")
	var opts []name.Option
	if f.allowHTTP() {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(raw, opts...)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", req.Image, err)
	}
	if !f.Insecure.Has(insecure.Image) {
		return nil, unsignedErr(req.Image, "Docker registry image")
	}
	storeName := StoreName(ref)
	if f.policy() != PullUpdate {
		img, err := f.Store.Get(ctx, storeName)
		if err == nil {
			return img, nil
		}
		if f.policy() == PullNever {
			return nil, neverErr("image "+req.Image, err)
		}
	}
	f.log().Warn("image signature verification is disabled (--insecure-options=image)", "image", req.Image)
	tr := http.DefaultTransport
	if f.HTTP != nil && f.HTTP.Transport != nil {
		tr = f.HTTP.Transport
	}
	auth := authn.Anonymous
	if f.RegistryAuth != nil {
		auth = f.RegistryAuth(ref.Context().RegistryStr())
	}
	img, err := remote.Image(ref,
		remote.WithContext(ctx),
		remote.WithTransport(tr),
		remote.WithAuth(auth),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}),
	)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", req.Image, hintTLS(err))
	}
	if f.Progress != nil {
		img = &progressImage{Image: img, w: f.Progress}
	}
	out, err := f.Store.ImportOCI(ctx, img, store.ImportOptions{Name: storeName, Source: req.Image, Limits: f.Limits, Privileged: f.Privileged})
	if err != nil {
		if isDigestError(err) {
			return nil, fmt.Errorf("image %s: the registry sent content that does not match its digest: %w", req.Image, err)
		}
		return nil, fmt.Errorf("image %s: %w", req.Image, hintTLS(err))
	}
	return out, nil
}

// StoreName is the name a registry image gets in the store: registry/repository:tag (or
// @digest), with Docker Hub spelled docker.io.
func StoreName(ref name.Reference) string {
	reg := ref.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	sep := ":"
	if _, ok := ref.(name.Digest); ok {
		sep = "@"
	}
	return reg + "/" + ref.Context().RepositoryStr() + sep + ref.Identifier()
}

func isDigestError(err error) bool {
	if errors.Is(err, store.ErrDigest) {
		return true
	}
	s := err.Error()
	// A damaged compressed layer fails to decompress before its digest can be compared.
	for _, m := range []string{"checksum", "digest mismatch", "does not match", "flate: corrupt", "gzip: invalid", "zstd: "} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}
