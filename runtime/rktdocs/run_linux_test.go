package rktdocs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Cases of subcommands/run.md.
func init() {
	cases["run/by-name"] = func(c *docCase) {
		c.serve(etcdReady("2.0.0"), "run", "coreos.com/etcd:v2.0.0")
	}
	cases["run/by-hash"] = func(c *docCase) {
		// The documents run an image by the first 32 hex digits of its ID, as rkt fetch prints it.
		id := c.imageID("coreos.com/etcd:v2.0.0")
		c.serve(etcdReady("2.0.0"), "run", id[:len("sha512-")+32])
	}
	cases["run/by-address"] = func(c *docCase) {
		// The ACI's address is its file here (file://, rkt's local transport), the signature beside it.
		aci := c.file("etcd-v2.0.0-linux-amd64.aci")
		c.serve(etcdReady("2.0.0"), "run", "file://"+filepath.Join(c.cwd, aci))
	}
	cases["run/docker"] = func(c *docCase) {
		c.serve(etcdReady("2.0.0"), "--insecure-options=image", "run", "docker://quay.io/coreos/etcd:v2.0.0")
	}
	cases["run/several-apps"] = func(c *docCase) {
		r := c.rkt("run", "example.com/app1", "example.com/app2")
		// app1's mount point "data" gets an implicit empty volume: rkt's 0755, root's.
		c.wantSorted(r, "app1 /var/data rw 755 0:0", "app1 /var/log none", "app2 /opt/log none", "app2 /var/log none")
	}
	cases["run/name"] = func(c *docCase) {
		uuid, r := c.runSaved("--insecure-options=image", "run", "docker://busybox", "--name=busybox1", "docker://busybox", "--name=busybox2")
		c.want(r.code == 0, "two busybox apps: %s", r)
		if m := c.podManifest(uuid); len(m.Apps) != 2 || m.Apps[0].Name != "busybox1" || m.Apps[1].Name != "busybox2" {
			c.Errorf("apps of the pod: %+v", m.Apps)
		}
	}
	cases["run/exec"] = func(c *docCase) {
		r := c.rkt("--insecure-options=image", "run", "docker://busybox", "--exec", "/bin/date")
		c.want(r.code == 0 && matchLines(r.out, `\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \w+ \d{4}`) == nil, "busybox's date: %s", r)
	}
	cases["run/isolators"] = func(c *docCase) {
		p := c.serve(etcdReady("2.0.0"), "run", "coreos.com/etcd:v2.0.0", "--cpu=750m", "--memory=128M")
		want := map[string]string{"resource/cpu": `{"limit":"750m"}`, "resource/memory": `{"limit":"128M"}`}
		m := c.podManifest(p.uuid())
		if len(m.Apps) == 1 && m.Apps[0].App != nil {
			for _, iso := range m.Apps[0].App.Isolators {
				var v struct{ Limit string }
				json.Unmarshal(iso.Value, &v)
				if w, ok := want[iso.Name]; ok && w == `{"limit":"`+v.Limit+`"}` {
					delete(want, iso.Name)
				}
			}
		}
		c.want(len(want) == 0, "isolators missing from the pod manifest: %v", want)
		// 128M in the Kubernetes resource model is 128,000,000 bytes.
		r := c.rkt("enter", p.uuid(), "/bin/sh", "-c", "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
		c.want(r.code == 0 && r.out == "128000000\n", "the app's memory limit: %s", r)
	}
	cases["run/user-group"] = func(c *docCase) {
		r := c.rkt("--insecure-options=image", "run", "docker://busybox", "--user=1000", "--group=100", "--exec", "id")
		c.want(r.code == 0 && matchLines(r.out, `uid=1000 gid=100\(users\)( groups=.*)?`) == nil, "id as 1000:100: %s", r)
	}
	cases["run/arguments"] = func(c *docCase) {
		r := c.rkt("run", "example.com/worker", "--", "--loglevel", "verbose", "---", "example.com/syncer", "--", "--interval", "30s")
		c.wantSorted(r, "syncer --interval 30s", "worker --loglevel verbose")
		r = c.rkt("run", "example.com/worker", "--exec", "/bin/ov", "--", "--loglevel", "verbose", "---",
			"example.com/syncer", "--exec", "/bin/syncer2", "--", "--interval", "30s")
		c.wantSorted(r, "ov --loglevel verbose", "syncer2 --interval 30s")
	}
	cases["run/annotations"] = func(c *docCase) {
		uuid, r := c.runSaved("run", "example.com/example", "--user-annotation=foo=bar", "--user-label=hello=world")
		c.want(r.code == 0 && r.out == "example\n", "run: %s", r)
		m := c.podManifest(uuid)
		if len(m.Apps) != 1 || m.Apps[0].App == nil ||
			m.Apps[0].App.UserAnnotations["foo"] != "bar" || m.Apps[0].App.UserLabels["hello"] != "world" {
			c.Errorf("the app's user annotations and labels: %+v", m.Apps)
		}
	}
	cases["run/environment"] = func(c *docCase) {
		env := opts{env: []string{"EXAMPLE_ENV=hello", "EXAMPLE_OVERRIDE=under"}}
		r := c.rktWith(env, "run", "--inherit-env", "--set-env=FOO=bar", "--set-env=EXAMPLE_OVERRIDE=over", "example.com/env-printer")
		c.want(r.code == 0 && r.out == "EXAMPLE_ENV=hello\nFOO=bar\nEXAMPLE_OVERRIDE=over\n", "environment: %s", r)
		r = c.rktWith(env, "run", "--inherit-env", "--set-env=FOO=bar", "--set-env=EXAMPLE_OVERRIDE=over", "example.com/env-printer",
			"--environment=EXAMPLE_OVERRIDE=ride")
		c.want(r.code == 0 && r.out == "EXAMPLE_ENV=hello\nFOO=bar\nEXAMPLE_OVERRIDE=ride\n", "environment with --environment: %s", r)
	}
	cases["run/insecure"] = func(c *docCase) {
		// What discovery would download, as a file: the check is skipped, and rkt says so.
		p := c.serve(etcdReady("2.0.0"), "--insecure-options=image", "run", c.file("etcd-v2.0.0-linux-amd64.aci"))
		c.want(hasLine(p.errb.String(), `(?i).*signature verification (has been|is) disabled.*`), "no warning that the check is off: %q", p.errb.String())
	}
	cases["run/volume-host"] = func(c *docCase) {
		src := "/srv/data"
		c.mkdir(src)
		// A mount below the source, which only a recursive volume shows.
		c.mkdir(src + "/sub")
		if err := unix.Mount("tmpfs", src+"/sub", "tmpfs", 0, ""); err != nil {
			c.Fatal(err)
		}
		defer unix.Unmount(src+"/sub", unix.MNT_DETACH)
		os.WriteFile(src+"/sub/marker", nil, 0o644)
		r := c.rkt("run", "--volume", "data,kind=host,source=/srv/data,readOnly=false", "example.com/app1")
		c.wantSorted(r, "app1 /var/data rw 755 0:0 submount", "app1 /var/log none")
		if _, err := os.Stat(src + "/app1"); err != nil {
			c.Errorf("app1 wrote nothing in the host's /srv/data: %v", err)
		}
		r = c.rkt("run", "--volume", "data,kind=host,source=/srv/data,readOnly=false,recursive=false", "example.com/app1")
		c.wantSorted(r, "app1 /var/data rw 755 0:0", "app1 /var/log none")
	}
	cases["run/volume-empty"] = func(c *docCase) {
		r := c.rkt("run", "--volume", "data,kind=empty,readOnly=false", "example.com/app1")
		c.wantSorted(r, "app1 /var/data rw 755 0:0", "app1 /var/log none")
		// The documents' command names no image; the text says it is for app1's /var/data.
		r = c.rkt("run", "--volume", "data,kind=empty,mode=0700,uid=0,gid=0", "example.com/app1")
		c.wantSorted(r, "app1 /var/data rw 700 0:0", "app1 /var/log none")
	}
	cases["run/mount"] = func(c *docCase) {
		c.mkdir("/srv/logs")
		r := c.rkt("run", "--volume", "logs,kind=host,source=/srv/logs",
			"example.com/app1", "--mount", "volume=logs,target=/var/log",
			"example.com/app2", "--mount", "volume=logs,target=/opt/log")
		c.wantSorted(r, "app1 /var/data rw 755 0:0", "app1 /var/log rw 755 0:0", "app2 /opt/log rw 755 0:0", "app2 /var/log none")
		for _, f := range []string{"app1", "app2"} {
			if _, err := os.Stat("/srv/logs/" + f); err != nil {
				c.Errorf("%s wrote nothing in the host's /srv/logs: %v", f, err)
			}
		}
		// The documents' pod-level --mount names a volume "data" that the command does not
		// define: rkt's stage1 failed with "could not find volume data"; Cairn refuses before
		// the pod exists. With the volume the text means (logs), both apps get /srv/logs.
		before := c.podUUIDs()
		r = c.rkt("run", "--volume", "logs,kind=host,source=/srv/logs", "--mount", "volume=data,target=/var/log", "example.com/app1", "example.com/app2")
		c.want(r.code != 0 && strings.Contains(r.err, "volume=data"), "a mount of an undefined volume: %s", r)
		c.want(slices.Equal(c.podUUIDs(), before), "the refused command left a pod")
		r = c.rkt("run", "--volume", "logs,kind=host,source=/srv/logs", "--mount", "volume=logs,target=/var/log", "example.com/app1", "example.com/app2")
		c.wantSorted(r, "app1 /var/data rw 755 0:0", "app1 /var/log rw 755 0:0", "app2 /opt/log none", "app2 /var/log rw 755 0:0")
	}
	cases["run/mapreduce"] = func(c *docCase) {
		work := "/opt/tenant1/work"
		c.mkdir(work)
		r := c.rkt("run", "--volume=work,kind=host,source=/opt/tenant1/work", "example.com/reduce-worker", "example.com/worker-backup")
		c.wantSorted(r, "reduce-worker wrote /var/lib/work/out", "worker-backup /backup ro", "worker-backup read reduced")
		if b, _ := os.ReadFile(work + "/out"); string(b) != "reduced\n" {
			c.Errorf("the host's %s/out: %q", work, b)
		}
		// Images without mount points: --mount gives both the volume, read-write.
		c.fresh("reduce-worker-nomp.aci", "worker-backup-nomp.aci")
		os.Remove(work + "/out")
		r = c.rkt("run", "--volume=work,kind=host,source=/opt/tenant1/work",
			"example.com/reduce-worker", "--mount", "volume=work,target=/var/lib/work",
			"example.com/worker-backup", "--mount", "volume=work,target=/backup")
		c.wantSorted(r, "reduce-worker wrote /var/lib/work/out", "worker-backup /backup rw", "worker-backup read reduced")
	}
	cases["run/net-host"] = func(c *docCase) {
		// An interface that only the host (this test's network namespace) has.
		c.step("ip link add hostdummy0 type veth peer name hostdummy1")
		defer c.sh("ip link del hostdummy0", opts{})
		p := c.serve(etcdReady("2.0.0"), "run", "--net=host", "coreos.com/etcd:v2.0.0")
		r := c.rkt("enter", p.uuid(), "/bin/cat", "/proc/net/dev")
		c.want(r.code == 0 && strings.Contains(r.out, "hostdummy0:"), "the pod does not see the host's interfaces: %s", r)
	}
	cases["run/stage1"] = func(c *docCase) {
		// Cairn's stage1 is built in: there is no stage1 image to choose.
		c.differs("stage1")
		r := c.rkt("--stage1-path=/tmp/stage1.aci", "run", "coreos.com/etcd:v2.0.0")
		c.want(r.code == 254 && strings.Contains(r.err, "--stage1-path") && strings.Contains(r.err, "built in"), "--stage1-path: %s", r)
		c.want(len(c.podUUIDs()) == 0, "the refused command left a pod")
	}
	cases["run/no-overlay"] = func(c *docCase) {
		p := c.serve(etcdReady("2.0.0"), "run", "--no-overlay=true", "--insecure-options=image", "coreos.com/etcd:v2.0.0")
		mi, _ := os.ReadFile("/proc/self/mountinfo")
		for l := range strings.SplitSeq(string(mi), "\n") {
			if strings.Contains(l, p.uuid()) && strings.Contains(l, " - overlay ") {
				c.Errorf("an overlay mount for a --no-overlay pod: %s", l)
			}
		}
	}
}

// etcdReady is what the etcd stand-in prints once it serves.
func etcdReady(version string) string {
	return `etcd: version ` + strings.ReplaceAll(version, ".", `\.`)
}

// serve runs a stand-in server as the example says, waits until it says it is ready, and then
// stops the pod with rkt stop: the server exits 0 on SIGTERM, and so does rkt run.
func (c *docCase) serve(ready string, args ...string) *pod {
	c.Helper()
	p := c.start(args...)
	p.await(ready)
	c.stopAtEnd(p, p.uuid())
	return p
}

// stopAtEnd registers the stop that ends a served pod when the case's checks are done.
func (c *docCase) stopAtEnd(p *pod, uuid string) {
	c.stops = append(c.stops, func() {
		r := c.rkt("stop", uuid)
		c.want(r.code == 0 && r.out == `"`+uuid+`"`+"\n", "rkt stop: %s", r)
		res := p.wait()
		c.want(res.code == 0, "the served pod after rkt stop: %s", res)
	})
}

// runSaved runs a pod to its end and returns its UUID (saved with --uuid-file-save).
func (c *docCase) runSaved(args ...string) (string, result) {
	c.Helper()
	f := filepath.Join(c.TempDir(), "uuid")
	i := slices.Index(args, "run")
	r := c.rkt(slices.Insert(slices.Clone(args), i+1, "--uuid-file-save="+f)...)
	b, _ := os.ReadFile(f)
	return strings.TrimSpace(string(b)), r
}

// want fails the case with a divergence unless ok.
func (c *docCase) want(ok bool, format string, args ...any) {
	c.Helper()
	if !ok {
		c.Errorf(format, args...)
	}
}

// wantSorted checks a pod's output lines, in any order (its apps run side by side).
func (c *docCase) wantSorted(r result, want ...string) {
	c.Helper()
	got := lines(r.out)
	slices.Sort(got)
	slices.Sort(want)
	if r.code != 0 || !slices.Equal(got, want) {
		c.Errorf("got lines %q (%s), want %q", got, r, want)
	}
}

func (c *docCase) mkdir(dir string) {
	c.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.Fatal(err)
	}
}

