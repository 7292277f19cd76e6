package network

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/cairn-os/cairn/runtime/image"
)

// ImagePort is a port an image declares: an appc app's ports, or an OCI image's exposed
// ports, which are named "<port>-<protocol>" as rkt named them ("80-tcp").
type ImagePort struct {
	Name     string
	Port     int
	Protocol string
}

// DeclaredPorts lists the ports an image declares.
func DeclaredPorts(img *image.Image) []ImagePort {
	var ps []ImagePort
	switch {
	case img.ACIManifest != nil && img.ACIManifest.App != nil:
		for _, p := range img.ACIManifest.App.Ports {
			ps = append(ps, ImagePort{Name: string(p.Name), Port: int(p.Port), Protocol: p.Protocol})
		}
	case img.OCIConfig != nil:
		for spec := range img.OCIConfig.Config.ExposedPorts {
			port, proto, _ := strings.Cut(spec, "/")
			if proto == "" {
				proto = "tcp"
			}
			n, err := strconv.Atoi(port)
			if err != nil || n < 1 || n > 65535 {
				continue
			}
			ps = append(ps, ImagePort{Name: port + "-" + proto, Port: n, Protocol: proto})
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	}
	return ps
}

// Forwards turns --port values (NAME:[HOSTIP:]HOSTPORT) into port mappings, finding each
// name among the pod's declared ports. A name two apps declare, a name no app declares and two
// forwards of one host port are errors, as in rkt.
func Forwards(flags []string, declared []ImagePort) ([]PortMapping, error) {
	var out []PortMapping
	for _, f := range flags {
		parts := strings.Split(f, ":")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" {
			return nil, fmt.Errorf("--port=%s: want NAME:[HOSTIP:]HOSTPORT", f)
		}
		name := parts[0]
		hp, err := strconv.Atoi(parts[len(parts)-1])
		if err != nil || hp < 1 || hp > 65535 {
			return nil, fmt.Errorf("--port=%s: host port %q is not 1-65535", f, parts[len(parts)-1])
		}
		hostIP := ""
		if len(parts) == 3 {
			if ip := net.ParseIP(parts[1]); ip == nil {
				return nil, fmt.Errorf("--port=%s: host IP %q is not an address", f, parts[1])
			}
			hostIP = parts[1]
		}
		var found *ImagePort
		var names []string
		for i, p := range declared {
			names = append(names, p.Name)
			if p.Name == name {
				if found != nil {
					return nil, fmt.Errorf("--port=%s: port name %q is declared by more than one app", f, name)
				}
				found = &declared[i]
			}
		}
		if found == nil {
			return nil, fmt.Errorf("--port=%s: no app declares a port named %q (declared: %s)", f, name, strings.Join(names, ", "))
		}
		pm := PortMapping{Name: name, HostPort: hp, ContainerPort: found.Port, Protocol: found.Protocol, HostIP: hostIP}
		for _, o := range out {
			if o.Protocol == pm.Protocol && o.HostPort == pm.HostPort && (o.HostIP == "" || pm.HostIP == "" || o.HostIP == pm.HostIP) {
				return nil, fmt.Errorf("--port=%s: host port %s/%d is already forwarded to %s", f, pm.Protocol, hp, o.Name)
			}
		}
		out = append(out, pm)
	}
	return out, nil
}
