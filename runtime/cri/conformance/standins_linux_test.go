package conformance

import (
	"archive/tar"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cairn-os/cairn/runtime/fixture"
)

// The registries critest's images come from; the stand-ins' registry answers for all three.
var standinHosts = []string{"registry.k8s.io", "gcr.io", "k8s.gcr.io"}

// sandboxImage is containerd's pause image here: a stand-in of its own (not one critest
// pulls and removes).
const sandboxImage = "registry.k8s.io/pause:3.6"

// standin is one image critest pulls, and what it must do (cri-tools v1.37.0's
// pkg/validate and pkg/framework name them; their Dockerfiles are in its images/).
type standin struct {
	refs []string // every reference it is pushed under (several: the same image under each)
	why  string
	// entrypoint, cmd, user, env of its config; layers above busybox's.
	entrypoint, cmd []string
	user            string
	env             []string
	extra           []fixture.Entry
}

// standins are critest's images, built from the busybox fixture and the standin program
// (testdata/standin). The digest-pinned test-image-digest cannot be made (its digest is
// of Google's build): its spec is skipped.
func standins(standinBin []byte) []standin {
	const cri = "gcr.io/k8s-staging-cri-tools/"
	file := func(p string) []fixture.Entry {
		return []fixture.Entry{{Header: tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: 0o644}, Body: p + "\n"}}
	}
	prog := func(p string, mode int64) []fixture.Entry {
		var es []fixture.Entry
		for d := filepath.Dir(p); d != "."; d = filepath.Dir(d) {
			es = append([]fixture.Entry{{Header: tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755}}}, es...)
		}
		return append(es, fixture.Entry{Header: tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: mode}, Body: string(standinBin)})
	}
	nginx := func(port string) standin {
		return standin{
			// nginx's process title, which the PID namespace specs look for in /proc/1/cmdline,
			// and its pid file, which they wait for; "nginx" is its process name (pidof).
			entrypoint: []string{"/usr/sbin/nginx", "nginx: master process nginx -g daemon off;", "serve", port, "/var/run/nginx.pid"},
			env:        []string{"STANDIN_NAME=nginx"},
			extra:      prog("usr/sbin/nginx", 0o755),
		}
	}
	ng := nginx("80")
	ng.refs, ng.why = []string{"registry.k8s.io/e2e-test-images/nginx:1.14-2"}, "web server on port 80 (networking, port mapping, port-forward, PID namespaces)"
	hostNg := nginx("12003")
	hostNg.refs, hostNg.why = []string{cri + "hostnet-nginx-amd64"}, "web server on port 12003 (port-forward in the host network)"
	return []standin{
		{refs: []string{"registry.k8s.io/e2e-test-images/busybox:1.29-2"}, why: "the default test image", cmd: []string{"sh"}},
		ng, hostNg,
		{refs: []string{"registry.k8s.io/e2e-test-images/httpd:2.4.39-4"}, why: "web server on port 80 that logs \"httpd\" (multiple containers)",
			entrypoint: []string{"/usr/local/bin/httpd", "serve", "80"}, env: []string{"STANDIN_NAME=httpd"}, extra: prog("usr/local/bin/httpd", 0o755)},
		{refs: []string{"registry.k8s.io/e2e-test-images/nonewprivs:1.3"}, why: "a setuid-root program that prints its effective uid (no_new_privs)",
			entrypoint: []string{"/usr/local/bin/nnp", "euid"}, extra: prog("usr/local/bin/nnp", 0o4755)},
		{refs: []string{cri + "test-image-user-uid"}, why: "USER 1002", cmd: []string{"sh"}, user: "1002"},
		{refs: []string{cri + "test-image-user-username"}, why: "USER www-data", cmd: []string{"sh"}, user: "www-data"},
		{refs: []string{cri + "test-image-user-uid-group"}, why: "USER 1003:1004", cmd: []string{"sh"}, user: "1003:1004"},
		{refs: []string{cri + "test-image-user-username-group"}, why: "USER www-data:1004", cmd: []string{"sh"}, user: "www-data:1004"},
		{refs: []string{cri + "test-image-predefined-group"}, why: "USER 1000, in group 50000 by the image's /etc/group", cmd: []string{"sh"}, user: "1000"},
		{refs: []string{cri + "test-image-latest"}, why: "a reference without a tag", cmd: []string{"sh"}, extra: file("test-image-latest")},
		{refs: []string{cri + "test-image-tag:test"}, why: "a tagged reference", cmd: []string{"sh"}, extra: file("test")},
		{refs: []string{cri + "test-image-tag:all"}, why: "every kind of reference to one image", cmd: []string{"sh"}, extra: file("all")},
		{refs: []string{cri + "test-image-1:latest"}, why: "three different images", cmd: []string{"sh"}, extra: file("test-image-1")},
		{refs: []string{cri + "test-image-2:latest"}, why: "three different images", cmd: []string{"sh"}, extra: file("test-image-2")},
		{refs: []string{cri + "test-image-3:latest"}, why: "three different images", cmd: []string{"sh"}, extra: file("test-image-3")},
		{refs: []string{cri + "test-image-tags:1", cri + "test-image-tags:2", cri + "test-image-tags:3"}, why: "one image under three tags",
			cmd: []string{"sh"}, extra: file("same-image")},
		// A pause process named pause: pgrep in a pod that shares its PID namespace sees it.
		{refs: []string{"registry.k8s.io/pause:3.9", "k8s.gcr.io/pause:3.9"}, why: "one image in two registries",
			entrypoint: []string{"/pause", "pause"}, extra: append(prog("pause", 0o755), file("pause-3.9")...)},
		{refs: []string{sandboxImage}, why: "containerd's sandbox image",
			entrypoint: []string{"/pause", "pause"}, extra: prog("pause", 0o755)},
	}
}

