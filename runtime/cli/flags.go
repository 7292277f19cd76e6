package cli

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/runtime/stage0"
)

// parseMountFlag parses rkt's --mount volume=NAME,target=PATH.
func parseMountFlag(s string) (schema.Mount, error) {
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

// parseVolumeFlag parses rkt's --volume NAME,kind=host|empty,source=..,readOnly=.. .
func parseVolumeFlag(s string) (types.Volume, error) {
	v, err := types.VolumeFromString(s)
	if err != nil {
		return types.Volume{}, fmt.Errorf("--volume %q: %w", s, err)
	}
	if v.Kind == "host" && !path.IsAbs(v.Source) {
		return types.Volume{}, fmt.Errorf("--volume %q: a host volume needs source=/ABSOLUTE/PATH", s)
	}
	return *v, nil
}

// parseSeccompFlag parses rkt's --seccomp mode=remove|retain[,errno=ENAME],SYSCALL|@SET,...;
// stage0 checks the names.
func parseSeccompFlag(s string) (*stage0.Seccomp, error) {
	sc := &stage0.Seccomp{}
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		switch {
		case strings.HasPrefix(f, "mode="):
			sc.Mode = strings.TrimPrefix(f, "mode=")
		case strings.HasPrefix(f, "errno="):
			sc.Errno = strings.TrimPrefix(f, "errno=")
		case f != "":
			sc.Set = append(sc.Set, f)
		}
	}
	if _, err := sc.Isolator(); err != nil {
		return nil, err
	}
	return sc, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for it := range strings.SplitSeq(s, ",") {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}

// parseGIDs parses --supplementary-gids: comma-separated group IDs.
func parseGIDs(s string) ([]int, error) {
	var gids []int
	for f := range strings.SplitSeq(s, ",") {
		g, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || g < 0 {
			return nil, fmt.Errorf("--supplementary-gids %q: %q is not a group ID", s, f)
		}
		gids = append(gids, g)
	}
	return gids, nil
}

// setKV adds a NAME=VALUE flag value to a map.
func setKV(flag string, m *map[string]string, s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%s %q: want NAME=VALUE", flag, s)
	}
	if *m == nil {
		*m = map[string]string{}
	}
	(*m)[k] = v
	return nil
}

// parseBool parses a boolean flag's value.
func parseBool(flag, s string) (bool, error) {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%s=%s: want true or false", flag, s)
	}
	return b, nil
}
