package stage0

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/appc/spec/schema/types"
	"github.com/moby/sys/capability"

	"github.com/cairn-os/cairn/internal/atomicfile"
	"github.com/cairn-os/cairn/runtime/network"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// MinMemory is the lowest memory limit accepted, as in rkt: anything less is a mistake, most
// likely --memory=16m (milli-bytes) for --memory=16M.
const MinMemory = 4096

// Validate checks what can be checked without looking at the host or the images: each value
// on its own and the combinations rkt refuses.
func (c *Config) Validate() error {
	apps := len(c.Apps)
	if c.PodManifest != nil {
		if f := c.conflictsWithManifest(); f != "" {
			return fmt.Errorf("%s and --pod-manifest conflict: the pod manifest is the whole pod (only the network flags, --interactive, --no-overlay, --private-users and --uuid-file-save go with it)", f)
		}
		if err := checkPodManifest(c.PodManifest); err != nil {
			return fmt.Errorf("%w: %v", ErrBadPodManifest, err)
		}
		apps = len(c.PodManifest.Apps)
	}
	if apps == 0 {
		return errors.New("no image given")
	}
	if c.Interactive && apps != 1 {
		return errors.New("--interactive needs exactly one app")
	}
	seen := map[types.ACName]bool{}
	for _, v := range c.Volumes {
		if seen[v.Name] {
			return fmt.Errorf("--volume %s given twice: volume names must be unique in a pod", v.Name)
		}
		seen[v.Name] = true
		switch v.Kind {
		case "empty":
		case "host":
			if !path.IsAbs(v.Source) {
				return fmt.Errorf("--volume %s: a host volume needs source=/ABSOLUTE/PATH, not %q", v.Name, v.Source)
			}
		default:
			return fmt.Errorf("--volume %s: unknown kind %q (want host or empty)", v.Name, v.Kind)
		}
	}
	if err := c.Network.Validate(); err != nil {
		return err
	}
	if err := checkEnv("--set-env", c.Env); err != nil {
		return err
	}
	for _, m := range c.Mounts {
		if !path.IsAbs(m.Path) {
			return fmt.Errorf("--mount volume=%s,target=%s: the target must be an absolute path", m.Volume, m.Path)
		}
		if !hasVolume(c.Volumes, m.Volume) {
			return fmt.Errorf("--mount volume=%s: %w", m.Volume, stage1.ErrNoVolume)
		}
	}
	if err := checkKeys("--user-annotation", c.UserAnnotations); err != nil {
		return err
	}
	if err := checkKeys("--user-label", c.UserLabels); err != nil {
		return err
	}
	if err := checkIsolatorFlags(c.Memory, c.CPU, c.CapsRetain, c.CapsRemove, c.Seccomp); err != nil {
		return err
	}
	for i := range c.Apps {
		if err := c.Apps[i].Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the network settings on their own (stage1.Options checks the addresses).
func (n *Network) Validate() error {
	if _, err := network.ParseSelection(n.Net); err != nil {
		return err
	}
	if len(n.DNS) == 1 && (n.DNS[0] == "host" || n.DNS[0] == "none") && (len(n.DNSSearch) > 0 || len(n.DNSOpt) > 0 || n.DNSDomain != "") {
		return fmt.Errorf("--dns-search, --dns-opt and --dns-domain cannot go with --dns=%s", n.DNS[0])
	}
	return nil
}

// netOption is --net as stage1's options keep it.
func (n *Network) netOption() string { return strings.Join(n.Net, ",") }

// Validate checks an app's settings on their own.
func (a *App) Validate() error {
	if a.Image == "" {
		return errors.New("an app without an image")
	}
	if a.Name != "" {
		if _, err := types.NewACName(a.Name); err != nil {
			return fmt.Errorf("image %s: --name %q: %w", a.Image, a.Name, err)
		}
	}
	if err := checkEnv("--environment", a.Env); err != nil {
		return fmt.Errorf("image %s: %w", a.Image, err)
	}
	if a.WorkingDir != "" && !path.IsAbs(a.WorkingDir) {
		return fmt.Errorf("image %s: --working-dir %q: not an absolute path", a.Image, a.WorkingDir)
	}
	for _, m := range a.Mounts {
		if !path.IsAbs(m.Path) {
			return fmt.Errorf("image %s: --mount volume=%s,target=%s: the target must be an absolute path", a.Image, m.Volume, m.Path)
		}
	}
	for _, g := range a.SupplementaryGIDs {
		if g < 0 || int64(g) >= math.MaxUint32 {
			return fmt.Errorf("image %s: --supplementary-gids: %d is not a group ID", a.Image, g)
		}
	}
	if err := checkKeys("--user-annotation", a.UserAnnotations); err != nil {
		return fmt.Errorf("image %s: %w", a.Image, err)
	}
	if err := checkKeys("--user-label", a.UserLabels); err != nil {
		return fmt.Errorf("image %s: %w", a.Image, err)
	}
	for k := range a.Annotations {
		if _, err := types.NewACIdentifier(k); err != nil {
			return fmt.Errorf("image %s: annotation %s: %w", a.Image, k, err)
		}
		if k == stage1.AnnotationImageID {
			return fmt.Errorf("image %s: annotation %s is the runtime's", a.Image, k)
		}
	}
	if err := checkIsolatorFlags(a.Memory, a.CPU, a.CapsRetain, a.CapsRemove, a.Seccomp); err != nil {
		return fmt.Errorf("image %s: %w", a.Image, err)
	}
	return nil
}

func checkKeys(flag string, m map[string]string) error {
	for k := range m {
		if k == "" {
			return fmt.Errorf("%s: an empty name", flag)
		}
	}
	return nil
}

func checkEnv(flag string, env []string) error {
	for _, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("%s %q: want NAME=VALUE", flag, kv)
		}
	}
	return nil
}

