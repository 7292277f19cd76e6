package rktdocs

import (
	"os"
	"strings"

	"github.com/cairn-os/cairn/internal/testenv"
)

// Cases of networking/overview.md, dns.md, examples-bridge.md and overriding-defaults.md.
func init() {
	cases["net/none"] = func(c *docCase) {
		// The documents' ping runs until ^C; here it sends one packet.
		r := c.interactive([]string{"run", "--interactive", "--net=none", "kinvolk.io/aci/busybox:1.24"},
			"ip address\nip route\nping -c 1 localhost\ncat /proc/sys/net/ipv4/ping_group_range\nexit\n")
		c.want(hasLine(r.out, `.*1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 .*`) && hasLine(r.out, `\s+inet 127\.0\.0\.1/8 scope host lo`) &&
			!hasLine(r.out, `.*\d+: (eth|veth)\S*: .*`), "ip address in a --net=none pod: %s", r)
		c.want(!hasLine(r.out, `.*(default|via) .*`), "routes in a --net=none pod: %s", r)
		// ping works through ICMP datagram sockets, which the pod's network namespace opens
		// to every group, without rkt's CAP_NET_RAW. Debian's busybox 1.35, the stand-in's,
		// only knows raw sockets: with it, ping needs the capability back.
		c.want(hasLine(r.out, "0\t2147483647"), "ICMP datagram sockets not open to every group: %s", r)
		if !hasLine(r.out, `64 bytes from 127\.0\.0\.1: seq=0 ttl=64 time=.*`) {
			c.differs("capabilities")
			c.want(strings.Contains(r.out, "ping: permission denied"), "ping localhost in a --net=none pod: %s", r)
			r = c.interactive([]string{"run", "--interactive", "--net=none", "kinvolk.io/aci/busybox:1.24", "--caps-retain=CAP_NET_RAW"},
				"ping -c 1 localhost\nexit\n")
			c.want(r.code == 0 && hasLine(r.out, `64 bytes from 127\.0\.0\.1: seq=0 ttl=64 time=.*`), "ping localhost with CAP_NET_RAW: %s", r)
		}
	}
	cases["net/bridge"] = func(c *docCase) {
		c.netConf("10-containers.conf", `{
	"name": "containers",
	"type": "bridge",
	"ipam": {
		"type": "host-local",
		"subnet": "10.1.0.0/16"
	}
}`)
		p := c.start("run", "--net=containers", "coreos.com/etcd:v2.0.0")
		p.await(etcdReady("2.0.0"))
		c.want(c.podAddr(p, "eth0") == "10.1.0.2/16", "the first pod's address")
		// The documents name the default bridge rkt0, but rkt ran the CNI bridge plugin, whose
		// default is cni0.
		c.want(c.bridge("cni0") == 1, "no bridge cni0 with the pod's veth on the host")
		c.stopNow(p)
		// The second configuration is another host's: host-local starts again from the
		// range's first address there.
		os.RemoveAll("/var/lib/cni/networks/containers")
		c.netConf("10-containers.conf", `{
	"name": "containers",
	"type": "bridge",
	"bridge": "rkt1",
	"ipam": {
		"type": "host-local",
		"subnet": "10.1.0.0/16"
	}
}`)
		first := c.start("run", "--net=containers", "coreos.com/etcd:v2.0.0")
		first.await(etcdReady("2.0.0"))
		next := c.start("run", "--net=containers", "coreos.com/etcd:v2.0.0")
		next.await(etcdReady("2.0.0"))
		a, b := c.podAddr(first, "eth0"), c.podAddr(next, "eth0")
		c.want(a == "10.1.0.2/16" && b == "10.1.0.3/16", "the pods' addresses: %s and %s", a, b)
		c.want(c.bridge("rkt1") == 2, "no bridge rkt1 with the two pods' veths on the host")
		c.stopNow(first)
		c.stopNow(next)
	}
	cases["net/ipvlan"] = func(c *docCase) {
		testenv.RequireFile(c.T, "/usr/lib/cni/ipvlan")
		// em1 is a veth of this test's host namespace.
		c.step("ip link add em1 type veth peer name em1-peer && ip link set em1 up && ip link set em1-peer up")
		defer c.sh("ip link del em1", opts{})
		probe := c.sh("ip link add link em1 name ipvlan-probe type ipvlan mode l3 && ip link del ipvlan-probe", opts{})
		if probe.code != 0 {
			// A kernel built without ipvlan (this machine's) is a limit of the machine, not a
			// missing package: skipped even under CI=true, where the same kernel runs.
			c.T.Skipf("the kernel has no ipvlan link type: %s", probe)
		}
		c.netConf("10-ipv6-public.conf", `{
    "name": "ipv6-public",
    "type": "ipvlan",
    "master": "em1",
    "mode": "l3",
    "ipam": {
        "type": "host-local",
        "subnet": "2001:0db8:161:8374::/64",
        "rangeStart": "2001:0db8:161:8374::1:2",
        "rangeEnd": "2001:0db8:161:8374::1:fffe",
        "gateway": "fe80::1",
        "routes": [
            { "dst": "::0/0" }
        ]
    }
}`)
		p := c.start("run", "--net=ipv6-public", "coreos.com/etcd:v2.0.0")
		p.await(etcdReady("2.0.0"))
		r := c.rkt("enter", p.uuid(), "/bin/sh", "-c", "ip -6 -o addr show dev eth0 scope global; ip -6 route show default")
		c.want(r.code == 0 && hasLine(r.out, `\d+: eth0\s+inet6 2001:db8:161:8374::1:2/64 .*`) && hasLine(r.out, `default (via fe80::1 )?dev eth0.*`),
			"the pod on the ipvlan network: %s", r)
		c.stopNow(p)
	}
	cases["net/plugin"] = func(c *docCase) {
		// Debian's build of the CNI plugin the documents build from source.
		b, err := os.ReadFile("/usr/lib/cni/loopback")
		if err != nil {
			c.Fatal(err)
		}
		c.writeFile("/usr/lib/rkt/plugins/net/loopback", string(b))
		os.Chmod("/usr/lib/rkt/plugins/net/loopback", 0o755)
		defer os.RemoveAll("/usr/lib/rkt/plugins")
		c.netConf("10-loopback.conf", `{
    "name": "loopback-test",
    "type": "loopback"
}`)
		r := c.interactive([]string{"--debug", "run", "--net=loopback-test", "--interactive", "kinvolk.io/aci/busybox", "--exec=ip", "--", "a"}, "")
		c.want(r.code == 0 && hasLine(r.out, `.*1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 .*`) && hasLine(r.out, `\s+inet 127\.0\.0\.1/8 scope host lo`) &&
			!hasLine(r.out, `.*\d+: (eth|veth)\S*: .*`), "ip a on loopback-test: %s", r)
		c.want(hasLine(r.out, `(?i).*loading network.*loopback-test.*loopback.*`), "--debug does not say it loads loopback-test with the loopback plugin: %s", r)
		// The documents' last line, "Container rkt-… exited successfully.", is systemd-nspawn's.
		c.differs("stage1")
	}
	cases["net/port"] = func(c *docCase) {
		p := c.start("run", "--port=http:8888", c.file("myapp.aci"))
		uuid := p.uuid()
		body, err := testenv.HTTPGet(c.ctx, "http://127.0.0.1:8888/")
		c.want(err == nil && body == "hello from myapp\n", "GET host port 8888: %q %v", body, err)
		// busybox httpd, the pod's first process, has no SIGTERM handler.
		r := c.rkt("stop", "--force", uuid)
		c.want(r.code == 0, "rkt stop --force: %s", r)
		p.wait()
	}
	cases["dns"] = func(c *docCase) {
		pod := c.file("pod.aci")
		r := c.rkt("run", "--dns=8.8.8.8", pod)
		c.want(r.code == 0 && hasLine(section(r.out, 0), "nameserver 8.8.8.8"), "--dns=8.8.8.8: %s", r)
		r = c.rkt("run", "--dns=8.8.8.8", "--dns=4.2.2.2", "--dns-domain=example.org", "--dns-opt=debug", "--dns-opt=rotate",
			"--dns-search=example.com", "--dns-search=example.gov", pod)
		c.want(r.code == 0 && matchLines(section(r.out, 0), "# Generated by rkt run", "search example.com example.gov", "nameserver 8.8.8.8",
			"nameserver 4.2.2.2", "options debug rotate", "domain example.org") == nil, "the generated resolv.conf: %s", r)
		// The documents' "..." is the image.
		r = c.rkt("run", pod, "--hosts-entry", "198.51.100.0=host1,198.51.100.1=host2", "--hosts-entry", "198.51.100.0=host3")
		hosts := lines(section(r.out, 1))
		c.want(r.code == 0 && len(hosts) > 2 && hasLine(section(r.out, 1), `127\.0\.0\.1\s+localhost.*`) &&
			strings.Join(strings.Fields(hosts[len(hosts)-2]), " ") == "198.51.100.0 host1 host3" &&
			strings.Join(strings.Fields(hosts[len(hosts)-1]), " ") == "198.51.100.1 host2", "/etc/hosts with --hosts-entry: %s", r)
	}
	cases["net/bridge-nat"] = func(c *docCase) {
		c.netConf("10-bridge-nat.conf", `{
    "name": "bridge-nat",
    "type": "bridge",
    "bridge": "rkt-bridge-nat",
    "ipMasq": true,
    "isGateway": true,
    "ipam": {
        "type": "host-local",
        "subnet": "10.2.0.0/24",
        "routes": [
                { "dst": "0.0.0.0/0" }
        ]
    }
}`)
		r := c.interactive([]string{"run", "--net=bridge-nat", "--interactive", "--debug", "kinvolk.io/aci/busybox:1.24"}, "ip -4 address\nip -4 route\nexit\n")
		c.want(r.code == 0 && hasLine(r.out, `.*\d+: eth0@if\d+: <BROADCAST,MULTICAST,UP,LOWER_UP(,M-DOWN)?> mtu 1500 qdisc noqueue.*`) &&
			hasLine(r.out, `\s+inet 10\.2\.0\.2/24 .*eth0`), "ip -4 address on bridge-nat: %s", r)
		c.want(hasLine(r.out, `.*default via 10\.2\.0\.1 dev eth0.*`) && hasLine(r.out, `10\.2\.0\.0/24 dev eth0 .*src 10\.2\.0\.2.*`), "ip -4 route on bridge-nat: %s", r)
		c.want(c.bridge("rkt-bridge-nat") >= 0, "no bridge rkt-bridge-nat on the host")
		// rkt added default-restricted (eth1, 172.16.28.0/24) to a pod without default.
		c.differs("networks")
		c.want(!strings.Contains(r.out, "172.16.28."), "a network the pod did not ask for: %s", r)
	}
	cases["net/args"] = func(c *docCase) {
		// The documents do not show net1's and net2's configurations: these hold the addresses asked for.
		c.netConf("10-net1.conf", `{"name": "net1", "type": "ptp", "ipam": {"type": "host-local", "subnet": "1.2.3.0/24"}}`)
		c.netConf("20-net2.conf", `{"name": "net2", "type": "ptp", "ipam": {"type": "host-local", "subnet": "1.2.4.0/24"}}`)
		pod := c.file("pod.aci")
		r := c.rkt("run", "--net=net1:IP=1.2.3.4", "--net=net2:IP=1.2.4.5", pod)
		addrs := section(r.out, 2)
		c.want(r.code == 0 && hasLine(addrs, `.* inet 1\.2\.3\.4/24 .*`) && hasLine(addrs, `.* inet 1\.2\.4\.5/24 .*`), "--net with arguments: %s", r)
		// all is every configured network and default (rkt's default-restricted is not added).
		c.differs("networks")
		r = c.rkt("run", "--net=all,net1:IP=1.2.3.4", "--net=net2:IP=1.2.4.5", pod)
		addrs = section(r.out, 2)
		c.want(r.code == 0 && hasLine(addrs, `.* inet 1\.2\.3\.4/24 .*`) && hasLine(addrs, `.* inet 1\.2\.4\.5/24 .*`) &&
			hasLine(addrs, `.* inet 172\.16\.28\.\d+/24 .*`), "--net=all with arguments: %s", r)
	}
}

