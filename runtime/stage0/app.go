package stage0

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/runtime/image"
	"github.com/cairn-os/cairn/runtime/network"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// PreparedApp is one app ready to join a pod: its entry in the pod manifest, where its root
// comes from, the ports its image declares (for --port), and the empty volumes made for its
// image's mount points that nothing else fills (they join the pod's volumes).
type PreparedApp struct {
	Runtime schema.RuntimeApp
	Image   stage1.AppImage
	Ports   []network.ImagePort
	Volumes []types.Volume
}

// PrepareApp resolves an app's image and makes its entry in the pod manifest: the image's
// app, then the pod's defaults (cfg), then the app's own settings. man is the pod manifest
// so far: the app's name must be free in it and its mounts must name its volumes. The result
// is checked against the image: its command is an executable file there, its user and group
// resolve, its isolators are ones stage1 can apply.
func (h *Host) PrepareApp(ctx context.Context, cfg *Config, man *schema.PodManifest, a *App) (*PreparedApp, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	img, err := h.Images.Image(ctx, a.Image)
	if err != nil {
		return nil, err
	}
	app, err := AppFromImage(img)
	if err != nil {
		return nil, err
	}
	env, err := h.env(cfg)
	if err != nil {
		return nil, err
	}
	if err := applyApp(app, cfg, env, a); err != nil {
		return nil, fmt.Errorf("image %s: %w", a.Image, err)
	}
	mounts := mergeMounts(a.Mounts, cfg.Mounts)
	readOnly := cfg.ReadOnlyRootFS
	if a.ReadOnlyRootFS != nil {
		readOnly = *a.ReadOnlyRootFS
	}
	var name types.ACName
	if a.Name != "" {
		n, err := types.NewACName(a.Name)
		if err != nil {
			return nil, fmt.Errorf("--name %q: %w", a.Name, err)
		}
		name = *n
	} else if name, err = AppName(img.Name, appNames(man)); err != nil {
		return nil, err
	}
	if man.Apps.Get(name) != nil {
		return nil, fmt.Errorf("two apps named %q; use --name", name)
	}
	ri, ann := RuntimeImage(img)
	for _, k := range slices.Sorted(maps.Keys(a.Annotations)) {
		ann.Set(types.ACIdentifier(k), a.Annotations[k])
	}
	ra := schema.RuntimeApp{Name: name, Image: ri, App: app, Mounts: mounts, Annotations: ann, ReadOnlyRootFS: readOnly}
	return h.finishApp(img, ra, man.Volumes)
}

// finishApp checks an app's entry in the pod manifest against its image and the pod's
// volumes: its mounts name volumes, its command is an executable file of the image, its user
// and group resolve there, its isolators are ones stage1 can apply. It gives the image's
// mount points that nothing fills their empty volumes.
func (h *Host) finishApp(img *image.Image, ra schema.RuntimeApp, vols []types.Volume) (*PreparedApp, error) {
	for _, m := range ra.Mounts {
		if !hasVolume(vols, m.Volume) {
			return nil, fmt.Errorf("app %s: --mount volume=%s: %w", ra.Name, m.Volume, stage1.ErrNoVolume)
		}
	}
	if err := checkIsolators(ra.App.Isolators); err != nil {
		return nil, fmt.Errorf("app %s: %w", ra.Name, err)
	}
	t := tree(img.Layers)
	if err := t.checkExec(ra.App); err != nil {
		return nil, fmt.Errorf("app %s: image %s: %w", ra.Name, img.Name, err)
	}
	if err := t.checkUser(ra.App); err != nil {
		return nil, fmt.Errorf("app %s: image %s: %w", ra.Name, img.Name, err)
	}
	pa := &PreparedApp{
		Runtime: ra,
		Image:   stage1.AppImage{Name: string(ra.Name), ImageID: img.ID, Layers: img.Layers},
		Ports:   network.DeclaredPorts(img),
	}
	pa.Volumes = implicitVolumes(&pa.Runtime, vols)
	for _, m := range pa.Runtime.Mounts {
		if hasVolume(pa.Volumes, m.Volume) {
			h.log().Warn("no volume for the image's mount point: an empty volume is made for it, removed with the pod",
				"app", ra.Name, "path", m.Path, "volume", m.Volume)
		}
	}
	return pa, nil
}

