package rktdocs

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/runtime/fixture"
)

// standIn is a local image that takes the place of one the documents name: an ACI built with
// appc's actool from an image layout, or an OCI image built with umoci.
type standIn struct {
	file string // its file (ACI) or layout directory (OCI) in the images directory
	name string // appc name or OCI reference
	// version is the ACI's version label (none when empty).
	version string
	app     *types.App // the ACI's app
	cmd     []string   // the OCI image's command
	// files are added to the busybox tree: path -> content, executable when it starts with #!.
	files map[string]string
	// stored images are fetched into the replay's store before the cases run; the others are
	// files that examples name.
	stored bool
	// unsigned ACIs get no signature beside them (the signing case signs its own with gpg).
	unsigned bool
}

// service is a stand-in server: it says it is ready, runs until SIGTERM and then exits 0.
func service(what string, lines ...string) string {
	s := "#!/bin/sh\ntrap 'echo \"" + what + ": shutting down\"; exit 0' TERM INT\n"
	for _, l := range lines {
		s += "echo '" + l + "'\n"
	}
	return s + "while :; do sleep 3600 & wait $!; done\n"
}

func etcd(version string) map[string]string {
	return map[string]string{
		"etcd":    service("etcd", "etcd: version "+version, "etcd: listening for client requests on http://localhost:2379"),
		"etcdctl": "#!/bin/sh\necho etcdctl " + version + "\n",
	}
}

var redisFiles = map[string]string{"redis-server": service("redis", "Redis 3.0.0 (00000000/0) 64 bit", "The server is now ready to accept connections on port 6379")}

// report prints, for each path it is given, whether the path is a mount in the app's root,
// whether the app can write there (it writes a file named after itself), the path's mode and
// owner, and whether the marker of a host submount is visible below it.
const report = `#!/bin/sh
name=$1; shift
for p in "$@"; do
  if ! grep -q " $p " /proc/self/mountinfo; then echo "$name $p none"; continue; fi
  if echo "$name" > "$p/$name" 2>/dev/null; then m=rw; else m=ro; fi
  s=; [ -e "$p/sub/marker" ] && s=" submount"
  echo "$name $p $m $(stat -c '%a %u:%g' "$p")$s"
done
`