// checkIsolatorFlags checks the isolator settings of a pod or an app: limits that a cgroup
// can take, capabilities and syscalls that exist.
func checkIsolatorFlags(memory, cpu string, retain, remove []string, sc *Seccomp) error {
	if memory != "" {
		iso, err := types.NewResourceMemoryIsolator(memory, memory)
		if err != nil {
			return fmt.Errorf("--memory=%s: %w", memory, err)
		}
		if b := iso.Limit().Value(); b < MinMemory {
			return fmt.Errorf("--memory=%s: a memory limit of %d bytes is too low; try a reasonable value, such as --memory=16M", memory, b)
		}
	}
	if cpu != "" {
		iso, err := types.NewResourceCPUIsolator(cpu, cpu)
		if err != nil {
			return fmt.Errorf("--cpu=%s: %w", cpu, err)
		}
		if iso.Limit().MilliValue() <= 0 {
			return fmt.Errorf("--cpu=%s: a CPU limit must be more than 0, such as --cpu=500m", cpu)
		}
	}
	if len(retain) > 0 && len(remove) > 0 {
		return errors.New("--caps-retain and --caps-remove are mutually exclusive")
	}
	if err := checkCapabilities("--caps-retain", retain); err != nil {
		return err
	}
	if err := checkCapabilities("--caps-remove", remove); err != nil {
		return err
	}
	if sc != nil {
		if _, err := sc.Isolator(); err != nil {
			return err
		}
		if err := checkSyscalls(sc.Set); err != nil {
			return fmt.Errorf("--seccomp %s: %w", sc, err)
		}
	}
	return nil
}

// knownCapabilities are the capabilities Linux defines, as libcontainer names them.
func knownCapabilities() map[string]bool {
	m := map[string]bool{}
	for _, c := range capability.ListKnown() {
		m["CAP_"+strings.ToUpper(c.String())] = true
	}
	return m
}

func checkCapabilities(flag string, caps []string) error {
	known := knownCapabilities()
	for _, c := range CapabilityNames(caps) {
		if !known[c] {
			return fmt.Errorf("%s: unknown capability %s", flag, c)
		}
	}
	return nil
}

