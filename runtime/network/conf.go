package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

// MaxConfSize bounds one network config file.
const MaxConfSize = 1 << 20

// ErrUnknownNet is returned when --net names a network that no config defines.
var ErrUnknownNet = errors.New("network not found")

// Net is one loadable network: a CNI config list and where it came from.
type Net struct {
	Name string
	File string // the config's file name; networks are applied in file-name order
	Path string // full path, or "(built-in)"
	List *libcni.NetworkConfigList
}

// Masq reports whether the network masquerades (its first plugin has "ipMasq": true): port
// forwards go through the first such network, as in rkt.
func (n *Net) Masq() (bool, error) { return masq(n.List) }

// masq reads the first plugin's "ipMasq". ParseConf refuses a config whose "ipMasq" is not a
// boolean, so a network that was loaded answers without an error.
func masq(l *libcni.NetworkConfigList) (bool, error) {
	if len(l.Plugins) == 0 {
		return false, nil
	}
	var c struct {
		IPMasq bool `json:"ipMasq"`
	}
	if err := json.Unmarshal(l.Plugins[0].Bytes, &c); err != nil {
		return false, fmt.Errorf("network %q: \"ipMasq\" must be true or false: %w", l.Name, err)
	}
	return c.IPMasq, nil
}

// The built-in networks, as rkt ships them (a newer cniVersion so that portmap can chain).
var builtin = map[string]string{
	"default": `{"cniVersion":"0.4.0","name":"default","type":"ptp","ipMasq":true,
		"ipam":{"type":"host-local","subnet":"172.16.28.0/24","routes":[{"dst":"0.0.0.0/0"}]}}`,
	"default-restricted": `{"cniVersion":"0.4.0","name":"default-restricted","type":"ptp","ipMasq":false,
		"ipam":{"type":"host-local","subnet":"172.31.0.0/16"}}`,
}

const builtinPath = "(built-in)"

// builtinFile sorts the built-in networks last, as rkt's 99-*.conf files did.
func builtinFile(name string) string { return "99-" + name + ".conf" }

// ParseConf reads a CNI network config: a single plugin config (.conf, .json) or a list
// (.conflist, or any file with "plugins").
func ParseConf(b []byte) (*libcni.NetworkConfigList, error) {
	if len(b) > MaxConfSize {
		return nil, fmt.Errorf("config is %d bytes, more than %d", len(b), MaxConfSize)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	name, _ := raw["name"].(string)
	if name == "" || !netName.MatchString(name) {
		return nil, fmt.Errorf("\"name\" is missing or not a valid network name")
	}
	if _, isList := raw["plugins"]; !isList {
		if t, _ := raw["type"].(string); t == "" {
			return nil, fmt.Errorf("network %q: no \"type\" (the CNI plugin to run)", name)
		}
		ver, _ := raw["cniVersion"].(string)
		wrapped, err := json.Marshal(map[string]any{"name": name, "cniVersion": ver, "plugins": []any{raw}})
		if err != nil {
			return nil, err
		}
		b = wrapped
	}
	list, err := libcni.NetworkConfFromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("network %q: %w", name, err)
	}
	if len(list.Plugins) == 0 {
		return nil, fmt.Errorf("network %q: no plugins", name)
	}
	for i, p := range list.Plugins {
		if p.Network.Type == "" || strings.ContainsAny(p.Network.Type, "/\\") {
			return nil, fmt.Errorf("network %q: plugin %d: bad \"type\" %q", name, i, p.Network.Type)
		}
	}
	if _, err := masq(list); err != nil {
		return nil, err
	}
	return list, nil
}

// LoadAll reads every network config in dirs (earlier directories override later ones by
// network name, as /etc/rkt overrides /usr/lib/rkt) plus the built-in networks unless a file
// redefines them. A file that cannot be parsed is an error naming it: a pod must not start on
// a network set that silently lost a member.
func LoadAll(dirs []string) (map[string]*Net, error) {
	nets := map[string]*Net{}
	for name, conf := range builtin {
		list, err := ParseConf([]byte(conf))
		if err != nil {
			panic(err)
		}
		nets[name] = &Net{Name: name, File: builtinFile(name), Path: builtinPath, List: list}
	}
	for _, dir := range slices.Backward(dirs) {
		files, err := libcni.ConfFiles(dir, []string{".conf", ".conflist", ".json"})
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("network configs in %s: %w", dir, err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			list, err := ParseConf(b)
			if err != nil {
				return nil, fmt.Errorf("network config %s: %w", f, err)
			}
			nets[list.Name] = &Net{Name: list.Name, File: filepath.Base(f), Path: f, List: list}
		}
	}
	return nets, nil
}

// Resolve returns the networks a selection joins, in file-name order. A name that no config
// defines is an error that lists what exists.
func Resolve(all map[string]*Net, sel Selection) ([]*Net, error) {
	if sel.Mode != Contained {
		return nil, nil
	}
	var out []*Net
	picked := map[string]bool{}
	if sel.All {
		// "all" is every configured network plus default, as in rkt; the built-in
		// default-restricted only when asked for by name.
		for name, n := range all {
			if name == "default-restricted" && n.Path == builtinPath {
				continue
			}
			out = append(out, n)
			picked[name] = true
		}
	}
	var missing []string
	for _, r := range sel.Nets {
		if picked[r.Name] {
			continue
		}
		n, ok := all[r.Name]
		if !ok {
			missing = append(missing, r.Name)
			continue
		}
		out = append(out, n)
		picked[r.Name] = true
	}
	if len(missing) > 0 {
		var have []string
		for name := range all {
			have = append(have, name)
		}
		sort.Strings(have)
		return nil, fmt.Errorf("%w: %s (configured: %s)", ErrUnknownNet, strings.Join(missing, ", "), strings.Join(have, ", "))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].File != out[j].File {
			return out[i].File < out[j].File
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}
