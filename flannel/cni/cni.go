// Package cni is the "flannel" CNI plugin: it reads the subnet.env flanneld wrote and
// hands the real work to another plugin (bridge by default) with host-local IPAM on this
// host's subnet, as flannel's own CNI plugin does, so that pods on any host reach each
// other through the overlay. The delegate's config is kept per container under dataDir so
// that DEL works even after subnet.env changed or went away.
package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/cairn-os/cairn/flannel/subnetenv"
	"github.com/cairn-os/cairn/internal/atomicfile"
)

// Defaults as in flannel's CNI plugin.
const (
	DefaultSubnetFile = subnetenv.DefaultPath
	DefaultDataDir    = "/var/lib/cni/flannel"
)

// NetConf is the plugin's network configuration.
type NetConf struct {
	types.NetConf
	SubnetFile string         `json:"subnetFile"`
	DataDir    string         `json:"dataDir"`
	Delegate   map[string]any `json:"delegate"`
}

// ParseNetConf decodes the plugin config and fills defaults.
func ParseNetConf(b []byte) (*NetConf, error) {
	n := &NetConf{SubnetFile: DefaultSubnetFile, DataDir: DefaultDataDir}
	if err := json.Unmarshal(b, n); err != nil {
		return nil, fmt.Errorf("flannel CNI config: %w", err)
	}
	if n.Name == "" {
		return nil, errors.New("flannel CNI config: name is missing")
	}
	return n, nil
}

// DelegateConf builds the delegate plugin's config from the plugin config and subnet.env.
// Keys the user set in "delegate" win; the rest are filled as flannel's plugin does.
func DelegateConf(n *NetConf, env subnetenv.Env) ([]byte, string, error) {
	d := map[string]any{}
	maps.Copy(d, n.Delegate)
	if _, ok := d["type"]; !ok {
		d["type"] = "bridge"
	}
	typ, ok := d["type"].(string)
	if !ok || typ == "" || strings.ContainsAny(typ, "/\\") {
		return nil, "", fmt.Errorf("flannel CNI config: delegate type %v is not a plugin name", d["type"])
	}
	if _, ok := d["ipMasq"]; !ok {
		// flanneld masquerades already when -ip-masq is set; otherwise the bridge does.
		d["ipMasq"] = !env.IPMasq
	}
	if _, ok := d["mtu"]; !ok && env.MTU != 0 {
		d["mtu"] = env.MTU
	}
	if typ == "bridge" {
		if _, ok := d["isGateway"]; !ok {
			d["isGateway"] = true
		}
	}
	d["name"] = n.Name
	d["cniVersion"] = n.CNIVersion
	if _, ok := d["ipam"]; !ok {
		d["ipam"] = map[string]any{
			"type":   "host-local",
			"subnet": env.Subnet.Masked().String(),
			"routes": []map[string]string{{"dst": env.Network.String()}},
		}
	}
	b, err := json.Marshal(d)
	return b, typ, err
}

func (n *NetConf) savePath(containerID, ifName string) (string, error) {
	if containerID == "" || strings.ContainsAny(containerID, "/\\") || containerID == "." || containerID == ".." {
		return "", fmt.Errorf("container ID %q cannot name a file", containerID)
	}
	name := containerID
	if ifName != "" && ifName != "eth0" {
		name += "-" + ifName
	}
	return filepath.Join(n.DataDir, name), nil
}

// Add handles CNI ADD.
func Add(args *skel.CmdArgs) error {
	n, err := ParseNetConf(args.StdinData)
	if err != nil {
		return err
	}
	env, err := subnetenv.Read(n.SubnetFile)
	if err != nil {
		return fmt.Errorf("%w (is flanneld running?)", err)
	}
	conf, typ, err := DelegateConf(n, env)
	if err != nil {
		return err
	}
	p, err := n.savePath(args.ContainerID, args.IfName)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(n.DataDir, 0o700); err != nil {
		return fmt.Errorf("flannel CNI data dir: %w", err)
	}
	if err := atomicfile.WriteFile(p, conf, 0o600); err != nil {
		return err
	}
	res, err := invoke.DelegateAdd(context.Background(), typ, conf, nil)
	if err != nil {
		os.Remove(p)
		return fmt.Errorf("delegate %s ADD: %w", typ, err)
	}
	return types.PrintResult(res, n.CNIVersion)
}

// saved reads the delegate config Add saved for args' container: the config, its path and
// the delegate plugin's type.
func saved(args *skel.CmdArgs) ([]byte, string, string, error) {
	n, err := ParseNetConf(args.StdinData)
	if err != nil {
		return nil, "", "", err
	}
	p, err := n.savePath(args.ContainerID, args.IfName)
	if err != nil {
		return nil, "", "", err
	}
	conf, err := os.ReadFile(p)
	if err != nil {
		return nil, p, "", err
	}
	var t struct{ Type string }
	if err := json.Unmarshal(conf, &t); err != nil || t.Type == "" {
		return nil, p, "", fmt.Errorf("saved delegate config %s is corrupt", p)
	}
	return conf, p, t.Type, nil
}

// Del handles CNI DEL; a container it never saw is not an error.
func Del(args *skel.CmdArgs) error {
	conf, p, typ, err := saved(args)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := invoke.DelegateDel(context.Background(), typ, conf, nil); err != nil {
		return fmt.Errorf("delegate %s DEL: %w", typ, err)
	}
	return os.Remove(p)
}

// Check handles CNI CHECK.
func Check(args *skel.CmdArgs) error {
	conf, _, typ, err := saved(args)
	if err != nil {
		return err
	}
	return invoke.DelegateCheck(context.Background(), typ, conf, nil)
}

// Main runs the plugin.
func Main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: Add, Del: Del, Check: Check}, version.All, "flannel CNI plugin (Cairn)")
}
