package stage0

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strconv"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/runtime/network"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// MaxPodManifest is the largest pod manifest that --pod-manifest reads.
const MaxPodManifest = 1 << 20

// ErrBadPodManifest says a pod manifest given to run or prepare is not one Cairn runs.
var ErrBadPodManifest = errors.New("invalid pod manifest")

// ParsePodManifest reads a whole pod, as rkt's --pod-manifest did. The bytes are the
// user's, so they are bounded and checked: the appc schema's decoding checks (its panics on
// malformed input become errors) and encoding checks, at least one app, each with an image
// ID, and a command if it has an app section; mounts at absolute paths of the pod's volumes
// (volumes inside a mount are not supported); host volumes with absolute sources; ports that
// are ports; no pod-level isolators, which Cairn does not apply. What depends on the host
// (the images, the sources) Prepare checks.
func ParsePodManifest(b []byte) (*schema.PodManifest, error) {
	if len(b) > MaxPodManifest {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadPodManifest, MaxPodManifest)
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("%w: not JSON", ErrBadPodManifest)
	}
	var m schema.PodManifest
	if err := guard(func() error { return json.Unmarshal(b, &m) }); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPodManifest, err)
	}
	if err := checkPodManifest(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPodManifest, err)
	}
	// Decoding skips some checks that encoding runs: a manifest must survive both.
	if err := guard(func() error { _, err := json.Marshal(&m); return err }); err != nil {
		for {
			me, ok := errors.AsType[*json.MarshalerError](err)
			if !ok {
				break
			}
			err = me.Err
		}
		return nil, fmt.Errorf("%w: %v", ErrBadPodManifest, err)
	}
	return &m, nil
}

// guard runs f, turning a panic of the appc schema package into an error.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed (%v)", r)
		}
	}()
	return f()
}

func checkPodManifest(m *schema.PodManifest) error {
	if len(m.Apps) == 0 {
		return errors.New("no apps")
	}
	if len(m.Isolators) > 0 {
		return errors.New("pod-level isolators are not supported; set them on the apps")
	}
	vols := map[types.ACName]bool{}
	for _, v := range m.Volumes {
		if v.Name.Empty() {
			return errors.New("a volume without a name")
		}
		switch v.Kind {
		case "empty":
		case "host":
			if !path.IsAbs(v.Source) {
				return fmt.Errorf("volume %s: source %q is not an absolute path", v.Name, v.Source)
			}
		default:
			return fmt.Errorf("volume %s: unknown kind %q (want host or empty)", v.Name, v.Kind)
		}
		vols[v.Name] = true
	}
	names := map[types.ACName]bool{}
	for _, ra := range m.Apps {
		if ra.Name.Empty() {
			return errors.New("an app without a name")
		}
		if names[ra.Name] {
			return fmt.Errorf("two apps named %s", ra.Name)
		}
		names[ra.Name] = true
		if ra.Image.ID.Empty() {
			return fmt.Errorf("app %s: no image ID", ra.Name)
		}
		if ra.App != nil && len(ra.App.Exec) == 0 {
			return fmt.Errorf("app %s: an app section without exec", ra.Name)
		}
		for _, mt := range ra.Mounts {
			if mt.AppVolume != nil {
				return fmt.Errorf("app %s: mount %s: volumes inside a mount are not supported; add the volume to the pod", ra.Name, mt.Path)
			}
			if !path.IsAbs(mt.Path) {
				return fmt.Errorf("app %s: mount path %q is not absolute", ra.Name, mt.Path)
			}
			if !vols[mt.Volume] {
				return fmt.Errorf("app %s: mount of volume %s: %w", ra.Name, mt.Volume, stage1.ErrNoVolume)
			}
		}
	}
	for _, p := range m.Ports {
		if p.Name.Empty() || p.HostPort < 1 || p.HostPort > 65535 {
			return fmt.Errorf("port %q: want a name and a host port of 1-65535", p.Name)
		}
	}
	return nil
}

// conflictsWithManifest names the first setting that a pod manifest leaves no room for.
func (c *Config) conflictsWithManifest() string {
	for _, f := range []struct {
		set  bool
		flag string
	}{
		{len(c.Apps) > 0, "images"}, {len(c.Volumes) > 0, "--volume"}, {len(c.Mounts) > 0, "--mount"},
		{len(c.Ports) > 0, "--port"}, {c.InheritEnv, "--inherit-env"}, {len(c.EnvFiles) > 0, "--set-env-file"},
		{len(c.Env) > 0, "--set-env"}, {c.Memory != "", "--memory"}, {c.CPU != "", "--cpu"},
		{len(c.CapsRetain) > 0, "--caps-retain"}, {len(c.CapsRemove) > 0, "--caps-remove"}, {c.Seccomp != nil, "--seccomp"},
		{c.ReadOnlyRootFS, "--readonly-rootfs"}, {c.UserAnnotations != nil, "--user-annotation"}, {c.UserLabels != nil, "--user-label"},
	} {
		if f.set {
			return f.flag
		}
	}
	return ""
}

// prepareManifest resolves and checks the apps of cfg.PodManifest, as PrepareApp does for
// the apps of flags: each image from the store by its ID (the annotation keeps an OCI
// image's), the image's app where the manifest has none, the same checks, and empty volumes
// for unfilled mount points.
func (h *Host) prepareManifest(ctx context.Context, cfg *Config, opts *stage1.Options) (*schema.PodManifest, error) {
	in := cfg.PodManifest
	man := *in
	man.Apps = nil
	man.Volumes = append([]types.Volume(nil), in.Volumes...)
	var declared []network.ImagePort
	for _, ra := range in.Apps {
		ref := ra.Image.ID.String()
		if id, ok := ra.Annotations.Get(stage1.AnnotationImageID); ok {
			ref = id
		}
		img, err := h.Images.Image(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", ra.Name, err)
		}
		ri, ann := RuntimeImage(img)
		if ri.ID != ra.Image.ID {
			return nil, fmt.Errorf("app %s: image %s is %s, not the %s the pod manifest names", ra.Name, ref, img.ID, ra.Image.ID)
		}
		if ra.App == nil {
			if ra.App, err = AppFromImage(img); err != nil {
				return nil, err
			}
			if len(ra.App.Exec) == 0 {
				return nil, fmt.Errorf("app %s: %w", ra.Name, stage1.ErrNoExec)
			}
		}
		id, _ := ann.Get(stage1.AnnotationImageID)
		ra.Annotations.Set(stage1.AnnotationImageID, id)
		pa, err := h.finishApp(img, ra, man.Volumes)
		if err != nil {
			return nil, err
		}
		man.Apps = append(man.Apps, pa.Runtime)
		man.Volumes = append(man.Volumes, pa.Volumes...)
		opts.Apps = append(opts.Apps, pa.Image)
		declared = append(declared, pa.Ports...)
	}
	var ports []string
	for _, p := range in.Ports {
		f := string(p.Name) + ":"
		if p.HostIP != nil {
			f += p.HostIP.String() + ":"
		}
		ports = append(ports, f+strconv.FormatUint(uint64(p.HostPort), 10))
	}
	var err error
	if opts.Ports, err = network.Forwards(ports, declared); err != nil {
		return nil, err
	}
	return &man, nil
}
