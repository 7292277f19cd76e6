package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-os/cairn/runtime/aci"
	"github.com/cairn-os/cairn/runtime/fetch/discovery"
	"github.com/cairn-os/cairn/runtime/fetch/insecure"
	"github.com/cairn-os/cairn/runtime/image"
	"github.com/cairn-os/cairn/runtime/oci"
	"github.com/cairn-os/cairn/runtime/store"
	"github.com/cairn-os/cairn/runtime/trust"
)

// fetchPath imports a local file: an ACI after checking its signature, an OCI layout, OCI
// archive or docker-archive only with the image check off.
func (f *Fetcher) fetchPath(ctx context.Context, req Request) (*image.Image, error) {
	path, err := filepath.Abs(strings.TrimPrefix(req.Image, "file://"))
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", req.Image, err)
	}
	if f.policy() == PullNever {
		img, err := f.bySource(ctx, path)
		if err != nil {
			return nil, neverErr("image "+req.Image, err)
		}
		return img, nil
	}
	kind, err := oci.Sniff(path)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", req.Image, err)
	}
	if kind != oci.ACI {
		if !f.Insecure.Has(insecure.Image) {
			return nil, unsignedErr(req.Image, string(kind))
		}
		f.log().Warn("image signature verification is disabled (--insecure-options=image)", "image", req.Image)
		return f.Store.ImportFile(ctx, path, store.ImportOptions{Source: path, Limits: f.Limits})
	}
	var sig []byte
	if !f.Insecure.Has(insecure.Image) {
		sigPath := req.Signature
		if sigPath == "" {
			sigPath = path + ".asc"
		}
		if sig, err = f.readSignature(ctx, sigPath); err != nil {
			return nil, fmt.Errorf("image %s: %w", req.Image, err)
		}
	}
	src, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", req.Image, err)
	}
	defer src.Close()
	if f.Insecure.Has(insecure.Image) {
		return f.importACI(ctx, src, nil, path, "")
	}
	// Verify and import one private copy, so that the bytes checked are the bytes imported
	// even if someone rewrites the file meanwhile.
	tmp, err := f.tempFile()
	if err != nil {
		return nil, err
	}
	defer tmp.Close()
	if _, err := io.Copy(tmp, src); err != nil {
		return nil, fmt.Errorf("image %s: %w", req.Image, err)
	}
	return f.importACI(ctx, tmp, sig, path, "")
}

func unsignedErr(what, kind string) error {
	return fmt.Errorf("image %s is %s, which carries no appc signature for rkt to verify: %w=image",
		what, describe(kind), ErrInsecure)
}

func describe(kind string) string {
	switch kind {
	case string(oci.Layout):
		return "an OCI image layout"
	case string(oci.Archive):
		return "an OCI archive"
	case string(oci.DockerArchive):
		return "a docker-archive"
	}
	return "a " + kind
}

// readSignature reads a detached signature from a local path or an http(s) URL.
func (f *Fetcher) readSignature(ctx context.Context, where string) ([]byte, error) {
	if strings.HasPrefix(where, "https://") || strings.HasPrefix(where, "http://") {
		var buf limitedBuffer
		if _, err := f.download(ctx, where, "signature", &buf, trust.MaxSignatureSize, f.allowHTTP(), nil); err != nil {
			if errors.Is(err, ErrHTTPStatus) {
				return nil, fmt.Errorf("%w: %v; pass one with --signature or skip the check with --insecure-options=image", ErrNoSignature, err)
			}
			return nil, err
		}
		return buf.b, nil
	}
	fh, err := os.Open(where)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist; pass one with --signature or skip the check with --insecure-options=image", ErrNoSignature, where)
	}
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, trust.MaxSignatureSize+1))
	if err != nil {
		return nil, fmt.Errorf("signature %s: %w", where, err)
	}
	return b, nil
}

type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) { l.b = append(l.b, p...); return len(p), nil }