// section is the i-th part of pod.aci's output (resolv.conf, hosts, addresses).
func section(out string, i int) string {
	parts := strings.Split(out, "---\n")
	if i < len(parts) {
		return parts[i]
	}
	return ""
}

// podAddr is the address (with its prefix length) of the interface of a running pod.
func (c *docCase) podAddr(p *pod, iface string) string {
	c.Helper()
	r := c.rkt("enter", p.uuid(), "/bin/sh", "-c", "ip -o -4 addr show dev "+iface)
	f := strings.Fields(r.out)
	for i := range f {
		if f[i] == "inet" && i+1 < len(f) {
			return f[i+1]
		}
	}
	c.Errorf("no address on %s: %s", iface, r)
	return ""
}

// stopNow stops a served pod before the case goes on.
func (c *docCase) stopNow(p *pod) {
	c.Helper()
	r := c.rkt("stop", p.uuid())
	c.want(r.code == 0, "rkt stop: %s", r)
	c.want(p.wait().code == 0, "the pod after rkt stop: %s", p.res)
}

// bridge is how many ports the host's bridge name has, -1 when there is no such bridge. (The
// test's /sys is the machine's network namespace's, so it asks ip.)
func (c *docCase) bridge(name string) int {
	c.Helper()
	if r := c.sh("ip -d link show "+name, opts{}); r.code != 0 || !strings.Contains(r.out, " bridge ") {
		return -1
	}
	return len(lines(c.step("ip -o link show master " + name).out))
}
