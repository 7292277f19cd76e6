package rktdocs

import (
	"os"
	"strings"
	"testing"
)

// kind is what an example shows.
type kind int

const (
	command kind = iota // a rkt command
	config              // a file rkt reads (a network or configuration file)
	setup               // another program's command that the example leads up to
)

// example is one example of rkt's documentation.
type example struct {
	doc  string // its file under rkt's Documentation/
	cmd  string // the command or file, as the document shows it (shortened with …)
	kind kind
	// kase is the replay case that runs it; empty when it cannot run offline.
	kase string
	// why says why it cannot run offline, and which test covers it instead.
	why string
}

// How an example's names resolve offline: `rkt run` and `rkt prepare` (pull policy new) find an
// appc name or docker:// reference in the store, where the replay's stand-ins were fetched
// first; an example whose subject is fetching or verifying an image fetches the file that
// discovery or the URL would have downloaded (its signature beside it), and a key URL becomes the
// key's file; local files (pod.aci, myapp.aci, ~/aci-pubkeys.gpg) are made by the replay. What
// needs the network by its nature (Docker Hub and quay.io, discovery of coreos.com or
// example.com, a DNS lookup on the Internet, a DHCP server) does not run here.
const (
	whyDockerHub  = "fetches from Docker Hub or quay.io; docker:// fetches are tested against an in-process registry by runtime/cli TestFetchDockerRegistry and runtime/fetch TestFetchDocker"
	whyDiscovery  = "needs meta discovery of coreos.com or example.com; discovery is tested on loopback by runtime/cli TestFetchDiscoveryAndURL and TestTrustFromURLAndDiscovery, and runtime/fetch TestFetchDiscovery"
	whyAttach     = "rkt attach to a pod's app: the app-level API's root tests (runtime/stage1 TestAttach, TestAppVerbs) attach by pipe and on a terminal"
	whySystemd    = "needs the host's systemd (machined, journald); runtime/stage1 TestSystemdUnit checks machinectl and journalctl -u on a pod unit"
	whyInternet   = "resolves and pings coreos.com on the Internet"
	whyDHCP       = "needs rkt's stage1 image (Cairn has none: its stage1 is built in) and a DHCP server on the LAN"
	whyFlannel    = "needs flanneld's subnet.env; runtime/stage1 TestPodNetworks/Flannel runs a pod on the flannel plugin"
	whyGoGet      = "downloads the CNI plugins' sources; the replay uses Debian's build of the same loopback plugin"
	whyCurl       = "downloads the key over https; the replay has the key's file"
	whyInteractiv = "gpg's interactive trust editor; gpg's trust database plays no part in rkt's checks"
)