func aciApp(exec ...string) *types.App {
	return &types.App{Exec: exec, User: "0", Group: "0", WorkingDirectory: "/",
		Environment: types.Environment{{Name: "PATH", Value: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}}
}

func withMounts(a *types.App, mps ...types.MountPoint) *types.App {
	a.MountPoints = mps
	return a
}

func withPorts(a *types.App, ps ...types.Port) *types.App {
	a.Ports = ps
	return a
}

var (
	data   = types.MountPoint{Name: "data", Path: "/var/data"}
	work   = types.MountPoint{Name: "work", Path: "/var/lib/work"}
	backup = types.MountPoint{Name: "work", Path: "/backup", ReadOnly: true}
	http80 = types.Port{Name: "http", Protocol: "tcp", Port: 80, Count: 1}
)

const (
	reduceWork = "echo reduced > /var/lib/work/out && echo reduce-worker wrote /var/lib/work/out"
	backUp     = "for i in $(seq 200); do [ -s /backup/out ] && break; sleep 0.05; done; echo worker-backup read $(cat /backup/out); touch /backup/x 2>/dev/null && echo worker-backup /backup rw || echo worker-backup /backup ro"
)

// standIns are the replay's images.
var standIns = []standIn{
	{file: "etcd-v2.0.0-linux-amd64.aci", name: "coreos.com/etcd", version: "v2.0.0", app: withPorts(aciApp("/etcd"), types.Port{Name: "client", Protocol: "tcp", Port: 2379, Count: 1}), files: etcd("2.0.0"), stored: true},
	{file: "etcd-v2.0.9-linux-amd64.aci", name: "coreos.com/etcd", version: "v2.0.9", app: aciApp("/etcd"), files: etcd("2.0.9"), stored: true},
	{file: "etcd-v2.0.10-linux-amd64.aci", name: "coreos.com/etcd", version: "v2.0.10", app: aciApp("/etcd"), files: etcd("2.0.10"), stored: true},
	{file: "etcd-v2.3.4-linux-amd64.aci", name: "coreos.com/etcd", version: "v2.3.4", app: aciApp("/etcd"), files: etcd("2.3.4"), stored: true},
	{file: "redis.aci", name: "redis", app: aciApp("/redis-server"), files: redisFiles, stored: true},
	{file: "nginx.aci", name: "nginx", app: aciApp("/bin/echo", "nginx: started"), stored: true},
	{file: "app1.aci", name: "example.com/app1", version: "1.0.0", app: withMounts(aciApp("/report", "app1", "/var/data", "/var/log"), data), files: map[string]string{"report": report}, stored: true},
	{file: "app2.aci", name: "example.com/app2", version: "1.0.0", app: aciApp("/report", "app2", "/var/log", "/opt/log"), files: map[string]string{"report": report}, stored: true},
	{file: "worker.aci", name: "example.com/worker", version: "1.0.0", app: aciApp("/worker"), files: map[string]string{
		"worker": "#!/bin/sh\necho worker \"$@\"\n", "bin/ov": "#!/bin/sh\necho ov \"$@\"\n"}, stored: true},
	{file: "syncer.aci", name: "example.com/syncer", version: "1.0.0", app: aciApp("/syncer"), files: map[string]string{
		"syncer": "#!/bin/sh\necho syncer \"$@\"\n", "bin/syncer2": "#!/bin/sh\necho syncer2 \"$@\"\n"}, stored: true},
	{file: "example.aci", name: "example.com/example", version: "1.0.0", app: aciApp("/bin/echo", "example"), stored: true},
	{file: "env-printer.aci", name: "example.com/env-printer", version: "1.0.0", app: aciApp("/bin/sh", "-c", "echo EXAMPLE_ENV=$EXAMPLE_ENV; echo FOO=$FOO; echo EXAMPLE_OVERRIDE=$EXAMPLE_OVERRIDE"), stored: true},
	{file: "reduce-worker.aci", name: "example.com/reduce-worker", version: "1.0.0", app: withMounts(aciApp("/bin/sh", "-c", reduceWork), work), stored: true},
	{file: "worker-backup.aci", name: "example.com/worker-backup", version: "1.0.0", app: withMounts(aciApp("/bin/sh", "-c", backUp), backup), stored: true},
	// The same apps without mount points, for the example that gives them with --mount.
	{file: "reduce-worker-nomp.aci", name: "example.com/reduce-worker", version: "1.0.0", app: aciApp("/bin/sh", "-c", reduceWork)},
	{file: "worker-backup-nomp.aci", name: "example.com/worker-backup", version: "1.0.0", app: aciApp("/bin/sh", "-c", backUp)},
	{file: "busybox-1.24.aci", name: "kinvolk.io/aci/busybox", version: "1.24", app: aciApp("/bin/sh"), stored: true},
	{file: "pod.aci", name: "example.com/pod", version: "1.0.0", app: aciApp("/bin/sh", "-c", "cat /etc/resolv.conf; echo ---; cat /etc/hosts; echo ---; ip -o -4 addr show")},
	{file: "myapp.aci", name: "example.com/myapp", version: "1.0.0", app: withPorts(aciApp("/bin/httpd", "-f", "-p", "80", "-h", "/www"), http80),
		files: map[string]string{"www/index.html": "hello from myapp\n"}},
	{file: "hello-0.0.1-linux-amd64.aci", name: "example.com/hello", version: "0.0.1", app: aciApp("/bin/echo", "hello"), unsigned: true},

	{file: "busybox-oci", name: "docker.io/library/busybox:latest", cmd: []string{"sh"}, stored: true},
	{file: "redis-oci", name: "docker.io/library/redis:latest", cmd: []string{"redis-server"}, files: map[string]string{"usr/local/bin/redis-server": redisFiles["redis-server"]}, stored: true},
	{file: "redis-3.2-oci", name: "docker.io/library/redis:3.2", cmd: []string{"redis-server"}, files: map[string]string{"usr/local/bin/redis-server": redisFiles["redis-server"]}, stored: true},
	{file: "quay-etcd-v2.0.0-oci", name: "quay.io/coreos/etcd:v2.0.0", cmd: []string{"/etcd"}, files: etcd("2.0.0"), stored: true},
	{file: "quay-etcd-v3.1.0-oci", name: "quay.io/coreos/etcd:v3.1.0", cmd: []string{"/etcd"}, files: etcd("3.1.0"), stored: true},
}

func (s standIn) oci() bool { return s.app == nil }

// rootfs writes a busybox tree with s's files into dir: busybox and its applets, /etc/passwd and
// /etc/group as Docker's busybox image has them (users is group 100).
func (s standIn) rootfs(dir string) error {
	for _, d := range []string{"bin", "etc", "tmp", "var", "root", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	bb, err := os.ReadFile(fixture.BusyboxPath)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), bb, 0o755); err != nil {
		return err
	}
	applets, err := fixture.Applets()
	if err != nil {
		return err
	}
	for _, a := range applets {
		if a != "busybox" {
			if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
				return err
			}
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
		"etc/group":  "root:x:0:\ndaemon:x:1:\nusers:x:100:\nnogroup:x:65534:\n",
	}
	maps.Copy(files, s.files)
	for p, c := range files {
		mode := os.FileMode(0o644)
		if strings.HasPrefix(c, "#!") {
			mode = 0o755
		}
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(c), mode); err != nil {
			return err
		}
	}
	return nil
}