// checkSyscalls refuses syscall names that libseccomp does not know, on any architecture; a
// name the filter compiler would skip silently is a typo that weakens the filter (remove) or
// breaks the app (retain). @sets are checked by Seccomp.Isolator.
func checkSyscalls(set []string) error {
	for _, s := range set {
		if strings.HasPrefix(s, "@") {
			continue
		}
		if known, checked := knownSyscall(s); checked && !known {
			return fmt.Errorf("unknown syscall %q", s)
		}
	}
	return nil
}

// checkIsolators checks an app's isolators as stage1 will apply them, whatever set them
// (the image, the pod's defaults, the app's flags, a pod manifest).
func checkIsolators(isos types.Isolators) error {
	b, err := json.Marshal(isos)
	if err != nil {
		return err
	}
	// appc's constructors leave an isolator's decoded value empty; decoding fills it.
	var dec types.Isolators
	if err := json.Unmarshal(b, &dec); err != nil {
		return fmt.Errorf("isolators: %w", err)
	}
	known := knownCapabilities()
	for _, iso := range dec {
		switch v := iso.Value().(type) {
		case *types.ResourceMemory:
			if l := v.Limit(); l != nil && l.Value() < MinMemory {
				return fmt.Errorf("memory limit %s: below %d bytes", l, MinMemory)
			}
		case *types.ResourceCPU:
			if l := v.Limit(); l != nil && l.MilliValue() <= 0 {
				return fmt.Errorf("cpu limit %s: must be more than 0", l)
			}
		case types.LinuxCapabilitiesSet:
			for _, c := range v.Set() {
				if !known[string(c)] {
					return fmt.Errorf("%s: unknown capability %s", iso.Name, c)
				}
			}
		case types.LinuxSeccompSet:
			var set []string
			for _, e := range v.Set() {
				set = append(set, string(e))
				if s := string(e); strings.HasPrefix(s, "@") && !stage1.IsSeccompSet(s) {
					return fmt.Errorf("%s: unknown set %s (known: %s)", iso.Name, s, strings.Join(stage1.SeccompSetNames(), ", "))
				}
			}
			if err := checkSyscalls(set); err != nil {
				return fmt.Errorf("%s: %w", iso.Name, err)
			}
		}
	}
	if _, err := stage1.Resources(dec); err != nil {
		return err
	}
	if _, err := stage1.SeccompSpec(dec); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	return nil
}

// checkHostVolumes checks that every host volume's source exists.
func checkHostVolumes(vols []types.Volume) error {
	for _, v := range vols {
		if v.Kind != "host" {
			continue
		}
		if _, err := os.Stat(v.Source); err != nil {
			return fmt.Errorf("--volume %s: host source: %w", v.Name, err)
		}
	}
	return nil
}

// checkNetworks checks that every network --net names has a config.
func checkNetworks(confDirs []string, values []string) error {
	sel, err := network.ParseSelection(values)
	if err != nil {
		return err
	}
	if sel.Mode != network.Contained {
		return nil
	}
	all, err := network.LoadAll(confDirs)
	if err != nil {
		return err
	}
	if _, err := network.Resolve(all, sel); err != nil {
		return fmt.Errorf("--net=%s: %w", strings.Join(values, ","), err)
	}
	return nil
}

// checkUUIDFile checks that the UUID can be written to p once the pod exists: its directory
// exists and takes a new file (the same temporary file the write will make), and p is not a
// directory.
func checkUUIDFile(p string) error {
	dir := filepath.Dir(p)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("--uuid-file-save %s: %w", p, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("--uuid-file-save %s: %s is not a directory", p, dir)
	}
	if fi, err := os.Stat(p); err == nil && fi.IsDir() {
		return fmt.Errorf("--uuid-file-save %s: is a directory", p)
	}
	f, err := os.CreateTemp(dir, atomicfile.TempPrefix+filepath.Base(p)+"-*")
	if err != nil {
		return fmt.Errorf("--uuid-file-save %s: cannot write in %s: %w", p, dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}
