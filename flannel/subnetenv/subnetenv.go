// Package subnetenv writes and reads /run/flannel/subnet.env, the file through which
// flanneld tells the host's container networking which subnet it owns:
//
//	FLANNEL_NETWORK=10.1.0.0/16
//	FLANNEL_SUBNET=10.1.34.1/24
//	FLANNEL_MTU=1450
//	FLANNEL_IPMASQ=false
//
// FLANNEL_SUBNET is the first usable address of the host's subnet with the subnet's length,
// as stock flannel writes it. The file is replaced atomically, so a reader never sees a part.
package subnetenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cairn-os/cairn/internal/atomicfile"
)

// DefaultPath is where flanneld writes the file unless -subnet-file says otherwise.
const DefaultPath = "/run/flannel/subnet.env"

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("malformed subnet.env")

// Env is the content of subnet.env.
type Env struct {
	Network netip.Prefix // FLANNEL_NETWORK
	Subnet  netip.Prefix // the lease, e.g. 10.1.34.0/24; written as FLANNEL_SUBNET=10.1.34.1/24
	MTU     int
	IPMasq  bool
}

// Gateway is the first address of the subnet: the one FLANNEL_SUBNET names.
func (e Env) Gateway() netip.Addr { return e.Subnet.Masked().Addr().Next() }

// Marshal renders the file.
func (e Env) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "FLANNEL_NETWORK=%s\n", e.Network)
	fmt.Fprintf(&b, "FLANNEL_SUBNET=%s\n", netip.PrefixFrom(e.Gateway(), e.Subnet.Bits()))
	fmt.Fprintf(&b, "FLANNEL_MTU=%d\n", e.MTU)
	fmt.Fprintf(&b, "FLANNEL_IPMASQ=%t\n", e.IPMasq)
	return b.Bytes()
}

// Write atomically replaces path, creating its directory.
func Write(path string, e Env) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("subnet file %s: %w", path, err)
	}
	if err := atomicfile.WriteFile(path, e.Marshal(), 0o644); err != nil {
		return fmt.Errorf("subnet file: %w", err)
	}
	return nil
}

// Read parses the file at path.
func Read(path string) (Env, error) {
	f, err := os.Open(path)
	if err != nil {
		return Env{}, fmt.Errorf("subnet file: %w", err)
	}
	defer f.Close()
	e, err := Parse(io.LimitReader(f, 64<<10))
	if err != nil {
		return Env{}, fmt.Errorf("subnet file %s: %w", path, err)
	}
	return e, nil
}

// Parse reads the KEY=VALUE lines. Unknown keys (FLANNEL_IPV6_* and others) are ignored;
// FLANNEL_NETWORK and FLANNEL_SUBNET are required.
func Parse(r io.Reader) (Env, error) {
	var e Env
	var haveNet, haveSubnet bool
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return Env{}, fmt.Errorf("%w: line %d has no '='", ErrMalformed, n)
		}
		v = strings.Trim(strings.TrimSpace(v), `"`)
		var err error
		switch strings.TrimSpace(k) {
		case "FLANNEL_NETWORK":
			e.Network, err = parsePrefix(v)
			e.Network = e.Network.Masked()
			haveNet = true
		case "FLANNEL_SUBNET":
			e.Subnet, err = parsePrefix(v)
			e.Subnet = e.Subnet.Masked()
			haveSubnet = true
		case "FLANNEL_MTU":
			e.MTU, err = strconv.Atoi(v)
			if err == nil && e.MTU != 0 && (e.MTU < 68 || e.MTU > 65535) {
				err = fmt.Errorf("MTU %d out of range", e.MTU)
			}
		case "FLANNEL_IPMASQ":
			e.IPMasq, err = strconv.ParseBool(v)
		}
		if err != nil {
			return Env{}, fmt.Errorf("%w: line %d (%s): %v", ErrMalformed, n, k, err)
		}
	}
	if err := sc.Err(); err != nil {
		return Env{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !haveNet || !haveSubnet {
		return Env{}, fmt.Errorf("%w: FLANNEL_NETWORK and FLANNEL_SUBNET are required", ErrMalformed)
	}
	if !e.Network.Contains(e.Subnet.Addr()) || e.Subnet.Bits() < e.Network.Bits() {
		return Env{}, fmt.Errorf("%w: FLANNEL_SUBNET %s is not inside FLANNEL_NETWORK %s", ErrMalformed, e.Subnet, e.Network)
	}
	return e, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, err
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%s is not IPv4", s)
	}
	return p, nil
}