var inventory = []example{
	// subcommands/run.md
	{doc: "subcommands/run.md", cmd: "rkt run coreos.com/etcd:v2.0.0", kase: "run/by-name"},
	{doc: "subcommands/run.md", cmd: "rkt run sha512-fa1cb92dc276b0f9bedf87981e61ecde", kase: "run/by-hash"},
	{doc: "subcommands/run.md", cmd: "rkt run https://github.com/coreos/etcd/releases/download/v2.0.0/etcd-v2.0.0-linux-amd64.aci", kase: "run/by-address"},
	{doc: "subcommands/run.md", cmd: "rkt --insecure-options=image run docker://quay.io/coreos/etcd:v2.0.0", kase: "run/docker"},
	{doc: "subcommands/run.md", cmd: "rkt run example.com/app1 example.com/app2", kase: "run/several-apps"},
	{doc: "subcommands/run.md", cmd: "rkt --insecure-options=image run docker://busybox --name=busybox1 docker://busybox --name=busybox2", kase: "run/name"},
	{doc: "subcommands/run.md", cmd: "rkt --insecure-options=image run docker://busybox --exec /bin/date", kase: "run/exec"},
	{doc: "subcommands/run.md", cmd: "rkt run coreos.com/etcd:v2.0.0 --cpu=750m --memory=128M", kase: "run/isolators"},
	{doc: "subcommands/run.md", cmd: "rkt --insecure-options=image run docker://busybox --user=1000 --group=100 --exec id", kase: "run/user-group"},
	{doc: "subcommands/run.md", cmd: "rkt run example.com/worker -- --loglevel verbose --- example.com/syncer -- --interval 30s", kase: "run/arguments"},
	{doc: "subcommands/run.md", cmd: "rkt run example.com/worker --exec /bin/ov -- --loglevel verbose --- example.com/syncer --exec /bin/syncer2 -- --interval 30s", kase: "run/arguments"},
	{doc: "subcommands/run.md", cmd: "rkt run example.com/example --user-annotation=foo=bar --user-label=hello=world", kase: "run/annotations"},
	{doc: "subcommands/run.md", cmd: "rkt run --inherit-env --set-env=FOO=bar --set-env=EXAMPLE_OVERRIDE=over example.com/env-printer", kase: "run/environment"},
	{doc: "subcommands/run.md", cmd: "rkt run --inherit-env --set-env=FOO=bar --set-env=EXAMPLE_OVERRIDE=over example.com/env-printer --environment=EXAMPLE_OVERRIDE=ride", kase: "run/environment"},
	{doc: "subcommands/run.md", cmd: "rkt --insecure-options=image run coreos.com/etcd:v2.0.0 (fetched, signature verification disabled)", kase: "run/insecure"},
	{doc: "subcommands/run.md", cmd: "example.com/app1's image manifest: mount point data at /var/data", kind: config, kase: "run/volume-host"},
	{doc: "subcommands/run.md", cmd: "rkt run --volume data,kind=host,source=/srv/data,readOnly=false example.com/app1", kase: "run/volume-host"},
	{doc: "subcommands/run.md", cmd: "rkt run --volume data,kind=host,source=/srv/data,readOnly=false,recursive=false example.com/app1", kase: "run/volume-host"},
	{doc: "subcommands/run.md", cmd: "rkt run --volume data,kind=empty,readOnly=false example.com/app1", kase: "run/volume-empty"},
	{doc: "subcommands/run.md", cmd: "rkt run --volume data,kind=empty,mode=0700,uid=0,gid=0", kase: "run/volume-empty"},
	{doc: "subcommands/run.md", cmd: "rkt run --volume logs,kind=host,source=/srv/logs example.com/app1 --mount volume=logs,target=/var/log example.com/app2 --mount volume=logs,target=/opt/log", kase: "run/mount"},
	{doc: "subcommands/run.md", cmd: "rkt run --volume logs,kind=host,source=/srv/logs --mount volume=data,target=/var/log example.com/app1 example.com/app2", kase: "run/mount"},
	{doc: "subcommands/run.md", cmd: "example.com/reduce-worker's image manifest: mount point work at /var/lib/work", kind: config, kase: "run/mapreduce"},
	{doc: "subcommands/run.md", cmd: "example.com/worker-backup's image manifest: mount point work at /backup, read-only", kind: config, kase: "run/mapreduce"},
	{doc: "subcommands/run.md", cmd: "rkt run --volume=work,kind=host,source=/opt/tenant1/work example.com/reduce-worker example.com/worker-backup", kase: "run/mapreduce"},
	{doc: "subcommands/run.md", cmd: "rkt run --volume=work,kind=host,source=/opt/tenant1/work example.com/reduce-worker --mount volume=work,target=/var/lib/work example.com/worker-backup --mount volume=work,target=/backup", kase: "run/mapreduce"},
	{doc: "subcommands/run.md", cmd: "rkt run --net=host coreos.com/etcd:v2.0.0", kase: "run/net-host"},
	{doc: "subcommands/run.md", cmd: "rkt --stage1-path=/tmp/stage1.aci run coreos.com/etcd:v2.0.0", kase: "run/stage1"},
	{doc: "subcommands/run.md", cmd: "rkt run --no-overlay=true --insecure-options=image coreos.com/etcd:v2.0.0", kase: "run/no-overlay"},

	// subcommands/prepare.md, run-prepared.md
	{doc: "subcommands/prepare.md", cmd: "rkt prepare --insecure-options=image docker://busybox --exec=/bin/sh", kase: "prepare"},
	{doc: "subcommands/prepare.md", cmd: "rkt prepare coreos.com/etcd:v2.0.10", kase: "prepare"},
	{doc: "subcommands/run-prepared.md", cmd: "rkt list (a prepared pod)", kase: "run-prepared"},
	{doc: "subcommands/run-prepared.md", cmd: "rkt run-prepared c9fad0e6", kase: "run-prepared"},

	// subcommands/list.md, status.md, stop.md, rm.md, gc.md, enter.md, export.md, cat-manifest.md
	{doc: "subcommands/list.md", cmd: "rkt list", kase: "list"},
	{doc: "subcommands/list.md", cmd: "rkt list --full", kase: "list"},
	{doc: "subcommands/status.md", cmd: "rkt status 66ceb509", kase: "status"},
	{doc: "subcommands/status.md", cmd: "rkt status --wait UUID", kase: "status/wait"},
	{doc: "subcommands/status.md", cmd: "rkt status --wait-ready UUID", kase: "status/wait"},
	{doc: "subcommands/status.md", cmd: "rkt status --wait=10s UUID", kase: "status/wait"},
	{doc: "subcommands/stop.md", cmd: "rkt stop 387fc8eb cbbf5c01", kase: "stop"},
	{doc: "subcommands/stop.md", cmd: "rkt stop --force 93e516b0", kase: "stop"},
	{doc: "subcommands/stop.md", cmd: "rkt run --uuid-file-save=/run/rkt-uuids/mypod ...", kase: "stop/uuid-file"},
	{doc: "subcommands/stop.md", cmd: "rkt stop --uuid-file=/run/rkt-uuids/mypod", kase: "stop/uuid-file"},
	{doc: "subcommands/rm.md", cmd: "rkt rm c138310f", kase: "rm"},
	{doc: "subcommands/rm.md", cmd: "rkt run --uuid-file-save=/run/rkt-uuids/mypod ...", kase: "rm"},
	{doc: "subcommands/rm.md", cmd: "rkt rm --uuid-file=/run/rkt-uuids/mypod", kase: "rm"},
	{doc: "subcommands/gc.md", cmd: "rkt gc --grace-period=30m0s (moves exited pods to garbage)", kase: "gc"},
	{doc: "subcommands/gc.md", cmd: "rkt gc --grace-period=30m0s (the next pass collects them)", kase: "gc"},
	{doc: "subcommands/enter.md", cmd: "rkt enter 76dc6286 (a pod of two apps)", kase: "enter"},
	{doc: "subcommands/enter.md", cmd: "rkt enter --app=redis 76dc6286", kase: "enter"},
	{doc: "subcommands/export.md", cmd: "rkt export UUID .aci", kase: "export"},
	{doc: "subcommands/cat-manifest.md", cmd: "rkt cat-manifest UUID", kase: "cat-manifest"},
	{doc: "subcommands/version.md", cmd: "rkt version", kase: "version"},

	// subcommands/image.md
	{doc: "subcommands/image.md", cmd: "rkt image cat-manifest coreos.com/etcd", kase: "image/cat-manifest"},
	{doc: "subcommands/image.md", cmd: "rkt image export coreos.com/etcd etcd.aci", kase: "image/export"},
	{doc: "subcommands/image.md", cmd: "tar xvf etcd.aci", kind: setup, kase: "image/export"},
	{doc: "subcommands/image.md", cmd: "rkt image extract coreos.com/etcd etcd-extracted", kase: "image/extract"},
	{doc: "subcommands/image.md", cmd: "find etcd-extracted", kind: setup, kase: "image/extract"},
	{doc: "subcommands/image.md", cmd: "rkt image extract --rootfs-only coreos.com/etcd etcd-extracted", kase: "image/extract"},
	{doc: "subcommands/image.md", cmd: "rkt image gc --grace-period 48h", kase: "image/gc"},
	{doc: "subcommands/image.md", cmd: "rkt image list", kase: "image/list"},
	{doc: "subcommands/image.md", cmd: "rkt image list --full", kase: "image/list"},
	{doc: "subcommands/image.md", cmd: "rkt image rm sha512-a03f6bad952b coreos.com/etcd", kase: "image/rm"},
	{doc: "subcommands/image.md", cmd: "rkt image verify quay.io/coreos/etcd:v3.1.0 sha512-887890e697d9", kase: "image/verify"},

	// subcommands/fetch.md
	{doc: "subcommands/fetch.md", cmd: "rkt fetch coreos.com/etcd:v2.0.0 (publisher trusted)", kase: "fetch"},
	{doc: "subcommands/fetch.md", cmd: "rkt fetch coreos.com/etcd:v2.0.0 (publisher not trusted)", kase: "fetch"},
	{doc: "subcommands/fetch.md", cmd: "rkt fetch https://github.com/coreos/etcd/releases/download/v2.0.0/etcd-v2.0.0-linux-amd64.aci", kase: "fetch"},
	{doc: "subcommands/fetch.md", cmd: "rkt --insecure-options=image fetch docker://busybox", why: whyDockerHub},

	// subcommands/trust.md
	{doc: "subcommands/trust.md", cmd: "rkt trust --prefix=storage.coreos.com", why: whyDiscovery},
	{doc: "subcommands/trust.md", cmd: "rkt trust --prefix=coreos.com/etcd", why: whyDiscovery},
	{doc: "subcommands/trust.md", cmd: "rkt trust --root ~/aci-pubkeys.gpg", kase: "trust"},
	{doc: "subcommands/trust.md", cmd: "rkt trust --prefix=coreos.com/etcd (the key found by discovery, reviewed)", why: whyDiscovery},
	{doc: "subcommands/trust.md", cmd: "rkt trust --prefix=coreos.com (no meta tags)", why: whyDiscovery},
	{doc: "subcommands/trust.md", cmd: "rkt trust --prefix=coreos.com/etcd https://coreos.com/dist/pubkeys/aci-pubkeys.gpg", kase: "trust"},
	{doc: "subcommands/trust.md", cmd: "find /etc/rkt/trustedkeys/", kind: setup, kase: "trust"},

	// subcommands/config.md
	{doc: "subcommands/config.md", cmd: "/etc/rkt/auth.d/basic.json and ~/.config/rkt/auth.d/basic.json", kind: config, kase: "config"},
	{doc: "subcommands/config.md", cmd: "rkt config (the system and user entries merged)", kase: "config"},
	{doc: "subcommands/config.md", cmd: "rkt config", kase: "config"},

	// subcommands/attach.md
	{doc: "subcommands/attach.md", cmd: "rkt run quay.io/coreos/alpine-sh --stdin tty --stdout tty --stderr tty", why: whyAttach},
	{doc: "subcommands/attach.md", cmd: "rkt attach --mode tty ${UUID}", why: whyAttach},
	{doc: "subcommands/attach.md", cmd: "rkt run quay.io/coreos/alpine-sh --stdin stream --stdout stream --stderr stream", why: whyAttach},
	{doc: "subcommands/attach.md", cmd: "rkt attach --mode stdin,stdout,stderr ${UUID}", why: whyAttach},
	{doc: "subcommands/attach.md", cmd: "rkt attach --app alpine-sh --mode list 846c35db", why: whyAttach},
	{doc: "subcommands/attach.md", cmd: "echo 'hostname; fakecmd' | rkt attach --app alpine-sh --mode auto ${UUID}", why: whyAttach},
	{doc: "subcommands/attach.md", cmd: "echo 'hostname; fakecmd' | rkt attach --app alpine-sh --mode stdin,stdout ${UUID}", why: whyAttach},
	{doc: "subcommands/attach.md", cmd: "echo 'hostname; fakecmd' | rkt attach --app alpine-sh --mode stdin,stderr ${UUID}", why: whyAttach},

	// networking/overview.md
	{doc: "networking/overview.md", cmd: "rkt run --interactive --net=none kinvolk.io/aci/busybox:1.24 (ip address, ip route, ping localhost)", kase: "net/none"},
	{doc: "networking/overview.md", cmd: "/etc/rkt/net.d/10-containers.conf (bridge, host-local 10.1.0.0/16)", kind: config, kase: "net/bridge"},
	{doc: "networking/overview.md", cmd: "/etc/rkt/net.d/10-containers.conf (bridge rkt1: the first pod 10.1.0.2/16, the next 10.1.0.3/16)", kind: config, kase: "net/bridge"},
	{doc: "networking/overview.md", cmd: "ipv6-public (ipvlan l3 on em1, host-local IPv6 range)", kind: config, kase: "net/ipvlan"},
	{doc: "networking/overview.md", cmd: "rkt fetch --insecure-options=image ./stage1.aci; rkt image extract coreos.com/rkt/stage1 /tmp/stage1", why: whyDHCP},
	{doc: "networking/overview.md", cmd: "./dhcp daemon", kind: setup, why: whyDHCP},
	{doc: "networking/overview.md", cmd: "lan (macvlan on eth0, ipam dhcp)", kind: config, why: whyDHCP},
	{doc: "networking/overview.md", cmd: "containers (type flannel)", kind: config, why: whyFlannel},
	{doc: "networking/overview.md", cmd: "go get -d github.com/containernetworking/plugins; go build; cp loopback /usr/lib/rkt/plugins/net", kind: setup, why: whyGoGet},
	{doc: "networking/overview.md", cmd: "/etc/rkt/net.d/10-loopback.conf", kind: config, kase: "net/plugin"},
	{doc: "networking/overview.md", cmd: "rkt --debug run --net=loopback-test --interactive kinvolk.io/aci/busybox --exec=ip -- a", kase: "net/plugin"},
	{doc: "networking/overview.md", cmd: "an image manifest's ports: http, 80, tcp", kind: config, kase: "net/port"},
	{doc: "networking/overview.md", cmd: "rkt run --port=http:8888 myapp.aci", kase: "net/port"},

	// networking/dns.md, examples-bridge.md, overriding-defaults.md
	{doc: "networking/dns.md", cmd: "rkt run --dns=8.8.8.8 pod.aci", kase: "dns"},
	{doc: "networking/dns.md", cmd: "rkt run --dns=8.8.8.8 --dns=4.2.2.2 --dns-domain=example.org --dns-opt=debug --dns-opt=rotate --dns-search=example.com --dns-search=example.gov pod.aci", kase: "dns"},
	{doc: "networking/dns.md", cmd: "rkt run ... --hosts-entry 198.51.100.0=host1,198.51.100.1=host2 --hosts-entry 198.51.100.0=host3", kase: "dns"},
	{doc: "networking/dns.md", cmd: "rkt run --net=host --dns=8.8.8.8 quay.io/coreos/alpine-sh --exec=/bin/ping --interactive -- -c 1 coreos.com", why: whyInternet},
	{doc: "networking/examples-bridge.md", cmd: "/etc/rkt/net.d/10-bridge-nat.conf", kind: config, kase: "net/bridge-nat"},
	{doc: "networking/examples-bridge.md", cmd: "rkt run --net=bridge-nat --interactive --debug kinvolk.io/aci/busybox:1.24 (ip -4 address, ip -4 route)", kase: "net/bridge-nat"},
	{doc: "networking/overriding-defaults.md", cmd: `rkt run --net="net1:IP=1.2.3.4" --net="net2:IP=1.2.4.5" pod.aci`, kase: "net/args"},
	{doc: "networking/overriding-defaults.md", cmd: `rkt run --net="all,net1:IP=1.2.3.4" --net="net2:IP=1.2.4.5" pod.aci`, kase: "net/args"},

	// commands.md
	{doc: "commands.md", cmd: "machinectl", kind: setup, why: whySystemd},
	{doc: "commands.md", cmd: "rkt list --full (etcd and a Docker redis)", kase: "commands/list"},
	{doc: "commands.md", cmd: "journalctl -M rkt-UUID", kind: setup, why: whySystemd},
	{doc: "commands.md", cmd: "journalctl -M rkt-UUID -t etcd; journalctl -M rkt-UUID -t redis", kind: setup, why: whySystemd},
	{doc: "commands.md", cmd: "journalctl -m _MACHINE_ID=…", kind: setup, why: whySystemd},

	// running-docker-images.md
	{doc: "running-docker-images.md", cmd: "rkt --insecure-options=image run docker://redis", kase: "docker"},
	{doc: "running-docker-images.md", cmd: "rkt --insecure-options=image fetch docker://quay.io/zanui/nginx", why: whyDockerHub},
	{doc: "running-docker-images.md", cmd: "rkt --insecure-options=image run sha512-c6d6efd98f506380ff128e473ca239ed", kase: "docker"},

	// signing-and-verification-guide.md
	{doc: "signing-and-verification-guide.md", cmd: "gpg --batch --gen-key gpg-batch", kind: setup, kase: "signing"},
	{doc: "signing-and-verification-guide.md", cmd: "gpg --no-default-keyring --secret-keyring ./rkt.sec --keyring ./rkt.pub --list-keys", kind: setup, kase: "signing"},
	{doc: "signing-and-verification-guide.md", cmd: "gpg ... --edit-key 26EF7A14 trust", kind: setup, why: whyInteractiv},
	{doc: "signing-and-verification-guide.md", cmd: "gpg ... --armor --export carly@example.com > pubkeys.gpg", kind: setup, kase: "signing"},
	{doc: "signing-and-verification-guide.md", cmd: "gpg ... --armor --output hello-0.0.1-linux-amd64.aci.asc --detach-sig hello-0.0.1-linux-amd64.aci", kind: setup, kase: "signing"},
	{doc: "signing-and-verification-guide.md", cmd: "gpg ... --verify hello-0.0.1-linux-amd64.aci.asc hello-0.0.1-linux-amd64.aci", kind: setup, kase: "signing"},
	{doc: "signing-and-verification-guide.md", cmd: "rkt run example.com/hello:0.0.1 (the URIs discovery retrieves)", why: whyDiscovery},
	{doc: "signing-and-verification-guide.md", cmd: "/usr/lib/rkt/trustedkeys/prefix.d/coreos.com/a175e31de7e3c5b9d2c4603e4dfb22bf75ef7a23, masked by an empty file of that name under /etc/rkt", kind: config, kase: "signing/mask"},
	{doc: "signing-and-verification-guide.md", cmd: "rkt trust --prefix=example.com/hello https://example.com/pubkeys.gpg", kase: "signing"},
	{doc: "signing-and-verification-guide.md", cmd: "curl -O https://example.com/pubkeys.gpg", kind: setup, why: whyCurl},
	{doc: "signing-and-verification-guide.md", cmd: "gpg --no-default-keyring --with-fingerprint --keyring ./pubkeys.gpg carly@example.com", kind: setup, kase: "signing"},
	{doc: "signing-and-verification-guide.md", cmd: `echo "B346 …" | tr -d "[:space:]" | tr '[:upper:]' '[:lower:]'`, kind: setup, kase: "signing"},
	{doc: "signing-and-verification-guide.md", cmd: "mkdir -p /etc/rkt/trustedkeys/prefix.d/example.com/hello; mv pubkeys.gpg …/b346e31de7e3c6f9d1d4603f4dfb61bf26ef7a14", kind: setup, kase: "signing"},
	{doc: "signing-and-verification-guide.md", cmd: "rkt run example.com/hello:0.0.1 (verified)", kase: "signing"},
	{doc: "signing-and-verification-guide.md", cmd: "rkt --insecure-options=image run example.com/hello:0.0.1", kase: "signing"},
	{doc: "signing-and-verification-guide.md", cmd: "rkt fetch example.com/hello:0.0.1", kase: "signing"},
	{doc: "signing-and-verification-guide.md", cmd: "rkt --insecure-options=image fetch example.com/hello:0.0.1", kase: "signing"},
}

