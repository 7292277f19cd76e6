package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/runtime/fetch"
	"github.com/cairn-os/cairn/runtime/fetch/insecure"
	"github.com/cairn-os/cairn/runtime/image"
	"github.com/cairn-os/cairn/runtime/stage1"
	"github.com/cairn-os/cairn/runtime/store"
)

// The ImageService over rkt's store. An image's CRI ID is its store ID: an OCI image's
// manifest digest (sha256:...), an ACI's sha512-... . Its repo tags are the references it
// was fetched as, its repo digests each repository's name with the manifest digest.

// imageRefs are the store references a CRI image reference may mean, most specific first:
// an ID as it is; a registry reference normalized as `rkt fetch docker://` stores it
// (busybox is docker.io/library/busybox:latest), then as given (an appc name).
func imageRefs(ref string) []string {
	if strings.HasPrefix(ref, "sha256:") || strings.HasPrefix(ref, "sha512-") {
		return []string{ref}
	}
	out := []string{}
	if r, err := name.ParseReference(ref); err == nil {
		out = append(out, fetch.StoreName(r))
	}
	if !slices.Contains(out, ref) {
		out = append(out, ref)
	}
	// repo@sha256:... is a repo digest: the manifest digest is the image's ID, whatever
	// names it was fetched under.
	if _, d, ok := strings.Cut(ref, "@"); ok && strings.HasPrefix(d, "sha256:") {
		out = append(out, d)
	}
	return out
}

// PullImage fetches an image from its registry with the request's credentials, into the
// store (a manifest request only when its content is there already), and returns its ID.
func (s *Server) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalidf("no image to pull")
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, invalidf("image %q: %v", ref, err)
	}
	auth := authn.Anonymous
	if a := req.GetAuth(); a != nil {
		auth = authn.FromConfig(authn.AuthConfig{Username: a.GetUsername(), Password: a.GetPassword(), Auth: a.GetAuth(),
			IdentityToken: a.GetIdentityToken(), RegistryToken: a.GetRegistryToken()})
	}
	f := &fetch.Fetcher{
		Store: s.images, HTTP: s.http, PullPolicy: fetch.PullUpdate,
		// A registry image carries no appc signature; the CRI's trust is the registry's, and
		// so its setuid programs keep their bits, as containerd keeps them.
		Insecure:     insecure.Image,
		Privileged:   true,
		RegistryAuth: func(string) authn.Authenticator { return auth },
		TempDir:      filepath.Join(s.cfg.Dir, "tmp"),
		Log:          s.log,
	}
	img, err := f.Fetch(ctx, fetch.Request{Image: "docker://" + fetch.StoreName(r)})
	if err != nil {
		return nil, pullError(ref, err)
	}
	s.forgetFsUsage()
	s.log.Info("image pulled", "image", ref, "id", img.ID)
	return &runtimeapi.PullImageResponse{ImageRef: img.ID}, nil
}

// pullError gives a registry's refusal its code: no such image, or not allowed.
func pullError(ref string, err error) error {
	if te, ok := errors.AsType[*transport.Error](err); ok {
		switch te.StatusCode {
		case http.StatusNotFound:
			return status.Errorf(codes.NotFound, "pull %s: %v", ref, err)
		case http.StatusUnauthorized:
			return status.Errorf(codes.Unauthenticated, "pull %s: %v", ref, err)
		case http.StatusForbidden:
			return status.Errorf(codes.PermissionDenied, "pull %s: %v", ref, err)
		}
	}
	return fmt.Errorf("pull %s: %w", ref, err)
}

// ListImages lists the store's images, or those the filter's reference names.
func (s *Server) ListImages(ctx context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	if ref := req.GetFilter().GetImage().GetImage(); ref != "" {
		img, err := s.image(ctx, ref)
		if isNotFound(err) {
			return &runtimeapi.ListImagesResponse{}, nil
		}
		if err != nil {
			return nil, err
		}
		return &runtimeapi.ListImagesResponse{Images: []*runtimeapi.Image{criImage(img)}}, nil
	}
	imgs, err := s.images.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*runtimeapi.Image, 0, len(imgs))
	for _, img := range imgs {
		out = append(out, criImage(img))
	}
	return &runtimeapi.ListImagesResponse{Images: out}, nil
}

// criImage is an image as the CRI lists it.
func criImage(img *image.Image) *runtimeapi.Image {
	out := &runtimeapi.Image{Id: img.ID, Size: uint64(max(img.Size, 0)), Spec: &runtimeapi.ImageSpec{Image: img.ID}}
	out.RepoTags, out.RepoDigests = repoNames(img)
	if img.OCIConfig != nil {
		u, _, _ := strings.Cut(img.OCIConfig.Config.User, ":")
		if uid, err := strconv.ParseInt(u, 10, 64); err == nil {
			out.Uid = &runtimeapi.Int64Value{Value: uid}
		} else {
			out.Username = u
		}
	}
	return out
}

