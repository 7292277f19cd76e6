// Package insecure parses rkt's --insecure-options: the set of security checks a user chose
// to skip. Values and groups follow rkt so that existing unit files keep their meaning.
package insecure

import (
	"fmt"
	"sort"
	"strings"
)

// Options is a set of disabled checks.
type Options uint

const (
	Image        Options = 1 << iota // do not verify image signatures
	TLS                              // do not verify TLS certificates
	OnDisk                           // do not re-verify images in the store before running them
	HTTP                             // allow plain http downloads
	PubKey                           // allow fetching public keys over insecure connections
	Capabilities                     // give apps all capabilities
	Paths                            // do not mask sensitive /proc and /sys paths
	Seccomp                          // do not install a seccomp filter
	Run                              // skip stage1 checks before running a pod

	None     Options = 0
	AllFetch         = Image | TLS | HTTP | PubKey
	AllRun           = OnDisk | Capabilities | Paths | Seccomp | Run
	All              = AllFetch | AllRun
)

var names = map[string]Options{
	"none":         None,
	"image":        Image,
	"tls":          TLS,
	"ondisk":       OnDisk,
	"http":         HTTP,
	"pubkey":       PubKey,
	"capabilities": Capabilities,
	"paths":        Paths,
	"seccomp":      Seccomp,
	"run":          Run,
	"all-fetch":    AllFetch,
	"all-run":      AllRun,
	"all":          All,
}

// Names lists the accepted values, sorted.
func Names() []string {
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Parse reads a comma-separated list such as "image,http". Empty elements are ignored;
// an unknown value is an error that lists the accepted ones.
func Parse(s string) (Options, error) {
	var o Options
	for v := range strings.SplitSeq(s, ",") {
		v = strings.ToLower(strings.TrimSpace(v))
		if v == "" {
			continue
		}
		bits, ok := names[v]
		if !ok {
			return 0, fmt.Errorf("unknown --insecure-options value %q (accepted: %s)", v, strings.Join(Names(), ", "))
		}
		o |= bits
	}
	return o, nil
}

// Has reports whether every check in x is disabled.
func (o Options) Has(x Options) bool { return o&x == x }

// String lists the single options in o, in rkt's order, or "none".
func (o Options) String() string {
	order := []struct {
		n string
		b Options
	}{{"image", Image}, {"tls", TLS}, {"ondisk", OnDisk}, {"http", HTTP}, {"pubkey", PubKey},
		{"capabilities", Capabilities}, {"paths", Paths}, {"seccomp", Seccomp}, {"run", Run}}
	var out []string
	for _, e := range order {
		if o.Has(e.b) {
			out = append(out, e.n)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}