// implicitVolumes gives each of the app's mount points that no mount of the app (by path) and
// no pod volume (by name) fills an empty volume of its own, as rkt's stage1 did: named
// <app>-<mount point>, mode 0755, owned by root, read-only if the mount point is, and
// mounted into the app (ra.Mounts). Unlike rkt, the volumes are written into the pod
// manifest, so that it shows every volume the pod has.
func implicitVolumes(ra *schema.RuntimeApp, vols []types.Volume) []types.Volume {
	if ra.App == nil {
		return nil
	}
	taken := map[types.ACName]bool{}
	for _, v := range vols {
		taken[v.Name] = true
	}
	mounted := map[string]bool{}
	for _, m := range ra.Mounts {
		mounted[path.Clean(m.Path)] = true
	}
	var out []types.Volume
	for _, mp := range ra.App.MountPoints {
		if mounted[path.Clean(mp.Path)] || taken[mp.Name] {
			continue
		}
		name := types.ACName(string(ra.Name) + "-" + string(mp.Name))
		for i := 2; taken[name]; i++ {
			name = types.ACName(fmt.Sprintf("%s-%s-%d", ra.Name, mp.Name, i))
		}
		taken[name] = true
		mode, id, ro := "0755", 0, mp.ReadOnly
		out = append(out, types.Volume{Name: name, Kind: "empty", Mode: &mode, UID: &id, GID: &id, ReadOnly: &ro})
		ra.Mounts = append(ra.Mounts, schema.Mount{Volume: name, Path: mp.Path})
		mounted[path.Clean(mp.Path)] = true
	}
	return out
}

func appNames(man *schema.PodManifest) map[string]bool {
	taken := map[string]bool{}
	for _, ra := range man.Apps {
		taken[string(ra.Name)] = true
	}
	return taken
}

func hasVolume(vs []types.Volume, n types.ACName) bool {
	for _, v := range vs {
		if v.Name == n {
			return true
		}
	}
	return false
}

// mergeMounts is the app's mounts, then the pod's at paths the app does not mount (rkt's
// MergeMounts).
func mergeMounts(app, pod []schema.Mount) []schema.Mount {
	var out []schema.Mount
	seen := map[string]bool{}
	for _, m := range append(append([]schema.Mount(nil), app...), pod...) {
		if p := path.Clean(m.Path); !seen[p] {
			seen[p] = true
			out = append(out, m)
		}
	}
	return out
}

// applyApp puts the pod's defaults and the app's settings over the image's app.
func applyApp(app *types.App, cfg *Config, env *podEnv, a *App) error {
	// As in rkt: --exec replaces the image's command, arguments are appended to the command.
	if a.Exec != "" {
		app.Exec = types.Exec{a.Exec}
	}
	if len(a.Args) > 0 {
		if len(app.Exec) == 0 {
			return stage1.ErrNoExec
		}
		app.Exec = append(app.Exec, a.Args...)
	}
	if a.User != "" {
		app.User = a.User
	}
	if a.Group != "" {
		app.Group = a.Group
	}
	if a.SupplementaryGIDs != nil {
		app.SupplementaryGIDs = append([]int(nil), a.SupplementaryGIDs...)
	}
	if a.WorkingDir != "" {
		app.WorkingDirectory = a.WorkingDir
	}
	env.apply(&app.Environment, a.Env)
	if a.UserAnnotations != nil {
		app.UserAnnotations = types.UserAnnotations(a.UserAnnotations)
	}
	if a.UserLabels != nil {
		app.UserLabels = types.UserLabels(a.UserLabels)
	}
	if err := applyIsolators(app, cfg, a); err != nil {
		return err
	}
	if len(app.Exec) == 0 {
		return stage1.ErrNoExec
	}
	return nil
}