// buildACI makes s with actool from an image layout (manifest and rootfs/).
func (s standIn) buildACI(actool, out string) error {
	layout, err := os.MkdirTemp("", "rktdocs-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(layout)
	if err := s.rootfs(filepath.Join(layout, "rootfs")); err != nil {
		return err
	}
	m := schema.BlankImageManifest()
	m.Name = *types.MustACIdentifier(s.name)
	labels := map[string]string{"os": "linux", "arch": "amd64"}
	if s.version != "" {
		labels["version"] = s.version
	}
	var names []string
	for k := range labels {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		m.Labels = append(m.Labels, types.Label{Name: types.ACIdentifier(k), Value: labels[k]})
	}
	m.App = s.app
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(layout, "manifest"), b, 0o644); err != nil {
		return err
	}
	return run(actool, "build", "--owner-root", "--overwrite", layout, out)
}

// buildOCI makes s with umoci: a layout with one image tagged with its reference, whose one
// layer is the busybox tree.
func (s standIn) buildOCI(dir string) error {
	root, err := os.MkdirTemp("", "rktdocs-rootfs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	if err := s.rootfs(root); err != nil {
		return err
	}
	img := dir + ":" + s.name
	steps := [][]string{
		{"init", "--layout", dir},
		{"new", "--image", img},
		{"insert", "--image", img, root, "/"},
	}
	cfg := []string{"config", "--image", img, "--config.workingdir", "/",
		"--config.env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for _, c := range s.cmd {
		cfg = append(cfg, "--config.cmd", c)
	}
	steps = append(steps, cfg, []string{"gc", "--layout", dir})
	for _, st := range steps {
		if err := run("umoci", st...); err != nil {
			return err
		}
	}
	return nil
}

func run(prog string, args ...string) error {
	out, err := exec.Command(prog, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", prog, strings.Join(args, " "), err, out)
	}
	return nil
}

// buildStandIns writes every stand-in into dir, the ACIs signed by key (a detached signature
// beside each, as discovery would find it), and the key as replay.pub.asc.
func buildStandIns(t *testing.T, actool, dir string) {
	t.Helper()
	key, err := fixture.NewKey("Cairn docs replay", fixture.KeyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "replay.pub.asc"), key.Public, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "replay.fingerprint"), []byte(key.Fingerprint), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, s := range standIns {
		path := filepath.Join(dir, s.file)
		if s.oci() {
			if err := s.buildOCI(path); err != nil {
				t.Fatalf("stand-in %s: %v", s.name, err)
			}
			continue
		}
		if err := s.buildACI(actool, path); err != nil {
			t.Fatalf("stand-in %s: %v", s.name, err)
		}
		if s.unsigned {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := key.Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+".asc", sig, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
