// Package network gives pods their networks, as rkt did: CNI network configs in
// /etc/rkt/net.d (and /usr/lib/rkt/net.d), the built-in `default` and `default-restricted`
// networks, `--net` selection with per-network arguments, port forwards through the portmap
// plugin, and a teardown that releases every address, interface and rule. The real
// containernetworking plugins do the work, driven through libcni.
package network

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Mode is how a pod is networked.
type Mode int

const (
	Contained Mode = iota // its own network namespace, joined to CNI networks
	Host                  // the caller's network namespace
	None                  // its own network namespace with only loopback
)

// Selection is what `--net` asked for.
type Selection struct {
	Mode Mode
	All  bool      // --net=all: every configured network
	Nets []Request // named networks, in the order given (applied in file-name order)
}

// Request names one network and its per-network arguments (`--net=mynet:IP=10.1.1.7;X=y`),
// passed to its plugins as CNI_ARGS.
type Request struct {
	Name string
	Args [][2]string
}

// ErrBadNet is returned for a malformed --net value.
var ErrBadNet = errors.New("bad --net value")

var netName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

// ParseSelection parses the values of --net (the flag may repeat; each value may hold a
// comma-separated list). No value means `default`, as in rkt.
func ParseSelection(values []string) (Selection, error) {
	var items []string
	for _, v := range values {
		for it := range strings.SplitSeq(v, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
	}
	if len(items) == 0 {
		return Selection{Mode: Contained, Nets: []Request{{Name: "default"}}}, nil
	}
	var sel Selection
	seen := map[string]bool{}
	for _, it := range items {
		name, args, hasArgs := strings.Cut(it, ":")
		switch name {
		case "host", "none":
			if len(items) != 1 {
				return sel, fmt.Errorf("%w: %q cannot be combined with other networks", ErrBadNet, name)
			}
			if hasArgs {
				return sel, fmt.Errorf("%w: %q takes no arguments", ErrBadNet, name)
			}
			if name == "host" {
				return Selection{Mode: Host}, nil
			}
			return Selection{Mode: None}, nil
		case "all":
			if hasArgs {
				return sel, fmt.Errorf("%w: \"all\" takes no arguments", ErrBadNet)
			}
			sel.All = true
			continue
		}
		if !netName.MatchString(name) {
			return sel, fmt.Errorf("%w: network name %q", ErrBadNet, name)
		}
		if seen[name] {
			return sel, fmt.Errorf("%w: network %q given twice (a pod joins a network once)", ErrBadNet, name)
		}
		seen[name] = true
		r := Request{Name: name}
		if hasArgs {
			for kv := range strings.SplitSeq(args, ";") {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" || strings.ContainsAny(k+v, " \t") {
					return sel, fmt.Errorf("%w: argument %q of network %q is not KEY=VALUE", ErrBadNet, kv, name)
				}
				r.Args = append(r.Args, [2]string{k, v})
			}
		}
		sel.Nets = append(sel.Nets, r)
	}
	return sel, nil
}

// String renders a selection the way --net takes it.
func (s Selection) String() string {
	switch s.Mode {
	case Host:
		return "host"
	case None:
		return "none"
	}
	var parts []string
	if s.All {
		parts = append(parts, "all")
	}
	for _, r := range s.Nets {
		p := r.Name
		if len(r.Args) > 0 {
			var kv []string
			for _, a := range r.Args {
				kv = append(kv, a[0]+"="+a[1])
			}
			p += ":" + strings.Join(kv, ";")
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ",")
}