// applyIsolators replaces the image's isolators with the app's, or else the pod's, settings.
func applyIsolators(app *types.App, cfg *Config, a *App) error {
	memory, cpu := or(a.Memory, cfg.Memory), or(a.CPU, cfg.CPU)
	if memory != "" {
		iso, err := types.NewResourceMemoryIsolator(memory, memory)
		if err != nil {
			return fmt.Errorf("--memory %q: %w", memory, err)
		}
		app.Isolators.ReplaceIsolatorsByName(iso.AsIsolator(), []types.ACIdentifier{types.ResourceMemoryName})
	}
	if cpu != "" {
		iso, err := types.NewResourceCPUIsolator(cpu, cpu)
		if err != nil {
			return fmt.Errorf("--cpu %q: %w", cpu, err)
		}
		app.Isolators.ReplaceIsolatorsByName(iso.AsIsolator(), []types.ACIdentifier{types.ResourceCPUName})
	}
	retain, remove := a.CapsRetain, a.CapsRemove
	if len(retain) == 0 && len(remove) == 0 {
		retain, remove = cfg.CapsRetain, cfg.CapsRemove
	}
	capNames := []types.ACIdentifier{types.LinuxCapabilitiesRetainSetName, types.LinuxCapabilitiesRevokeSetName}
	switch {
	case len(retain) > 0 && len(remove) > 0:
		return errors.New("--caps-retain and --caps-remove are mutually exclusive")
	case len(retain) > 0:
		iso, err := types.NewLinuxCapabilitiesRetainSet(CapabilityNames(retain)...)
		if err != nil {
			return fmt.Errorf("--caps-retain: %w", err)
		}
		i, err := iso.AsIsolator()
		if err != nil {
			return err
		}
		app.Isolators.ReplaceIsolatorsByName(*i, capNames)
	case len(remove) > 0:
		iso, err := types.NewLinuxCapabilitiesRevokeSet(CapabilityNames(remove)...)
		if err != nil {
			return fmt.Errorf("--caps-remove: %w", err)
		}
		i, err := iso.AsIsolator()
		if err != nil {
			return err
		}
		app.Isolators.ReplaceIsolatorsByName(*i, capNames)
	}
	sc := a.Seccomp
	if sc == nil {
		sc = cfg.Seccomp
	}
	if sc != nil {
		iso, err := sc.Isolator()
		if err != nil {
			return err
		}
		app.Isolators.ReplaceIsolatorsByName(*iso, []types.ACIdentifier{types.LinuxSeccompRemoveSetName, types.LinuxSeccompRetainSetName})
	}
	return nil
}