// importACI checks the ACI in file against the keys trusted for the name in its manifest
// (unless the image check is off) and imports it. When want is set, the manifest's name must
// be want: discovery for one name must not deliver another.
func (f *Fetcher) importACI(ctx context.Context, file *os.File, sig []byte, source, want string) (*image.Image, error) {
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	zr, _, err := aci.Decompress(file)
	if err != nil {
		return nil, fmt.Errorf("ACI %s: %w", source, err)
	}
	m, err := aci.ManifestFromTar(zr)
	zr.Close()
	if err != nil {
		return nil, fmt.Errorf("ACI %s: %w", source, err)
	}
	name := m.Name.String()
	if err := discovery.CheckName(name); err != nil {
		return nil, fmt.Errorf("ACI %s: image name %q: %w", source, name, err)
	}
	if want != "" && name != want {
		return nil, fmt.Errorf("ACI %s: %w: its manifest names %q, not %q", source, ErrNameMismatch, name, want)
	}
	opts := store.ImportOptions{Name: name, Source: source, Limits: f.Limits}
	if f.Insecure.Has(insecure.Image) {
		f.log().Warn("image signature verification is disabled (--insecure-options=image)", "image", name)
	} else {
		if _, err := file.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		signer, err := f.Trust.Verify(name, file, sig)
		if err != nil {
			return nil, fmt.Errorf("ACI %s: %w", source, err)
		}
		f.log().Info("signature verified", "image", name, "key", signer.Fingerprint, "signer", strings.Join(signer.UserIDs, ", "))
		opts.Trusted, opts.Signer = true, signer.Fingerprint
	}
	if err := f.fetchDependencies(ctx, m); err != nil {
		return nil, err
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return f.Store.ImportACI(ctx, file, opts)
}

// fetchURL downloads an ACI and its signature from http(s).
func (f *Fetcher) fetchURL(ctx context.Context, req Request) (*image.Image, error) {
	switch f.policy() {
	case PullNever:
		img, err := f.bySource(ctx, req.Image)
		if err != nil {
			return nil, neverErr("image "+req.Image, err)
		}
		return img, nil
	case PullNew:
		if img, err := f.bySource(ctx, req.Image); err == nil {
			return img, nil
		}
	}
	sigURL := req.Signature
	if sigURL == "" {
		sigURL = req.Image + ".asc"
	}
	return f.fetchACI(ctx, req.Image, sigURL, "")
}

// fetchACI downloads an ACI (and its signature, unless the image check is off) into a
// private file and imports it. When the URL gave an image before, the request is conditional
// and a 304 answer returns the stored image.
func (f *Fetcher) fetchACI(ctx context.Context, aciURL, sigURL, want string) (*image.Image, error) {
	entry, stored := f.cached(ctx, aciURL)
	// Without a stored copy, fetch the small signature first: no point downloading an image
	// that cannot be checked.
	var sig []byte
	getSig := func() error {
		if f.Insecure.Has(insecure.Image) || sig != nil {
			return nil
		}
		var err error
		if sig, err = f.readSignature(ctx, sigURL); err != nil {
			return fmt.Errorf("image %s: %w", aciURL, err)
		}
		return nil
	}
	var cond *validators
	if entry != nil {
		cond = &entry.validators
	} else if err := getSig(); err != nil {
		return nil, err
	}
	tmp, err := f.tempFile()
	if err != nil {
		return nil, err
	}
	defer tmp.Close()
	dl, err := f.download(ctx, aciURL, "Downloading ACI", tmp, 0, f.allowHTTP(), cond)
	if err != nil {
		return nil, err
	}
	if dl.notModified {
		f.log().Info("image not modified since it was fetched", "url", aciURL, "id", stored.ID)
		return stored, nil
	}
	if err := getSig(); err != nil {
		return nil, err
	}
	img, err := f.importACI(ctx, tmp, sig, aciURL, want)
	if err != nil {
		return nil, err
	}
	f.remember(aciURL, img.ID, dl.validators)
	return img, nil
}

// fetchName finds an appc name in the store or by discovery.
func (f *Fetcher) fetchName(ctx context.Context, req Request) (*image.Image, error) {
	app, err := discovery.ParseApp(req.Image)
	if err != nil {
		return nil, err
	}
	if f.policy() != PullUpdate {
		ref := app.Name
		if v := app.Labels["version"]; v != "latest" {
			ref += ":" + v
		}
		img, err := f.Store.Get(ctx, ref)
		if err == nil {
			return img, nil
		}
		if f.policy() == PullNever {
			return nil, neverErr("image "+req.Image, err)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	res, err := f.discoverer().Discover(ctx, app)
	if err != nil {
		return nil, err
	}
	f.log().Debug("discovered", "image", req.Image, "page", res.Page, "endpoints", res.Endpoints)
	if !f.Insecure.Has(insecure.Image) && f.TrustKeysFromHTTPS {
		if err := f.trustAnnouncedKeys(ctx, app, res.PublicKeys); err != nil {
			return nil, err
		}
	}
	var errs []error
	for _, ep := range res.Endpoints {
		sigURL := ep.ASC
		if req.Signature != "" {
			sigURL = req.Signature
		}
		img, err := f.fetchACI(ctx, ep.ACI, sigURL, app.Name)
		if err == nil {
			return img, nil
		}
		// A failed check is final; only an unreachable endpoint sends us to the next.
		if !errors.Is(err, ErrHTTPStatus) {
			return nil, err
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("image %s: no discovered endpoint worked: %w", req.Image, errors.Join(errs...))
}

func (f *Fetcher) discoverer() *discovery.Client {
	return &discovery.Client{
		HTTP:           f.HTTP,
		AllowHTTP:      f.allowHTTP(),
		AllowOffDomain: f.AllowOffDomain,
		Header:         f.Header,
		Log:            f.log(),
	}
}
