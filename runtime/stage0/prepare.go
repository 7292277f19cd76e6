package stage0

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/internal/atomicfile"
	"github.com/cairn-os/cairn/runtime/network"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// Prepare makes a pod of cfg. Everything is checked before the pod directory exists, so that
// a mistake leaves nothing behind: the values, that the host can give the pod cgroups, the
// networks named (net.d), the host volumes' sources, where the UUID goes, and each app
// against its image (its command, its user, its isolators). Then the pod is created (phase prepare, locked) with its manifest, stage1's
// options and its creation time, and its UUID is written to cfg.UUIDFileSave. The caller
// marks the pod prepared, or runs it.
func (h *Host) Prepare(ctx context.Context, cfg *Config) (*pod.Pod, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := &stage1.Options{
		Net: cfg.netOption(), Hostname: cfg.Hostname,
		DNS: cfg.DNS, DNSSearch: cfg.DNSSearch, DNSOpt: cfg.DNSOpt, DNSDomain: cfg.DNSDomain,
		HostsEntries: cfg.HostsEntries,
		NetConfDirs:  h.NetConfDirs, NetPluginDirs: h.NetPluginDirs,
		Interactive: cfg.Interactive, NoOverlay: cfg.NoOverlay, InsecureSeccomp: cfg.InsecureSeccomp,
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := checkHost(); err != nil {
		return nil, err
	}
	if err := checkNetworks(h.NetConfDirs, cfg.Net); err != nil {
		return nil, err
	}
	vols := cfg.Volumes
	if cfg.PodManifest != nil {
		vols = cfg.PodManifest.Volumes
	}
	if err := checkHostVolumes(vols); err != nil {
		return nil, err
	}
	if cfg.UUIDFileSave != "" {
		if err := checkUUIDFile(cfg.UUIDFileSave); err != nil {
			return nil, err
		}
	}
	if cfg.PrivateUsers {
		var err error
		if opts.PrivateUsers, err = stage1.NewPrivateUsers(h.Pods.Dir); err != nil {
			return nil, err
		}
	}
	man, err := h.manifest(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return h.create(man, opts, cfg.UUIDFileSave)
}

// manifest makes the pod manifest, from the flags' apps or from cfg.PodManifest, and puts
// the apps' images and port forwards into opts.
func (h *Host) manifest(ctx context.Context, cfg *Config, opts *stage1.Options) (*schema.PodManifest, error) {
	if cfg.PodManifest != nil {
		return h.prepareManifest(ctx, cfg, opts)
	}
	man := schema.BlankPodManifest()
	for _, v := range cfg.Volumes {
		man.Volumes = append(man.Volumes, volumeDefaults(v))
	}
	if cfg.UserAnnotations != nil {
		man.UserAnnotations = types.UserAnnotations(cfg.UserAnnotations)
	}
	if cfg.UserLabels != nil {
		man.UserLabels = types.UserLabels(cfg.UserLabels)
	}
	var declared []network.ImagePort
	for i := range cfg.Apps {
		pa, err := h.PrepareApp(ctx, cfg, man, &cfg.Apps[i])
		if err != nil {
			return nil, err
		}
		man.Apps = append(man.Apps, pa.Runtime)
		man.Volumes = append(man.Volumes, pa.Volumes...)
		opts.Apps = append(opts.Apps, pa.Image)
		declared = append(declared, pa.Ports...)
	}
	var err error
	if opts.Ports, err = network.Forwards(cfg.Ports, declared); err != nil {
		return nil, err
	}
	return man, nil
}

// create makes the pod directory and writes the pod's files into it.
func (h *Host) create(man *schema.PodManifest, opts *stage1.Options, uuidFile string) (*pod.Pod, error) {
	// Encoding runs the appc schema's last checks: a manifest that fails them makes no pod.
	if _, err := json.Marshal(man); err != nil {
		return nil, fmt.Errorf("pod manifest: %w", err)
	}
	p, err := h.Pods.Create()
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*pod.Pod, error) { p.Close(); return nil, err }
	if err := p.WriteManifest(man); err != nil {
		return fail(err)
	}
	if err := opts.Write(p.Path()); err != nil {
		return fail(err)
	}
	if err := p.WriteTime(pod.CreatedFile, time.Now()); err != nil {
		return fail(err)
	}
	if uuidFile != "" {
		if err := atomicfile.WriteFile(uuidFile, []byte(p.UUID+"\n"), 0o644); err != nil {
			return fail(fmt.Errorf("--uuid-file-save: %w", err))
		}
	}
	return p, nil
}

// volumeDefaults fills in what appc requires of an empty volume and --volume defaults: mode
// 0755, owned by root.
func volumeDefaults(v types.Volume) types.Volume {
	if v.Kind != "empty" {
		return v
	}
	if v.Mode == nil {
		m := "0755"
		v.Mode = &m
	}
	if v.UID == nil {
		id := 0
		v.UID = &id
	}
	if v.GID == nil {
		id := 0
		v.GID = &id
	}
	return v
}
