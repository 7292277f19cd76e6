package cri

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	securejoin "github.com/cyphar/filepath-securejoin"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/store"
)

// imageVolumesDir is where a pod's directory holds its containers' image volumes:
// image-volumes/<container ID>/<mount index>.
const imageVolumesDir = "image-volumes"

// imageVolumes makes each image volume of cfg (a mount of an image kubelet has pulled, by
// its ID) a read-only host mount: the image's root file system is rendered into the pod's
// directory, and the mount binds it, or its image_sub_path, as any host path. A copy rather
// than an overlay of the store's layers: nothing stays mounted to be undone, it goes with
// the container or the pod, and the image can be removed while a container uses it. cfg is
// returned as it is when it has no image volume, else a copy with the mounts replaced.
func (s *Server) imageVolumes(ctx context.Context, p *pod.Pod, id string, cfg *runtimeapi.ContainerConfig) (*runtimeapi.ContainerConfig, error) {
	var out *runtimeapi.ContainerConfig
	for i, m := range cfg.GetMounts() {
		ref := m.GetImage().GetImage()
		if ref == "" {
			if m.GetImageSubPath() != "" {
				return nil, invalidf("mount %s: an image sub path without an image", m.GetContainerPath())
			}
			continue
		}
		switch {
		case m.GetHostPath() != "":
			return nil, invalidf("mount %s: both an image and a host path", m.GetContainerPath())
		case !m.GetReadonly():
			// An image volume is read-only by definition; kubelet asks for it so.
			return nil, invalidf("mount %s: an image volume must be read-only", m.GetContainerPath())
		}
		sub := m.GetImageSubPath()
		if sub != "" && !filepath.IsLocal(sub) {
			return nil, invalidf("mount %s: image sub path %q: want a path inside the image", m.GetContainerPath(), sub)
		}
		img, err := s.image(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("mount %s: %w", m.GetContainerPath(), err)
		}
		dir := p.File(imageVolumesDir, id, strconv.Itoa(i))
		if err := s.images.Render(ctx, img.ID, dir, store.RenderOptions{Dependencies: true, RootfsOnly: true}); err != nil {
			return nil, fmt.Errorf("mount %s: image %s: %w", m.GetContainerPath(), ref, err)
		}
		host := dir
		if sub != "" {
			// Symbolic links in the image resolve inside its tree, never on the host.
			if host, err = securejoin.SecureJoin(dir, sub); err != nil {
				return nil, fmt.Errorf("mount %s: image sub path %q: %w", m.GetContainerPath(), sub, err)
			}
			if _, err := os.Lstat(host); err != nil {
				return nil, invalidf("mount %s: image %s has no %s", m.GetContainerPath(), ref, sub)
			}
		}
		if out == nil {
			out = proto.Clone(cfg).(*runtimeapi.ContainerConfig)
		}
		out.Mounts[i] = &runtimeapi.Mount{
			ContainerPath: m.GetContainerPath(), HostPath: host, Readonly: true,
			Propagation: runtimeapi.MountPropagation_PROPAGATION_PRIVATE,
		}
	}
	if out == nil {
		return cfg, nil
	}
	return out, nil
}