// differences are the ways Cairn differs from rkt's documentation on purpose, each named by words
// of its entry in README.md's "Compatibility, and where Cairn differs" list. A case that meets
// one checks Cairn's behaviour instead of the document's and says which difference it met.
var differences = map[string]string{
	"capabilities":  "**Default capabilities** are runc's",
	"networks":      "no `default-restricted` added behind the user's back",
	"stage1":        "**Stage1 is built in**",
	"docker-images": "**Docker and OCI images** are stored as they are",
	"enter":         "**`rkt enter`** runs `/bin/sh`",
}

// readme is the top-level README.md, its whitespace folded so that wrapped lines match.
func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

// TestInventory checks the inventory's shape: each example either has a case or says why it
// has none, and every intended difference is in the README.
func TestInventory(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range inventory {
		if e.doc == "" || e.cmd == "" {
			t.Errorf("example without document or command: %+v", e)
		}
		if (e.kase == "") == (e.why == "") {
			t.Errorf("%s: %q: an example has either a case or a reason it cannot run offline", e.doc, e.cmd)
		}
		if seen[e.doc+"\x00"+e.cmd] {
			t.Errorf("%s: %q listed twice", e.doc, e.cmd)
		}
		seen[e.doc+"\x00"+e.cmd] = true
	}
	text := readme(t)
	for name, words := range differences {
		if !strings.Contains(text, words) {
			t.Errorf("difference %s: README.md's compatibility list has no %q", name, words)
		}
	}
	n := countExamples(nil)
	t.Logf("%d examples of rkt commands and files, %d of them runnable offline (in %d cases); %d other programs' commands",
		n.examples, n.offline, len(caseNames()), n.setup)
}

// counts are the inventory's numbers, and the replay's once it has run.
type counts struct {
	examples, offline, setup int // rkt commands and files; those with a case; other programs' commands
	pass, intended           int // examples whose case passed; of them, those through an intended difference
	skipped                  int // examples whose case was skipped (a prerequisite missing)
}

// outcome is how a case ended.
type outcome struct {
	passed, skipped bool
	diffs           []string // the differences it met
}

// countExamples counts the inventory, and the examples that passed when outcomes are known.
func countExamples(outcomes map[string]*outcome) counts {
	var n counts
	for _, e := range inventory {
		if e.kind == setup {
			n.setup++
			continue
		}
		n.examples++
		if e.kase == "" {
			continue
		}
		n.offline++
		switch o := outcomes[e.kase]; {
		case o == nil:
		case o.skipped:
			n.skipped++
		case o.passed:
			n.pass++
			if len(o.diffs) > 0 {
				n.intended++
			}
		}
	}
	return n
}

// caseNames are the cases the inventory names, in its order.
func caseNames() []string {
	var names []string
	seen := map[string]bool{}
	for _, e := range inventory {
		if e.kase != "" && !seen[e.kase] {
			seen[e.kase] = true
			names = append(names, e.kase)
		}
	}
	return names
}
