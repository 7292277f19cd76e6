package rktdocs

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Patterns of what rkt prints about pods.
const (
	uuidRx  = `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`
	relTime = `(now|1 second ago|\d+ seconds ago|1 minute ago|\d+ minutes ago)`
	absTime = `\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,3})? [+-]\d{4} [A-Z]+`
	shortID = `sha512-[0-9a-f]{12}`
	defNet  = `default:ip4=172\.16\.28\.\d+`
)

const redisReady = `The server is now ready to accept connections on port 6379`

// Cases of subcommands/prepare.md, run-prepared.md, list.md, status.md, stop.md, rm.md, gc.md,
// enter.md, export.md, cat-manifest.md, version.md and commands.md's rkt list.
func init() {
	cases["prepare"] = func(c *docCase) {
		// The documents' overlay notice is for file systems without d_type; this one has it.
		for _, args := range [][]string{
			{"prepare", "--insecure-options=image", "docker://busybox", "--exec=/bin/sh"},
			{"prepare", "coreos.com/etcd:v2.0.10"},
		} {
			r := c.rkt(args...)
			ls := lines(r.out)
			c.want(r.code == 0 && len(ls) > 0 && regexp.MustCompile("^"+uuidRx+"$").MatchString(ls[len(ls)-1]), "rkt %s: %s", strings.Join(args, " "), r)
			if r.code == 0 && len(ls) > 0 {
				st := c.rkt("status", ls[len(ls)-1])
				c.want(hasLine(st.out, "state=prepared"), "the prepared pod's status: %s", st)
			}
		}
	}
	cases["run-prepared"] = func(c *docCase) {
		uuid := c.prepared("coreos.com/etcd:v2.0.10")
		// The documents show an older rkt's list (UUID APP ACI STATE NETWORKS); list.md's
		// columns, which rkt 1.30 printed, are checked by the list case.
		r := c.rkt("list")
		c.want(r.code == 0 && hasLine(r.out, uuid[:8]+`\s+etcd\s+coreos\.com/etcd:v2\.0\.10\s+prepared\s+`+relTime), "a prepared pod in rkt list: %s", r)
		p := c.startPrepared(uuid, "run-prepared", uuid[:8])
		p.await(etcdReady("2.0.10"))
		c.stopAtEnd(p, uuid)
	}
	cases["list"] = func(c *docCase) {
		a := c.start("run", "redis", "coreos.com/etcd:v2.0.9")
		a.await(redisReady)
		a.await(etcdReady("2.0.9"))
		c.stopAtEnd(a, a.uuid())
		bID, r := c.runSaved("run", "nginx")
		c.want(r.code == 0, "rkt run nginx: %s", r)
		r = c.rkt("list")
		c.wantTable(r, []string{"UUID", "APP", "IMAGE NAME", "STATE", "CREATED", "STARTED", "NETWORKS"}, map[string][][]string{
			a.uuid()[:8]: {{a.uuid()[:8], "redis", "redis", "running", relTime, relTime, defNet}, {"etcd", `coreos\.com/etcd:v2\.0\.9`}},
			bID[:8]:      {{bID[:8], "nginx", "nginx", "exited", relTime, relTime}},
		})
		r = c.rkt("list", "--full")
		c.wantTable(r, []string{"UUID", "APP", "IMAGE NAME", "IMAGE ID", "STATE", "CREATED", "STARTED", "NETWORKS"}, map[string][][]string{
			a.uuid(): {{a.uuid(), "redis", "redis", shortID, "running", absTime, absTime, defNet}, {"etcd", `coreos\.com/etcd:v2\.0\.9`, shortID}},
			bID:      {{bID, "nginx", "nginx", shortID, "exited", absTime, absTime}},
		})
	}
	cases["status"] = func(c *docCase) {
		p := c.start("run", "redis", "coreos.com/etcd:v2.0.9")
		p.await(redisReady)
		p.await(etcdReady("2.0.9"))
		uuid := p.uuid()
		r := c.rkt("stop", uuid)
		c.want(r.code == 0, "rkt stop: %s", r)
		c.want(p.wait().code == 0, "the pod after rkt stop: %s", p.res)
		r = c.rkt("status", uuid[:8])
		// rkt 1.30 prints networks= for an exited pod too (the documents predate it), and its
		// app lines in no fixed order.
		c.want(r.code == 0 && matchLines(sortApps(r.out), "state=exited", "created="+absTime, "started="+absTime, "networks=.*",
			`pid=\d+`, "exited=true", "app-etcd=0", "app-redis=0") == nil, "rkt status: %s", r)
	}
	cases["status/wait"] = func(c *docCase) {
		p := c.start("run", "coreos.com/etcd:v2.0.0")
		uuid := p.uuid()
		r := c.rkt("status", "--wait-ready", uuid)
		c.want(r.code == 0 && hasLine(r.out, "state=running"), "rkt status --wait-ready: %s", r)
		p.await(etcdReady("2.0.0"))
		r = c.rkt("status", "--wait=1s", uuid)
		c.want(r.code != 0, "rkt status --wait=1s on a pod that runs on: %s", r)
		go func() {
			time.Sleep(time.Second)
			c.command(c.ctx, opts{}, "stop", uuid).Run()
		}()
		r = c.rkt("status", "--wait=10s", uuid)
		c.want(r.code == 0 && hasLine(r.out, "state=exited") && hasLine(r.out, "app-etcd=0"), "rkt status --wait=10s: %s", r)
		p.wait()
		q := c.start("run", "coreos.com/etcd:v2.0.0")
		q.await(etcdReady("2.0.0"))
		go func() {
			time.Sleep(time.Second)
			c.command(c.ctx, opts{}, "stop", q.uuid()).Run()
		}()
		r = c.rkt("status", "--wait", q.uuid())
		c.want(r.code == 0 && hasLine(r.out, "state=exited") && hasLine(r.out, "exited=true"), "rkt status --wait: %s", r)
		q.wait()
	}
	cases["stop"] = func(c *docCase) {
		var ps []*pod
		for range 3 {
			p := c.start("run", "coreos.com/etcd:v2.0.0")
			p.await(etcdReady("2.0.0"))
			ps = append(ps, p)
		}
		a, b, f := ps[0].uuid(), ps[1].uuid(), ps[2].uuid()
		r := c.rkt("stop", a[:8], b[:8])
		c.want(r.code == 0 && r.out == `"`+a+`"`+"\n"+`"`+b+`"`+"\n", "rkt stop of two pods: %s", r)
		c.want(ps[0].wait().code == 0 && ps[1].wait().code == 0, "the stopped pods: %s, %s", ps[0].res, ps[1].res)
		r = c.rkt("stop", "--force", f[:8])
		c.want(r.code == 0 && r.out == `"`+f+`"`+"\n", "rkt stop --force: %s", r)
		ps[2].wait()
		st := c.rkt("status", f)
		c.want(hasLine(st.out, "state=exited"), "the pod after rkt stop --force: %s", st)
	}
	cases["stop/uuid-file"] = func(c *docCase) {
		// The documents' "..." is the image: coreos.com/etcd here.
		c.mkdir("/run/rkt-uuids")
		defer os.Remove("/run/rkt-uuids/mypod")
		p := c.start("run", "--uuid-file-save=/run/rkt-uuids/mypod", "coreos.com/etcd:v2.0.0")
		p.await(etcdReady("2.0.0"))
		r := c.rkt("stop", "--uuid-file=/run/rkt-uuids/mypod")
		c.want(r.code == 0 && r.out == `"`+p.uuid()+`"`+"\n", "rkt stop --uuid-file: %s", r)
		c.want(p.wait().code == 0, "the pod after rkt stop: %s", p.res)
	}
	cases["rm"] = func(c *docCase) {
		uuid, r := c.runSaved("run", "nginx")
		c.want(r.code == 0, "rkt run: %s", r)
		r = c.rkt("rm", uuid[:8])
		c.want(r.code == 0 && r.out == `"`+uuid+`"`+"\n", "rkt rm: %s", r)
		c.want(len(c.podUUIDs()) == 0, "a pod left after rkt rm")
		c.mkdir("/run/rkt-uuids")
		defer os.Remove("/run/rkt-uuids/mypod")
		r = c.rkt("run", "--uuid-file-save=/run/rkt-uuids/mypod", "nginx")
		c.want(r.code == 0, "rkt run --uuid-file-save: %s", r)
		b, _ := os.ReadFile("/run/rkt-uuids/mypod")
		r = c.rkt("rm", "--uuid-file=/run/rkt-uuids/mypod")
		c.want(r.code == 0 && r.out == `"`+strings.TrimSpace(string(b))+`"`+"\n", "rkt rm --uuid-file: %s", r)
		c.want(len(c.podUUIDs()) == 0, "a pod left after rkt rm --uuid-file")
	}
	cases["gc"] = func(c *docCase) {
		var want []string
		for range 3 {
			uuid, r := c.runSaved("run", "nginx")
			c.want(r.code == 0, "rkt run: %s", r)
			want = append(want, uuid)
		}
		slices.Sort(want)
		each := func(format string) []string {
			var ls []string
			for _, u := range want {
				ls = append(ls, strings.ReplaceAll(format, "UUID", u))
			}
			return ls
		}
		r := c.rkt("gc", "--grace-period=30m0s")
		c.want(r.code == 0 && slices.Equal(sorted(lines(r.out)), each(`Moving pod "UUID" to garbage`)), "the first gc: %s", r)
		// The documents' next pass comes once the grace period is over; a pass within it
		// collects nothing, a pass with none left collects them.
		r = c.rkt("gc", "--grace-period=30m0s")
		c.want(r.code == 0 && r.out == "", "a gc within the grace period: %s", r)
		r = c.rkt("gc", "--grace-period=0s")
		c.want(r.code == 0 && slices.Equal(sorted(lines(r.out)), each(`Garbage collecting pod "UUID"`)), "the next gc: %s", r)
		c.want(len(c.podUUIDs()) == 0, "a pod left after gc")
	}
	cases["enter"] = func(c *docCase) {
		p := c.start("run", "redis", "coreos.com/etcd:v2.0.9")
		p.await(redisReady)
		p.await(etcdReady("2.0.9"))
		c.stopAtEnd(p, p.uuid())
		r := c.rkt("enter", p.uuid()[:8])
		c.want(r.code != 0 && matchLines(r.err, "Pod contains multiple apps:", "\tredis", "\tetcd",
			`(rkt: )?[Uu]nable to determine app name: specify app using "rkt enter --app= \.\.\."`) == nil, "rkt enter on two apps: %s", r)
		// rkt assumed /bin/bash, which most images (busybox, alpine, distroless) lack.
		c.differs("enter")
		r = c.rktWith(opts{stdin: "ls\n"}, "enter", "--app=redis", p.uuid()[:8])
		c.want(r.code == 0 && hasLine(r.err, `[Nn]o command specified, assuming "/bin/sh"`) &&
			hasLine(r.out, "bin") && hasLine(r.out, "etc") && hasLine(r.out, "redis-server"), "rkt enter --app=redis: %s", r)
	}
	cases["export"] = func(c *docCase) {
		uuid, r := c.runSaved("run", "nginx")
		c.want(r.code == 0, "rkt run: %s", r)
		// The documents' ".aci" stands for a file name.
		r = c.rkt("export", uuid, "nginx.aci")
		c.want(r.code == 0, "rkt export: %s", r)
		v := c.sh(shellQuote([]string{filepath.Join(c.r.tools, "actool"), "validate", "nginx.aci"}), opts{})
		c.want(v.code == 0, "actool validate of the exported ACI: %s", v)
		m := c.sh(shellQuote([]string{filepath.Join(c.r.tools, "actool"), "cat-manifest", "nginx.aci"}), opts{})
		c.want(strings.Contains(m.out, `"name":"nginx"`) || strings.Contains(m.out, `"name": "nginx"`), "the exported image's manifest: %s", m)
	}
	cases["cat-manifest"] = func(c *docCase) {
		uuid, r := c.runSaved("run", "nginx")
		c.want(r.code == 0, "rkt run: %s", r)
		r = c.rkt("cat-manifest", uuid)
		ls := lines(r.out)
		c.want(r.code == 0 && len(ls) > 3 && ls[0] == "{" && regexp.MustCompile(`^\s+"acVersion": ?"0\.8\.11",$`).MatchString(ls[1]) &&
			regexp.MustCompile(`^\s+"acKind": ?"PodManifest",$`).MatchString(ls[2]), "rkt cat-manifest: %s", r)
		r = c.rkt("cat-manifest", "--pretty-print=false", uuid)
		c.want(r.code == 0 && len(lines(r.out)) == 1 && strings.HasPrefix(r.out, `{"acVersion":"0.8.11","acKind":"PodManifest"`), "rkt cat-manifest --pretty-print=false: %s", r)
	}
	cases["version"] = func(c *docCase) {
		// rkt 1.30 also printed its build's features, after the lines the documents show.
		r := c.rkt("version")
		c.want(r.code == 0 && matchLines(r.out, `rkt Version: \S+`, `appc Version: 0\.8\.11`, `Go Version: go\S+`, `Go OS/Arch: linux/amd64`, `Features: .*`) == nil, "rkt version: %s", r)
	}
	cases["commands/list"] = func(c *docCase) {
		p := c.start("--insecure-options=image", "run", "coreos.com/etcd:v2.3.4", "docker://redis:3.2")
		p.await(etcdReady("2.3.4"))
		p.await(redisReady)
		c.stopAtEnd(p, p.uuid())
		// A Docker image keeps its reference as its name and its manifest digest as its ID.
		c.differs("docker-images")
		r := c.rkt("list", "--full")
		c.wantTable(r, []string{"UUID", "APP", "IMAGE NAME", "IMAGE ID", "STATE", "CREATED", "STARTED", "NETWORKS"}, map[string][][]string{
			p.uuid(): {{p.uuid(), "etcd", `coreos\.com/etcd:v2\.3\.4`, shortID, "running", absTime, absTime, defNet},
				{"redis", `docker\.io/library/redis:3\.2`, `sha256:[0-9a-f]{12}`}},
		})
	}
	cases["docker"] = func(c *docCase) {
		c.serve(redisReady, "--insecure-options=image", "run", "docker://redis")
		// rkt converted the image to an ACI whose ID was a sha512; Cairn keeps the OCI image and
		// its sha256 digest, which rkt image list and rkt fetch show.
		c.differs("docker-images")
		id := c.imageID("docker.io/library/redis:latest")
		c.want(regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(id), "the Docker image's ID: %q", id)
		c.serve(redisReady, "--insecure-options=image", "run", id[:len("sha256:")+32])
	}
}

