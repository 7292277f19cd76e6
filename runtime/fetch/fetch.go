// Package fetch resolves an image argument the way rkt does and brings the image into the
// store: a local file (ACI with its detached .asc, OCI layout, OCI archive, docker-archive),
// an http(s) URL of an ACI, an appc name found by meta discovery, or a docker:// reference
// from a registry. ACIs are checked against the trust store before anything is imported;
// unsigned formats are imported only when the user disabled the image check, as rkt required.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cairn-os/cairn/runtime/fetch/insecure"
	"github.com/cairn-os/cairn/runtime/fetch/pull"
	"github.com/cairn-os/cairn/runtime/image"
	"github.com/cairn-os/cairn/runtime/store"
	"github.com/cairn-os/cairn/runtime/trust"
)

// Store is what fetching needs of the image store (store.Store implements it).
type Store interface {
	Get(ctx context.Context, ref string) (*image.Image, error)
	List(ctx context.Context) ([]*image.Image, error)
	ImportACI(ctx context.Context, r io.Reader, opts store.ImportOptions) (*image.Image, error)
	ImportOCI(ctx context.Context, img v1.Image, opts store.ImportOptions) (*image.Image, error)
	ImportFile(ctx context.Context, path string, opts store.ImportOptions) (*image.Image, error)
}

// PullPolicy says when to go to the network, with rkt's values (package pull).
type PullPolicy = pull.Policy

const (
	PullNew    = pull.New    // use the stored image when there is one, else fetch
	PullUpdate = pull.Update // always ask the remote (a same-content image is not re-imported)
	PullNever  = pull.Never  // only the store
)

// ParsePullPolicy checks a --pull-policy value.
func ParsePullPolicy(s string) (PullPolicy, error) { return pull.Parse(s) }

// Sentinel errors, checked with errors.Is.
var (
	ErrInsecure       = errors.New("not allowed without --insecure-options")
	ErrNotInStore     = errors.New("image not in the store")
	ErrNoSignature    = errors.New("no signature")
	ErrTruncated      = errors.New("download truncated")
	ErrNameMismatch   = errors.New("image is not the one asked for")
	ErrUnknownArgType = errors.New("cannot tell what kind of image this is")
)

// Fetcher fetches images. Store, Trust and HTTP are required; the rest default to rkt's
// behaviour.
type Fetcher struct {
	Store Store
	Trust *trust.Store
	// HTTP is the client for https, http and registry requests. When Insecure has TLS, the
	// caller passes one that skips certificate verification (see InsecureTransport).
	HTTP     *http.Client
	Insecure insecure.Options
	// PullPolicy is PullNew when empty.
	PullPolicy PullPolicy
	// TrustKeysFromHTTPS trusts, without asking, the keys that discovery announces over https
	// for a name that has no trusted key yet.
	TrustKeysFromHTTPS bool
	// AllowOffDomain accepts discovery pages that point to other domains.
	AllowOffDomain bool
	// Header returns extra request headers (credentials) for an http(s) host.
	Header func(host string) http.Header
	// RegistryAuth returns credentials for a registry host (authn.Anonymous when none).
	RegistryAuth func(registry string) authn.Authenticator
	// Progress receives a progress bar for each download; nil keeps quiet.
	Progress io.Writer
	// TempDir holds downloads in flight (unlinked at once, so a killed fetch leaves
	// nothing); os.TempDir() when empty.
	TempDir string
	// CacheDir remembers, per ACI URL, the validators (ETag, Last-Modified) of the last
	// download, for conditional requests under --pull-policy=update; none when empty.
	CacheDir string
	// Limits bound what each imported image may extract to (the store's defaults where
	// zero).
	Limits store.Limits
	// Privileged keeps the setuid/setgid bits, device nodes and file capabilities of
	// registry images, which carry no signature (store.ImportOptions.Privileged): the CRI
	// trusts the registry, as containerd does; rkt drops them.
	Privileged bool
	Log        *slog.Logger
}

// Request is one image argument, with the detached signature given for it (--signature).
type Request struct {
	Image     string
	Signature string // a local path or URL; default: beside the image, with ".asc" appended
}

func (f *Fetcher) log() *slog.Logger {
	if f.Log != nil {
		return f.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (f *Fetcher) policy() PullPolicy {
	if f.PullPolicy == "" {
		return PullNew
	}
	return f.PullPolicy
}

// Kind is what an image argument names.
type Kind string

const (
	KindID     Kind = "id"     // an image ID in the store (sha512-..., sha256:...)
	KindPath   Kind = "path"   // a local file or OCI layout directory
	KindURL    Kind = "url"    // an http(s) URL of an ACI
	KindDocker Kind = "docker" // docker://registry/repo:tag
	KindName   Kind = "name"   // an appc name, found by discovery
)

// Classify tells what kind of image arg names, with rkt's heuristics: an explicit scheme
// decides; then an existing file (or directory) is a path; a colon means name:version; "./"
// or a .aci suffix means a path; anything else is a name.
func Classify(arg string) (Kind, error) {
	switch {
	case arg == "":
		return "", fmt.Errorf("%w: empty image argument", ErrUnknownArgType)
	case strings.HasPrefix(arg, "docker://"):
		return KindDocker, nil
	case image.IsID(arg):
		return KindID, nil
	}
	if u, err := url.Parse(arg); err == nil && u.Scheme != "" && strings.Contains(arg, "://") {
		switch u.Scheme {
		case "http", "https":
			return KindURL, nil
		case "file":
			return KindPath, nil
		}
		return "", fmt.Errorf("%w: %q: scheme %q not supported (http, https, docker, file)", ErrUnknownArgType, arg, u.Scheme)
	}
	if filepath.IsAbs(arg) {
		return KindPath, nil
	}
	if _, err := os.Stat(arg); err == nil {
		return KindPath, nil
	}
	switch {
	case strings.Contains(arg, ":"):
		return KindName, nil
	case strings.Contains(arg, "./"), filepath.Ext(arg) == ".aci":
		return KindPath, nil
	}
	return KindName, nil
}

// Fetch brings the image that req names into the store (or finds it there, as the pull
// policy says) and returns it.
func (f *Fetcher) Fetch(ctx context.Context, req Request) (*image.Image, error) {
	kind, err := Classify(req.Image)
	if err != nil {
		return nil, err
	}
	f.log().Debug("fetch", "image", req.Image, "kind", kind, "pull-policy", f.policy(), "insecure", f.Insecure)
	switch kind {
	case KindID:
		img, err := f.Store.Get(ctx, req.Image)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", req.Image, err)
		}
		return img, nil
	case KindPath:
		return f.fetchPath(ctx, req)
	case KindURL:
		return f.fetchURL(ctx, req)
	case KindDocker:
		return f.fetchDocker(ctx, req)
	default:
		return f.fetchName(ctx, req)
	}
}

// bySource finds the newest stored image imported from source.
func (f *Fetcher) bySource(ctx context.Context, source string) (*image.Image, error) {
	imgs, err := f.Store.List(ctx)
	if err != nil {
		return nil, err
	}
	var found *image.Image
	for _, img := range imgs {
		if img.Source == source && (found == nil || !img.ImportTime.Before(found.ImportTime)) {
			found = img
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: nothing fetched from %s yet", ErrNotInStore, source)
	}
	return found, nil
}

func neverErr(what string, err error) error {
	return fmt.Errorf("%s: %w (--pull-policy=never looks nowhere else)", what, err)
}
