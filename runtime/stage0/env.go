package stage0

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/appc/spec/schema/types"
)

// MaxEnvFile is the largest --set-env-file read.
const MaxEnvFile = 1 << 20

// ParseEnvFile reads an environment file as rkt's --set-env-file did: NAME=VALUE lines,
// the value taken as it is (no quotes, no expansion); empty lines and lines starting with
// # or ; are skipped.
func ParseEnvFile(r io.Reader) ([]string, error) {
	var env []string
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, MaxEnvFile)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		if k, _, ok := strings.Cut(line, "="); !ok || k == "" {
			return nil, fmt.Errorf("line %d: want NAME=VALUE", n)
		}
		env = append(env, line)
	}
	return env, sc.Err()
}

// podEnv is the environment every app gets over its image's: inherited (only what the
// image does not set) and explicit (over the image's).
type podEnv struct {
	inherited, explicit []string
}

// env reads the pod's environment: Host.Environ with InheritEnv, then the env files, then
// Env. A variable set twice in the files, or twice by Env, is an error, as in rkt.
func (h *Host) env(cfg *Config) (*podEnv, error) {
	pe := &podEnv{}
	if cfg.InheritEnv {
		pe.inherited = h.Environ
	}
	seen := map[string]string{}
	for _, p := range cfg.EnvFiles {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("--set-env-file: %w", err)
		}
		env, err := ParseEnvFile(io.LimitReader(f, MaxEnvFile+1))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("--set-env-file %s: %w", p, err)
		}
		for _, kv := range env {
			k, _, _ := strings.Cut(kv, "=")
			if in, ok := seen[k]; ok {
				return nil, fmt.Errorf("--set-env-file %s: %s is set in %s already", p, k, in)
			}
			seen[k] = p
		}
		pe.explicit = append(pe.explicit, env...)
	}
	set := map[string]bool{}
	for _, kv := range cfg.Env {
		k, _, _ := strings.Cut(kv, "=")
		if set[k] {
			return nil, fmt.Errorf("--set-env %s given twice", k)
		}
		set[k] = true
	}
	pe.explicit = append(pe.explicit, cfg.Env...)
	return pe, nil
}

// apply sets the pod's and the app's variables over the image's.
func (pe *podEnv) apply(e *types.Environment, app []string) {
	for _, kv := range pe.inherited {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			if _, set := e.Get(k); !set {
				e.Set(k, v)
			}
		}
	}
	for _, kv := range append(append([]string(nil), pe.explicit...), app...) {
		k, v, _ := strings.Cut(kv, "=")
		e.Set(k, v)
	}
}