// repoNames are an image's repo tags (every reference it was fetched as by tag) and repo
// digests (each of those repositories with its manifest digest), as containerd lists them.
func repoNames(img *image.Image) (tags, digests []string) {
	if img.Format == image.ACI {
		return []string{img.NameVersion()}, nil
	}
	for _, n := range append([]string{img.Name}, img.Aliases...) {
		r, err := name.ParseReference(n)
		if err != nil {
			continue
		}
		reg := r.Context().RegistryStr()
		if reg == name.DefaultRegistry {
			reg = "docker.io" // as rkt fetch stores it, and containerd lists it
		}
		repo := reg + "/" + r.Context().RepositoryStr()
		if _, ok := r.(name.Tag); ok && !slices.Contains(tags, n) {
			tags = append(tags, n)
		}
		if d := repo + "@" + img.ID; strings.HasPrefix(img.ID, "sha256:") && !slices.Contains(digests, d) {
			digests = append(digests, d)
		}
	}
	return tags, digests
}

// ImageStatus says whether an image is there, and what it is; an image that is not is a
// response with none, not an error.
func (s *Server) ImageStatus(ctx context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalidf("no image named")
	}
	img, err := s.image(ctx, ref)
	if isNotFound(err) {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	resp := &runtimeapi.ImageStatusResponse{Image: criImage(img)}
	if req.GetVerbose() {
		info := map[string]any{"id": img.ID, "format": img.Format, "name": img.Name, "aliases": img.Aliases,
			"labels": img.Labels, "source": img.Source, "imported": img.ImportTime, "lastUsed": img.LastUsed,
			"layers": img.Layers, "trusted": img.Trusted}
		if img.OCIConfig != nil {
			info["config"] = img.OCIConfig
		}
		if img.ACIManifest != nil {
			info["manifest"] = img.ACIManifest
		}
		b, err := json.Marshal(info)
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}

// RemoveImage removes an image from the store, and the layers no other image uses. An
// image that is not there is removed already; one that a pod still uses is kept
// (FailedPrecondition), as rkt image rm's store would have its trees under the pod's apps.
func (s *Server) RemoveImage(ctx context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalidf("no image named")
	}
	img, err := s.image(ctx, ref)
	if isNotFound(err) {
		return &runtimeapi.RemoveImageResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	inUse, err := stage1.ImagesInUse(s.pods.Dir)
	if err != nil {
		return nil, err
	}
	if slices.Contains(inUse, img.ID) {
		return nil, preconditionf("image %s (%s) is used by a pod's app; remove its containers first", ref, img.ID)
	}
	if err := s.images.Remove(ctx, img.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("remove image %s: %w", ref, err)
	}
	s.forgetFsUsage()
	s.log.Info("image removed", "image", ref, "id", img.ID)
	return &runtimeapi.RemoveImageResponse{}, nil
}

// fsUsageAge is how long a measure of the store's usage is reused: kubelet asks every
// few seconds, and a walk of a large store is not free. A pull or removal drops it.
const fsUsageAge = 30 * time.Second

// ImageFsInfo says how much of its filesystem the image store uses: bytes and inodes.
func (s *Server) ImageFsInfo(ctx context.Context, req *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	s.fsMu.Lock()
	defer s.fsMu.Unlock()
	if u := s.fsUsage; u == nil || time.Since(time.Unix(0, u.Timestamp)) > fsUsageAge {
		dir := s.images.Dir()
		bytes, inodes, err := usage(ctx, dir)
		if err != nil {
			return nil, fmt.Errorf("image store usage: %w", err)
		}
		s.fsUsage = &runtimeapi.FilesystemUsage{Timestamp: time.Now().UnixNano(), FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: dir},
			UsedBytes: &runtimeapi.UInt64Value{Value: bytes}, InodesUsed: &runtimeapi.UInt64Value{Value: inodes}}
	}
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{s.fsUsage}}, nil
}

// forgetFsUsage drops the measure of the store's usage after a pull or a removal changed it.
func (s *Server) forgetFsUsage() {
	s.fsMu.Lock()
	s.fsUsage = nil
	s.fsMu.Unlock()
}

// usage is what the files under dir take: bytes (blocks) and inodes, each counted once.
func usage(ctx context.Context, dir string) (bytes, inodes uint64, err error) {
	seen := map[uint64]bool{}
	err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		ino, blocks, ok := statBlocks(p)
		if !ok || seen[ino] {
			return nil
		}
		seen[ino] = true
		inodes++
		bytes += blocks * 512
		return nil
	})
	return bytes, inodes, err
}