// busyboxLayer is busybox with its applets as hard links (a mask over one applet's path,
// /bin/ls, then masks that name only), /var/run, and the users and groups the stand-ins
// name.
func busyboxLayer() ([]byte, error) {
	bb, err := os.ReadFile(fixture.BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("busybox (install Debian's busybox-static): %w", err)
	}
	applets, err := fixture.Applets()
	if err != nil {
		return nil, err
	}
	var es []fixture.Entry
	for _, d := range []string{"bin", "etc", "tmp", "dev", "proc", "sys", "root", "var", "var/run", "home", "home/default-user"} {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		es = append(es, fixture.Entry{Header: tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: mode}})
	}
	es = append(es, fixture.Entry{Header: tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755}, Body: string(bb)})
	for _, a := range applets {
		if a != "busybox" {
			// A hard link's header carries its target's mode (containerd applies it).
			es = append(es, fixture.Entry{Header: tar.Header{Name: "bin/" + a, Typeflag: tar.TypeLink, Linkname: "bin/busybox", Mode: 0o755}})
		}
	}
	// Applets the e2e busybox image has and Debian's busybox-static lacks, as scripts.
	for p, c := range map[string]string{
		"bin/pgrep": pgrepScript,
		"bin/ipcs":  ipcsScript,
	} {
		es = append(es, fixture.Entry{Header: tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: 0o755}, Body: c})
	}
	for p, c := range map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\n" +
			"default-user:x:1000:1000:default-user:/home/default-user:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
		"etc/group": "root:x:0:\nwww-data:x:33:\ndefault-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\nnogroup:x:65534:\n",
	} {
		es = append(es, fixture.Entry{Header: tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: 0o644}, Body: c})
	}
	return fixture.LayerTar(es)
}

// pgrepScript is pgrep NAME: the pids of the processes whose name contains NAME.
const pgrepScript = `#!/bin/sh
found=1
for d in /proc/[0-9]*; do
	read -r n <"$d/comm" 2>/dev/null || continue
	case "$n" in *"$1"*) echo "${d#/proc/}"; found=0 ;; esac
done
exit $found
`

// ipcsScript is ipcs -m: the shared memory segments of the IPC namespace.
const ipcsScript = `#!/bin/sh
echo "------ Shared Memory Segments --------"
echo "key        shmid      owner      perms      bytes      nattch     status"
tail -n +2 /proc/sysvipc/shm | while read -r key shmid perms size cpid lpid nattch uid rest; do
	printf '0x%08x %-10s %-10s %-10s %-10s %-10s\n' "$key" "$shmid" "$uid" "$perms" "$size" "$nattch"
done
`

// image builds a stand-in's image over the busybox layer.
func (s standin) image(bb []byte) (v1.Image, error) {
	layers := [][]byte{bb}
	if len(s.extra) > 0 {
		l, err := fixture.LayerTar(s.extra)
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	img, err := fixture.OCIImage(s.cmd, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Config.Entrypoint, cf.Config.User = s.entrypoint, s.user
	cf.Config.Env = append(cf.Config.Env, s.env...)
	return mutate.ConfigFile(img, cf)
}

// serveStandins builds the stand-in program and images and serves them from a registry on
// loopback, each under its repository and tag (what its host is, the runtimes' mirrors
// say). It returns the registry's URL.
func serveStandins(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "standin")
	build := exec.Command("go", "build", "-o", bin, "./testdata/standin")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the standin program: %v\n%s", err, out)
	}
	standinBin, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	bb, err := busyboxLayer()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, s := range standins(standinBin) {
		img, err := s.image(bb)
		if err != nil {
			t.Fatalf("stand-in %s: %v", s.refs[0], err)
		}
		for _, r := range s.refs {
			ref, err := name.ParseReference(r)
			if err != nil {
				t.Fatal(err)
			}
			to, err := name.ParseReference(host+"/"+ref.Context().RepositoryStr()+":"+ref.Identifier(), name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			if err := remote.Write(to, img); err != nil {
				t.Fatalf("push stand-in %s: %v", r, err)
			}
		}
	}
	return srv.URL
}
