package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/appc/spec/schema/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/runtime/image"
	"github.com/cairn-os/cairn/runtime/stage0"
	"github.com/cairn-os/cairn/runtime/store"
)

// CreateContainer adds a container to a ready sandbox, created (its process waits before
// its exec until StartContainer), in these steps:
//
//  1. validate: the sandbox ready, the container's name free in it;
//  2. find its image in the store;
//  3. render its image volumes into the pod's directory (imageVolumes), map its config onto
//     an app of the pod (containerConfig), and make its mounts' host paths that do not
//     exist, as containerd does;
//  4. add the app through the sandbox's supervisor (stage0.AddApp): its root, volumes,
//     stdio, log and container;
//  5. record it in the index.
func (s *Server) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	cfg := req.GetConfig()
	if cfg == nil || cfg.GetMetadata() == nil {
		return nil, invalidf("a container config with its metadata is needed")
	}
	if cfg.GetImage().GetImage() == "" {
		return nil, invalidf("container %s: no image", cfg.GetMetadata().GetName())
	}
	sb, err := s.idx.sandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	p, err := s.sandboxPod(sb)
	if err != nil {
		return nil, err
	}
	if sandboxState(p) != runtimeapi.PodSandboxState_SANDBOX_READY {
		return nil, preconditionf("sandbox %s is not ready", sb.id)
	}
	id := randomID()
	name := containerName(cfg.GetMetadata(), sb)
	if err := s.idx.reserveContainer(name, id); err != nil {
		return nil, err
	}
	fail := func(err error) (*runtimeapi.CreateContainerResponse, error) {
		s.idx.releaseContainerName(name, id)
		os.RemoveAll(p.File(imageVolumesDir, id))
		return nil, fmt.Errorf("create container %s in sandbox %s: %w", cfg.GetMetadata().GetName(), sb.id, err)
	}
	img, err := s.image(ctx, cfg.GetImage().GetImage())
	if err != nil {
		return fail(err)
	}
	m, err := p.Manifest()
	if err != nil {
		return fail(err)
	}
	taken := map[string]bool{}
	for _, ra := range m.Apps {
		taken[string(ra.Name)] = true
	}
	app := appName(cfg.GetMetadata(), taken)
	if cfg, err = s.imageVolumes(ctx, p, id, cfg); err != nil {
		return fail(err)
	}
	acfg, c, err := containerConfig(cfg, sb, img, id, app, s.hostEnv())
	if err != nil {
		return fail(err)
	}
	if err := prepareHostPaths(c.mounts); err != nil {
		return fail(err)
	}
	if _, err := s.host.AddApp(ctx, sb.id, acfg); err != nil {
		return fail(err)
	}
	s.idx.addContainer(c)
	s.publish(c, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT)
	s.log.Debug("container created", "container", id, "sandbox", sb.id, "app", app)
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}

// appName is the container's app name in the pod: its CRI name as an appc name, with its
// attempt when that is not the first, and a number when the pod has an app of that name.
func appName(md *runtimeapi.ContainerMetadata, taken map[string]bool) string {
	base, err := types.SanitizeACName(md.GetName())
	if err != nil || base == "" {
		base = "container"
	}
	if md.GetAttempt() > 0 {
		base += "-" + strconv.FormatUint(uint64(md.GetAttempt()), 10)
	}
	name := base
	for i := 2; taken[name]; i++ {
		name = base + "-" + strconv.Itoa(i)
	}
	return name
}

// hostEnv is what the config mapping needs from this host.
func (s *Server) hostEnv() hostEnv {
	return hostEnv{readFile: readProfile, oomFloor: s.oomFloor, cgroup2: s.cgroup2, swap: s.swap}
}

// readProfile reads a seccomp profile, at most maxProfile bytes.
func readProfile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxProfile+1)) // SeccompProfile refuses more
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return b, nil
}

// image finds an image in the store by the CRI's reference: a normalized registry
// reference (busybox is docker.io/library/busybox:latest), an ID or its prefix, an appc name.
func (s *Server) image(ctx context.Context, ref string) (*image.Image, error) {
	var first error
	for _, r := range imageRefs(ref) {
		img, err := s.images.Get(ctx, r)
		if err == nil {
			return img, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		if first == nil {
			first = err
		}
	}
	return nil, notFoundf("image %s: %v", ref, errNoImage)
}

// storeImages is stage0's view of the store for CRI apps: images by ID, never fetched
// (the CRI pulls first), their use recorded.
type storeImages struct {
	st  *store.Store
	log interface {
		Debug(msg string, args ...any)
	}
}

func (i *storeImages) Image(ctx context.Context, ref string) (*image.Image, error) {
	img, err := i.st.Get(ctx, ref)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFoundf("image %s: %v", ref, errNoImage)
		}
		return nil, err
	}
	if err := i.st.Touch(ctx, img.ID); err != nil {
		i.log.Debug("recording image use", "image", img.ID, "err", err)
	}
	return img, nil
}

var _ stage0.Images = (*storeImages)(nil)

// prepareHostPaths makes the mounts' host paths that do not exist, as directories (as
// containerd does: kubelet's hostPath volumes count on it), and checks that a mount that
// propagates is on a host mount that propagates too.
func prepareHostPaths(ms []*runtimeapi.Mount) error {
	for _, m := range ms {
		if _, err := os.Stat(m.HostPath); err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("mount %s: %w", m.HostPath, err)
			}
			if err := os.MkdirAll(m.HostPath, 0o755); err != nil {
				return fmt.Errorf("mount %s: %w", m.HostPath, err)
			}
		}
		if err := checkPropagation(filepath.Clean(m.HostPath), m.Propagation); err != nil {
			return err
		}
	}
	return nil
}
