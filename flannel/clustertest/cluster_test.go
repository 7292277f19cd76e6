//go:build linux

package clustertest

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/flannel/subnetenv"
	"github.com/cairn-os/cairn/internal/testenv"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// newCluster builds flanneld once per test binary and makes a cluster with doc as config.
func newCluster(t *testing.T, doc string) *Cluster {
	t.Helper()
	testenv.SkipShort(t, "cluster tests start etcd and flanneld processes")
	Require(t)
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "flanneld-bin-")
		if binErr == nil {
			binPath, binErr = BuildFlanneld(binDir)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	c := New(t, binPath)
	if doc != "" {
		c.SetConfig(doc)
	}
	return c
}

const netDoc = `{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}`

// startHosts starts n hosts and returns them with their subnet.env and endpoint address.
func startHosts(t *testing.T, c *Cluster, n int, args ...string) ([]*Host, []subnetenv.Env, []netip.Addr) {
	t.Helper()
	var hs []*Host
	for range n {
		hs = append(hs, c.AddHost(args...))
	}
	for _, h := range hs {
		h.Start()
	}
	envs := make([]subnetenv.Env, n)
	eps := make([]netip.Addr, n)
	for i, h := range hs {
		envs[i] = h.WaitEnv(30 * time.Second)
		eps[i] = h.AddEndpoint(envs[i])
	}
	return hs, envs, eps
}

func pingAll(t *testing.T, hs []*Host, eps []netip.Addr, within time.Duration) {
	t.Helper()
	for i, h := range hs {
		for j := range hs {
			if i == j {
				continue
			}
			Eventually(t, within, fmt.Sprintf("%s -> %s through the overlay", eps[i], eps[j]), func() error {
				out, err := h.Ping(eps[i], eps[j], 1, "0.2")
				if err != nil {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			})
		}
	}
}

// Scenario 1: three hosts, distinct subnets, subnet.env right, every endpoint pings every other.
func TestThreeHostsOverlay(t *testing.T) {
	t.Parallel()
	c := newCluster(t, netDoc)
	// Another writer's garbage must not stop anyone.
	if _, err := c.Client().Put(t.Context(), Prefix+"/subnets/10.5.250.0-24", `{"PublicIP":`); err != nil {
		t.Fatal(err)
	}
	hs, envs, eps := startHosts(t, c, 3)
	seen := map[netip.Prefix]bool{}
	for i, e := range envs {
		if seen[e.Subnet] {
			t.Fatalf("duplicate subnet %s", e.Subnet)
		}
		seen[e.Subnet] = true
		if e.Network != netip.MustParsePrefix("10.5.0.0/16") || e.Subnet.Bits() != 24 || e.MTU != 1450 || e.IPMasq {
			t.Fatalf("host %d subnet.env = %+v", i+1, e)
		}
		if e.Subnet == netip.MustParsePrefix("10.5.250.0/24") {
			t.Fatalf("host %d took a subnet whose key exists", i+1)
		}
	}
	pingAll(t, hs, eps, 10*time.Second)
	// The device as stock flannel makes it.
	out := hs[0].MustExec("ip", "-d", "link", "show", "flannel.1")
	for _, want := range []string{"vxlan id 1", "dstport 8472", "nolearning", "mtu 1450"} {
		if !strings.Contains(out, want) {
			t.Errorf("flannel.1 lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(hs[0].Log(), "ignoring lease") {
		t.Errorf("no warning about the corrupt lease in the log")
	}
}
