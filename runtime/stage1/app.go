// Package stage1 turns a prepared pod (its appc pod manifest and options) into libcontainer
// containers and supervises them: one container per app, each with its own mount namespace and
// root, all sharing the pod's network, IPC and UTS namespaces, like rkt's stage1/stage2 split.
//
// The policy is data: Spec builds an OCI runtime spec per app and OverlayMount the mount of its
// root on the host (an internal/mount value), so unit tests compare them; the _linux.go files
// apply them.
package stage1

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/runtime/image"
)

// AnnotationImageID carries an image's store ID in a pod manifest; for OCI images it is the
// only place the real ID is kept (appc's image ID field only holds sha512 hashes).
const AnnotationImageID = "cairn-os.org/image-id"

// DefaultPath is the PATH an app gets when its image sets none (appc's executor default).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ExitFailure is rkt's exit status for a failure of its own, in stage0 or stage1 (a bad flag,
// an image that cannot be fetched, a pod that cannot be set up or entered), as opposed to an
// app's exit status, which rkt run and rkt enter pass on. It is rkt's 254, which scripts
// written for rkt tell apart from their apps' statuses.
const ExitFailure = 254

// ErrNoExec says an image names no command and none was given.
var ErrNoExec = errors.New("image has no exec/entrypoint; pass --exec")

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

// RuntimeImage is the image reference a pod manifest keeps for an app.
func RuntimeImage(img *image.Image) (schema.RuntimeImage, types.Annotations, error) {
	var ri schema.RuntimeImage
	var ann types.Annotations
	ann.Set(AnnotationImageID, img.ID)
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
	return ri, ann, nil
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

// Overrides are the per-app command-line settings that replace the image's.
type Overrides struct {
	Name       string
	Exec       string   // --exec
	Args       []string // image args after --
	User       string   // --user
	Group      string   // --group
	WorkingDir string   // --working-dir
	Env        []string // --set-env / --environment, KEY=VALUE
	Mounts     []string // --mount volume=NAME,target=PATH
	Memory     string   // --memory
	CPU        string   // --cpu
	CapsRetain string   // --caps-retain
	CapsRemove string   // --caps-remove
	Seccomp    string   // --seccomp mode=...,errno=...,SET
}

// Apply merges overrides into an app.
func (o *Overrides) Apply(a *types.App) ([]schema.Mount, error) {
	if o.Exec != "" {
		a.Exec = types.Exec{o.Exec}
	}
	if len(o.Args) > 0 {
		if len(a.Exec) == 0 {
			return nil, ErrNoExec
		}
		a.Exec = append(types.Exec{a.Exec[0]}, o.Args...)
	}
	if o.User != "" {
		a.User = o.User
	}
	if o.Group != "" {
		a.Group = o.Group
	}
	if o.WorkingDir != "" {
		a.WorkingDirectory = o.WorkingDir
	}
	for _, kv := range o.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("environment %q: want NAME=VALUE", kv)
		}
		a.Environment.Set(k, v)
	}
	if o.Memory != "" {
		iso, err := types.NewResourceMemoryIsolator(o.Memory, o.Memory)
		if err != nil {
			return nil, fmt.Errorf("--memory %q: %w", o.Memory, err)
		}
		a.Isolators.ReplaceIsolatorsByName(iso.AsIsolator(), []types.ACIdentifier{types.ResourceMemoryName})
	}
	if o.CPU != "" {
		iso, err := types.NewResourceCPUIsolator(o.CPU, o.CPU)
		if err != nil {
			return nil, fmt.Errorf("--cpu %q: %w", o.CPU, err)
		}
		a.Isolators.ReplaceIsolatorsByName(iso.AsIsolator(), []types.ACIdentifier{types.ResourceCPUName})
	}
	capNames := []types.ACIdentifier{types.LinuxCapabilitiesRetainSetName, types.LinuxCapabilitiesRevokeSetName}
	if o.CapsRetain != "" && o.CapsRemove != "" {
		return nil, errors.New("--caps-retain and --caps-remove are mutually exclusive")
	}
	if o.CapsRetain != "" {
		iso, err := types.NewLinuxCapabilitiesRetainSet(splitCaps(o.CapsRetain)...)
		if err != nil {
			return nil, fmt.Errorf("--caps-retain: %w", err)
		}
		i, err := iso.AsIsolator()
		if err != nil {
			return nil, err
		}
		a.Isolators.ReplaceIsolatorsByName(*i, capNames)
	}
	if o.CapsRemove != "" {
		iso, err := types.NewLinuxCapabilitiesRevokeSet(splitCaps(o.CapsRemove)...)
		if err != nil {
			return nil, fmt.Errorf("--caps-remove: %w", err)
		}
		i, err := iso.AsIsolator()
		if err != nil {
			return nil, err
		}
		a.Isolators.ReplaceIsolatorsByName(*i, capNames)
	}
	if o.Seccomp != "" {
		iso, err := ParseSeccompFlag(o.Seccomp)
		if err != nil {
			return nil, err
		}
		a.Isolators.ReplaceIsolatorsByName(*iso, []types.ACIdentifier{types.LinuxSeccompRemoveSetName, types.LinuxSeccompRetainSetName})
	}
	var mounts []schema.Mount
	for _, m := range o.Mounts {
		sm, err := ParseMountFlag(m)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, sm)
	}
	if len(a.Exec) == 0 {
		return nil, ErrNoExec
	}
	return mounts, nil
}

func splitCaps(s string) []string {
	var out []string
	for c := range strings.SplitSeq(s, ",") {
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

// ParseMountFlag parses rkt's --mount volume=NAME,target=PATH.
func ParseMountFlag(s string) (schema.Mount, error) {
	var m schema.Mount
	for kv := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return m, fmt.Errorf("--mount %q: %q is not KEY=VALUE", s, kv)
		}
		switch k {
		case "volume":
			n, err := types.NewACName(v)
			if err != nil {
				return m, fmt.Errorf("--mount %q: volume name: %w", s, err)
			}
			m.Volume = *n
		case "target":
			m.Path = v
		default:
			return m, fmt.Errorf("--mount %q: unknown key %q (want volume=, target=)", s, k)
		}
	}
	if m.Volume == "" || m.Path == "" || !path.IsAbs(m.Path) {
		return m, fmt.Errorf("--mount %q: want volume=NAME,target=/ABSOLUTE/PATH", s)
	}
	return m, nil
}

// ParseVolumeFlag parses rkt's --volume NAME,kind=host|empty,source=..,readOnly=.. .
func ParseVolumeFlag(s string) (types.Volume, error) {
	v, err := types.VolumeFromString(s)
	if err != nil {
		return types.Volume{}, fmt.Errorf("--volume %q: %w", s, err)
	}
	if v.Kind == "host" && !path.IsAbs(v.Source) {
		return types.Volume{}, fmt.Errorf("--volume %q: a host volume needs source=/ABSOLUTE/PATH", s)
	}
	return *v, nil
}