func or(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// CapabilityNames writes capabilities as appc and libcontainer name them: upper case, with
// the CAP_ prefix (kill and CAP_KILL are the same capability).
func CapabilityNames(caps []string) []string {
	var out []string
	for _, c := range caps {
		c = strings.ToUpper(strings.TrimSpace(c))
		if c == "" {
			continue
		}
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		out = append(out, c)
	}
	return out
}

// Isolator is the appc isolator of the filter, checked: a known mode and errno, and @sets
// that exist.
func (s *Seccomp) Isolator() (*types.Isolator, error) {
	if len(s.Set) == 0 {
		return nil, fmt.Errorf("--seccomp %s: no syscalls or @sets given", s)
	}
	for _, e := range s.Set {
		if strings.HasPrefix(e, "@") && !stage1.IsSeccompSet(e) {
			return nil, fmt.Errorf("--seccomp %s: unknown set %s (known: %s)", s, e, strings.Join(stage1.SeccompSetNames(), ", "))
		}
	}
	if s.Errno != "" && !stage1.KnownErrno(s.Errno) {
		return nil, fmt.Errorf("--seccomp %s: unknown errno %q", s, s.Errno)
	}
	switch s.Mode {
	case "remove":
		iso, err := types.NewLinuxSeccompRemoveSet(s.Errno, s.Set...)
		if err != nil {
			return nil, fmt.Errorf("--seccomp %s: %w", s, err)
		}
		return iso.AsIsolator()
	case "retain":
		iso, err := types.NewLinuxSeccompRetainSet(s.Errno, s.Set...)
		if err != nil {
			return nil, fmt.Errorf("--seccomp %s: %w", s, err)
		}
		return iso.AsIsolator()
	}
	return nil, fmt.Errorf("--seccomp %s: mode must be remove or retain", s)
}

// String writes the filter as --seccomp takes it.
func (s *Seccomp) String() string {
	parts := []string{"mode=" + s.Mode}
	if s.Errno != "" {
		parts = append(parts, "errno="+s.Errno)
	}
	return strings.Join(append(parts, s.Set...), ",")
}

// AppFromImage returns the appc app an image runs by default: the ACI's app section, or the OCI
// config's Entrypoint+Cmd, Env, User and WorkingDir in appc terms.
func AppFromImage(img *image.Image) (*types.App, error) {
	switch img.Format {
	case image.ACI:
		if img.ACIManifest == nil {
			return nil, fmt.Errorf("image %s: no ACI manifest", img.Name)
		}
		if img.ACIManifest.App == nil {
			return &types.App{User: "0", Group: "0"}, nil
		}
		a := *img.ACIManifest.App
		a.Exec = append(types.Exec(nil), a.Exec...)
		a.Environment = append(types.Environment(nil), a.Environment...)
		a.Isolators = append(types.Isolators(nil), a.Isolators...)
		a.MountPoints = append([]types.MountPoint(nil), a.MountPoints...)
		return &a, nil
	case image.OCI:
		a := &types.App{User: "0", Group: "0"}
		if img.OCIConfig == nil {
			return a, nil
		}
		c := img.OCIConfig.Config
		a.Exec = append(append(types.Exec{}, c.Entrypoint...), c.Cmd...)
		for _, kv := range c.Env {
			k, v, _ := strings.Cut(kv, "=")
			if k != "" {
				a.Environment.Set(k, v)
			}
		}
		if c.User != "" {
			u, g, ok := strings.Cut(c.User, ":")
			a.User = u
			if ok {
				a.Group = g
			} else if _, err := strconv.Atoi(u); err != nil {
				a.Group = "" // resolved from the user's passwd entry at run time
			}
		}
		a.WorkingDirectory = c.WorkingDir
		return a, nil
	}
	return nil, fmt.Errorf("image %s: unknown format %q", img.Name, img.Format)
}

// RuntimeImage is the image reference a pod manifest keeps for an app, and the annotation
// that keeps the image's store ID.
func RuntimeImage(img *image.Image) (schema.RuntimeImage, types.Annotations) {
	var ri schema.RuntimeImage
	var ann types.Annotations
	ann.Set(stage1.AnnotationImageID, img.ID)
	if h, err := types.NewHash(img.ID); err == nil {
		ri.ID = *h
	} else {
		// OCI digest: appc only has sha512 image IDs, so keep a stable stand-in.
		ri.ID = *types.NewHashSHA512([]byte(img.ID))
	}
	if n, err := types.NewACIdentifier(sanitizeName(img.Name)); err == nil {
		ri.Name = n
	}
	for k, v := range img.Labels {
		if n, err := types.NewACIdentifier(k); err == nil {
			ri.Labels = append(ri.Labels, types.Label{Name: *n, Value: v})
		}
	}
	return ri, ann
}

// sanitizeName maps an OCI reference (docker.io/library/busybox:latest) onto an appc name.
func sanitizeName(s string) string {
	s = strings.ToLower(s)
	if i := strings.LastIndex(s, ":"); i > strings.LastIndex(s, "/") {
		s = s[:i]
	}
	if i := strings.Index(s, "@"); i >= 0 {
		s = s[:i]
	}
	n, err := types.SanitizeACIdentifier(s)
	if err != nil {
		return "app"
	}
	return n
}

// AppName derives a default app name from an image name, as rkt does (its last path element),
// made unique within the pod.
func AppName(imageName string, taken map[string]bool) (types.ACName, error) {
	base := path.Base(sanitizeName(imageName))
	n, err := types.SanitizeACName(base)
	if err != nil || n == "" {
		n = "app"
	}
	name := n
	for i := 2; taken[name]; i++ {
		name = fmt.Sprintf("%s-%d", n, i)
	}
	an, err := types.NewACName(name)
	if err != nil {
		return "", err
	}
	return *an, nil
}