// prepared prepares a pod of image and returns its UUID.
func (c *docCase) prepared(image string) string {
	c.Helper()
	r := c.rkt("prepare", image)
	ls := lines(r.out)
	if r.code != 0 || len(ls) == 0 {
		c.Fatalf("rkt prepare %s: %s", image, r)
	}
	return ls[len(ls)-1]
}

// wantTable checks a table of pods: its header's columns, and for each pod (by the UUID in
// its first column) its lines' columns as patterns. Lines of later apps leave the pod's columns
// empty.
func (c *docCase) wantTable(r result, header []string, pods map[string][][]string) {
	c.Helper()
	ls := strings.Split(strings.TrimRight(r.out, "\n"), "\n")
	if r.code != 0 || len(ls) == 0 || !slices.Equal(fields(ls[0]), header) {
		c.Errorf("header %q, want %q (%s)", fieldsOf(ls, 0), header, r)
		return
	}
	got := map[string][][]string{}
	var cur string
	for _, l := range ls[1:] {
		f := fields(l)
		if len(f) == 0 {
			continue
		}
		if !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "\t") {
			cur = f[0]
		}
		got[cur] = append(got[cur], f)
	}
	if len(got) != len(pods) {
		c.Errorf("%d pods listed, want %d:\n%s", len(got), len(pods), r.out)
	}
	for id, want := range pods {
		g := got[id]
		if len(g) != len(want) {
			c.Errorf("pod %s: lines %q, want %q", id, g, want)
			continue
		}
		for i := range want {
			if len(g[i]) != len(want[i]) {
				c.Errorf("pod %s line %d: columns %q, want %q", id, i+1, g[i], want[i])
				continue
			}
			for j, p := range want[i] {
				if !regexp.MustCompile("^" + p + "$").MatchString(g[i][j]) {
					c.Errorf("pod %s line %d column %d: %q, want %q", id, i+1, j+1, g[i][j], p)
				}
			}
		}
	}
}

func fieldsOf(ls []string, i int) []string {
	if i < len(ls) {
		return fields(ls[i])
	}
	return nil
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// sortApps sorts the app- lines of rkt status, which rkt printed in no fixed order.
func sortApps(out string) string {
	var head, apps []string
	for _, l := range lines(out) {
		if strings.HasPrefix(l, "app-") {
			apps = append(apps, l)
		} else {
			head = append(head, l)
		}
	}
	slices.Sort(apps)
	return strings.Join(append(head, apps...), "\n")
}