// podUUIDs are the pods of the data directory, as rkt list --full shows them.
func (c *docCase) podUUIDs() []string {
	c.Helper()
	var ids []string
	for _, l := range lines(c.rkt("list", "--full", "--no-legend").out) {
		if f := fields(l); len(f) > 0 && !strings.HasPrefix(l, "\t") && !strings.HasPrefix(l, " ") {
			ids = append(ids, f[0])
		}
	}
	slices.Sort(ids)
	return ids
}

// step runs a command of another program that the case needs, and fails the case if it fails.
func (c *docCase) step(line string) result {
	c.Helper()
	r := c.sh(line, opts{})
	if r.code != 0 {
		c.Fatalf("%s: %s", line, r)
	}
	return r
}

// imageID is the full ID of the stored image ref (by name, as rkt image list shows it).
func (c *docCase) imageID(ref string) string {
	c.Helper()
	r := c.rkt("image", "list", "--full", "--no-legend", "--fields=id,name")
	for _, l := range lines(r.out) {
		if f := fields(l); len(f) == 2 && f[1] == ref {
			return f[0]
		}
	}
	c.Fatalf("no image %s in %s", ref, r)
	return ""
}

// podManifest is the pod's manifest as rkt cat-manifest prints it.
func (c *docCase) podManifest(uuid string) podManifest {
	c.Helper()
	r := c.rkt("cat-manifest", uuid)
	var m podManifest
	if err := json.Unmarshal([]byte(r.out), &m); err != nil || r.code != 0 {
		c.Fatalf("rkt cat-manifest %s: %v %s", uuid, err, r)
	}
	return m
}

// podManifest is the part of an appc pod manifest the cases read.
type podManifest struct {
	ACVersion string `json:"acVersion"`
	ACKind    string `json:"acKind"`
	Apps      []struct {
		Name string `json:"name"`
		App  *struct {
			UserAnnotations map[string]string `json:"userAnnotations"`
			UserLabels      map[string]string `json:"userLabels"`
			Isolators       []struct {
				Name  string          `json:"name"`
				Value json.RawMessage `json:"value"`
			} `json:"isolators"`
		} `json:"app"`
	} `json:"apps"`
}
