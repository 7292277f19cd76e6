package conformance

import (
	"archive/tar"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/kube/clustertest"
	"github.com/cairn-os/cairn/kube/images"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/tarx"
)

// e2eImages is where the suite's own test images live (test/utils/image's
// PromoterE2eRegistry).
const e2eImages = images.Registry + "/e2e-test-images/"

// standin is one image the focused specs pull (test/utils/image/manifest.go names them;
// their Dockerfiles are in k8s.io/kubernetes' test/images), made here over the busybox
// fixture, with what it stands for.
type standin struct {
	refs []string // the references the suite pulls it by, under registry.k8s.io
	why  string
	// base is the image it is made from: busybox's layer alone, or agnhost's image.
	agnhost         bool
	entrypoint, cmd []string
	user            string
	extra           []fixture.Entry // a layer above the base
}

// standins are the focused specs' images other than agnhost (clustertest pushes it) and
// pause (kubeadm's, pushed with the control plane's images). nnp is the nonewprivs probe
// (testdata/nnp), built for the test.
func standins(nnp []byte) []standin {
	file := func(p, body string, mode int64) fixture.Entry {
		return fixture.Entry{Header: tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: mode}, Body: body}
	}
	dir := func(p string) fixture.Entry {
		return fixture.Entry{Header: tar.Header{Name: p + "/", Typeflag: tar.TypeDir, Mode: 0o755}}
	}
	return []standin{
		{refs: []string{e2eImages + "busybox:1.37.0-2"}, why: "the suite's default image: a shell and busybox's applets", cmd: []string{"sh"}},
		{refs: []string{e2eImages + "agnhost:2.55"}, why: "agnhost's previous release, which a spec replaces by the current one in a running pod: the same program under the older tag",
			agnhost: true},
		{refs: []string{e2eImages + "nginx:1.27.0-2", e2eImages + "nginx:1.28.0-2"}, why: "a web server on port 80 with a shell (preStop hooks, image updates): agnhost's netexec",
			agnhost: true, entrypoint: []string{"/agnhost", "netexec", "--http-port=80"}, cmd: []string{}},
		{refs: []string{e2eImages + "nonroot:1.5"}, why: "USER 1234 (runAsNonRoot with the image's user)", cmd: []string{"sh"}, user: "1234"},
		{refs: []string{e2eImages + "nonewprivs:1.4"}, why: "a setuid-root program that prints its effective uid (allowPrivilegeEscalation)",
			entrypoint: []string{"/usr/local/bin/nnp"}, extra: []fixture.Entry{dir("usr"), dir("usr/local"), dir("usr/local/bin"), file("usr/local/bin/nnp", string(nnp), 0o4755)}},
		{refs: []string{e2eImages + "glibc-dns-testing:2.1.1"}, why: "a shell with hostname -f (hostnameOverride)", cmd: []string{"sh"}},
		// The image volume spec reads the image's data.json and /etc/os-release; upstream's is
		// Alpine's with kitten.jpg and data.json added.
		{refs: []string{e2eImages + "kitten:1.8"}, why: "an image mounted as a volume: the data.json and Alpine /etc/os-release the spec reads",
			cmd: []string{"sh"}, extra: []fixture.Entry{
				file("data.json", `{"image": "kitten.jpg"}`+"\n", 0o644),
				file("kitten.jpg", "", 0o644),
				file("etc/os-release", "NAME=\"Alpine Linux\"\nID=alpine\n", 0o644),
			}},
	}
}

// image builds the stand-in over busybox's layer and the shell's layers, or over agnhost's
// image (which has the shell's).
func (s standin) image(bb []byte, sh []v1.Layer, agnhost v1.Image) (v1.Image, error) {
	var img v1.Image
	var err error
	if s.agnhost {
		img = agnhost
	} else if img, err = fixture.OCIImage(s.cmd, bb); err != nil {
		return nil, err
	} else if img, err = mutate.AppendLayers(img, sh...); err != nil {
		return nil, err
	}
	if len(s.extra) > 0 {
		lt, err := fixture.LayerTar(s.extra)
		if err != nil {
			return nil, err
		}
		l, err := fixture.Layer(lt)
		if err != nil {
			return nil, err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	if s.entrypoint != nil {
		cf.Config.Entrypoint = s.entrypoint
	}
	if s.cmd != nil {
		cf.Config.Cmd = s.cmd
	}
	cf.Config.User = s.user
	return mutate.ConfigFile(img, cf)
}

// standinImages builds the stand-ins' programs (testdata) and every stand-in, agnhost
// among them, keyed by the references the suite pulls.
func standinImages(t *testing.T, kubeDir string) map[string]v1.Image {
	t.Helper()
	nnp, netutil := program(t, "./testdata/nnp"), program(t, "./testdata/netutil")
	bb, err := fixture.BusyboxLayerTar()
	if err != nil {
		t.Fatal(err)
	}
	agnhostRef, agnhost, err := clustertest.AgnhostImage(kubeDir)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := shell(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if agnhost, err = mutate.AppendLayers(agnhost, sh...); err != nil {
		t.Fatal(err)
	}
	if agnhost, err = withExtras(t, agnhost, netutil); err != nil {
		t.Fatal(err)
	}
	imgs := map[string]v1.Image{agnhostRef: agnhost}
	for _, s := range standins(nnp) {
		img, err := s.image(bb, sh, agnhost)
		if err != nil {
			t.Fatalf("stand-in %s: %v", s.refs[0], err)
		}
		for _, r := range s.refs {
			imgs[r] = img
		}
	}
	return imgs
}

// program builds a static program of this package's testdata and returns it.
func program(t *testing.T, pkg string) []byte {
	t.Helper()
	bin := filepath.Join(t.TempDir(), path.Base(pkg))
	build := exec.Command("go", "build", "-trimpath", "-o", bin, pkg)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withExtras adds to agnhost what upstream's image has beside the program
// (test/images/agnhost/Dockerfile) and the specs use: /agnhost-2, the same program under
// another name (entrypoint-tester); a TLS key and certificate for localhost at
// /localhost.key and /localhost.crt (netexec's HTTPS, which probes and hooks reach without
// checking it), made here; /uploads (netexec's); bash, curl and nc, which upstream's Alpine
// installs and exec hooks, probes and the networking specs run, here Debian's bash (shell's
// layers, which agnhost has below this one) and testdata/netutil (the forms of curl and nc
// the specs use, built for the test); and what its fake-registry-server serves
// (prepare_registry.sh): pause 3.10.2, as kube/images makes it, under the tag "testing", in
// the server's layout under /var/registry/pause.
func withExtras(t *testing.T, agnhost v1.Image, netutil []byte) (v1.Image, error) {
	t.Helper()
	src, err := images.Binaries(t.Context(), repoRoot(t), io.Discard)
	if err != nil {
		return nil, err
	}
	kubeadm, err := images.Build(t.Context(), src)
	if err != nil {
		return nil, err
	}
	pause := kubeadm[images.Registry+"/pause:"+images.PauseVersion]
	if pause == nil {
		return nil, fmt.Errorf("kube/images built no pause %s", images.PauseVersion)
	}
	es, err := registryEntries("var/registry/pause", "testing", pause)
	if err != nil {
		return nil, fmt.Errorf("pause in the fake registry: %w", err)
	}
	key, cert, err := localhostCert()
	if err != nil {
		return nil, err
	}
	file := func(p, body string, mode int64) fixture.Entry {
		return fixture.Entry{Header: tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: mode}, Body: body}
	}
	es = append(es,
		fixture.Entry{Header: tar.Header{Name: "agnhost-2", Typeflag: tar.TypeSymlink, Linkname: "agnhost", Mode: 0o777}},
		file("localhost.crt", string(cert), 0o644),
		file("localhost.key", string(key), 0o644),
		fixture.Entry{Header: tar.Header{Name: "uploads/", Typeflag: tar.TypeDir, Mode: 0o755}},
		// Over busybox's nc, which has no UDP.
		file("bin/nc", string(netutil), 0o755),
		fixture.Entry{Header: tar.Header{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755}},
		fixture.Entry{Header: tar.Header{Name: "usr/bin/", Typeflag: tar.TypeDir, Mode: 0o755}},
		fixture.Entry{Header: tar.Header{Name: "usr/bin/curl", Typeflag: tar.TypeLink, Linkname: "bin/nc"}},
	)
	lt, err := fixture.LayerTar(es)
	if err != nil {
		return nil, err
	}
	l, err := fixture.Layer(lt)
	if err != nil {
		return nil, err
	}
	return mutate.AppendLayers(agnhost, l)
}

// shell is the stand-ins' sh and bash: Debian's bash (sh runs it in POSIX mode), as two
// layers every stand-in shares: this machine's bash with its libraries (images.HostLayer), and
// /bin/sh and /bin/bash linking to it over busybox's applets. Busybox-static's ash (Debian's
// 1.35) will not do: it runs its own applet for a name it has (nc, which has no UDP) before
// looking in PATH, and leaves environment variables whose names are not shell identifiers
// (data-1, 1-data: Kubernetes passes them since v1.34) out of what it runs, which four
// ConfigMap and Secret specs read back with sh -c env. Upstream's images (busybox 1.37,
// Alpine's) do neither; what bash does differently, one spec sees (knownFailures).
func shell(ctx context.Context) ([]v1.Layer, error) {
	// Where bash is, not through /bin: on a merged-/usr machine the layer would bring the
	// link /bin -> usr/bin, which hides busybox's /bin.
	bash, err := filepath.EvalSymlinks("/bin/bash")
	if err != nil {
		return nil, fmt.Errorf("bash: %w", err)
	}
	host, err := images.HostLayer(ctx, bash)
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel("/bin", bash)
	if err != nil {
		return nil, fmt.Errorf("bash: %w", err)
	}
	link := func(name string) fixture.Entry {
		return fixture.Entry{Header: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: rel, Mode: 0o777}}
	}
	es := []fixture.Entry{{Header: tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}}}
	if bash != "/bin/bash" {
		es = append(es, link("bin/bash"))
	}
	lt, err := fixture.LayerTar(append(es, link("bin/sh")))
	if err != nil {
		return nil, err
	}
	links, err := fixture.Layer(lt)
	if err != nil {
		return nil, err
	}
	return []v1.Layer{host, links}, nil
}

// localhostCert is a self-signed ECDSA key and certificate for localhost, PEM-encoded.
func localhostCert() (key, cert []byte, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// registryEntries lays img out as agnhost's fake-registry-server reads it, under dir with
// tag.
func registryEntries(dir, tag string, img v1.Image) ([]fixture.Entry, error) {
	manifest, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	configDigest, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	var es []fixture.Entry
	made := map[string]bool{}
	add := func(p string, body []byte) {
		var parents []string
		for d := path.Dir(p); d != "." && !made[d]; d = path.Dir(d) {
			made[d] = true
			parents = append(parents, d)
		}
		for _, d := range slices.Backward(parents) {
			es = append(es, fixture.Entry{Header: tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755}})
		}
		es = append(es, fixture.Entry{Header: tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: 0o644}, Body: string(body)})
	}
	byDigest := func(kind string, h v1.Hash) string {
		return path.Join(dir, kind, h.Algorithm, h.Hex[:2], h.Hex, "data")
	}
	add(path.Join(dir, "manifests", tag), []byte(digest.String()+"\n"))
	add(byDigest("manifests", digest), manifest)
	add(byDigest("blobs", configDigest), config)
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		h, err := l.Digest()
		if err != nil {
			return nil, err
		}
		rc, err := l.Compressed()
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		add(byDigest("blobs", h), b)
	}
	return es, nil
}

// repoRoot is the module's root, where tools/ is.
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestRegistryEntries checks the fake registry's layout of an image: the tag names the
// manifest's digest, and every blob and manifest is stored under its own digest, so that
// what the server serves is what the manifest asks for.
func TestRegistryEntries(t *testing.T) {
	lt, err := fixture.LayerTar([]fixture.Entry{{Header: tar.Header{Name: "pause", Typeflag: tar.TypeReg, Mode: 0o755}, Body: "#!/bin/sh\n"}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := fixture.OCIImage([]string{"/pause"}, lt)
	if err != nil {
		t.Fatal(err)
	}
	es, err := registryEntries("var/registry/pause", "testing", img)
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := img.Digest()
	config, _ := img.ConfigName()
	layers, _ := img.Layers()
	layer, _ := layers[0].Digest()
	files := map[string]string{}
	dirs := map[string]bool{".": true}
	for _, e := range es {
		switch e.Header.Typeflag {
		case tar.TypeDir:
			dirs[strings.TrimSuffix(e.Header.Name, "/")] = true
		case tar.TypeReg:
			if !dirs[path.Dir(e.Header.Name)] {
				t.Errorf("%s comes before its directory", e.Header.Name)
			}
			files[e.Header.Name] = e.Body
		}
	}
	if got := files["var/registry/pause/manifests/testing"]; got != digest.String()+"\n" {
		t.Errorf("tag file holds %q, want the manifest's digest %s", got, digest)
	}
	want := map[string]string{
		"manifests": digest.Hex,
		"blobs":     config.Hex,
	}
	for kind, h := range want {
		p := path.Join("var/registry/pause", kind, "sha256", h[:2], h, "data")
		if _, ok := files[p]; !ok {
			t.Errorf("no %s", p)
		}
	}
	p := path.Join("var/registry/pause/blobs/sha256", layer.Hex[:2], layer.Hex, "data")
	if _, ok := files[p]; !ok {
		t.Errorf("no layer blob %s", p)
	}
	for name, body := range files {
		if strings.HasSuffix(name, "/testing") {
			continue
		}
		sum := sha256.Sum256([]byte(body))
		if h := path.Base(path.Dir(name)); h != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: content's sha256 is %x", name, sum)
		}
	}
	if len(files) != 4 {
		t.Errorf("%d files, want the tag, the manifest, the config and one layer", len(files))
	}
}

// TestNetutil runs the agnhost stand-in's curl and nc as the specs do: a GET with their
// options prints the body, or just the status; an unreachable server is curl's exit 7; nc
// sends a UDP datagram and prints the answer, or a TCP stream and prints the reply; what
// they do not know is refused.
func TestNetutil(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "netutil")
	if err := os.WriteFile(bin, program(t, "./testdata/netutil"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"curl", "nc"} {
		if err := os.Symlink(bin, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "%s %s", r.Method, r.URL.RequestURI())
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	// netexec's UDP handler answers each datagram.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1024)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte("node-1:"+strings.TrimSpace(string(buf[:n]))), addr)
		}
	}()
	// A TCP server that answers once its client has sent all.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b, _ := io.ReadAll(c)
			c.Write([]byte(strings.ToUpper(string(b))))
			c.Close()
		}
	}()
	port := func(a net.Addr) string { _, p, _ := net.SplitHostPort(a.String()); return p }
	for _, tc := range []struct {
		cmd  []string
		in   string
		code int
		want string
	}{
		{[]string{"curl", srv.URL + "/echo?msg=poststart"}, "", 0, "GET /echo?msg=poststart"},
		{[]string{"curl", "-g", "-q", "-s", "--max-time", "15", "--connect-timeout", "1", srv.URL + "/hostName"}, "", 0, "GET /hostName"},
		{[]string{"curl", "-g", "-q", "-s", "-o", "/dev/null", "-w", "%{http_code}", srv.URL + "/missing"}, "", 0, "404"},
		{[]string{"curl", "-X", "POST", srv.URL + "/x"}, "", 0, "POST /x"},
		{[]string{"curl", "--connect-timeout", "1", closed.URL}, "", 7, ""},
		{[]string{"curl", "-L", srv.URL}, "", 2, ""},
		{[]string{"curl", "-w", "%{time_total}", srv.URL}, "", 2, ""},
		{[]string{"curl", "-s"}, "", 2, ""},
		{[]string{"nc", "-w", "1", "-u", "127.0.0.1", port(pc.LocalAddr())}, "hostName\n", 0, "node-1:hostName"},
		{[]string{"nc", "127.0.0.1", port(l.Addr())}, "hello", 0, "HELLO"},
		{[]string{"nc", "-z", "127.0.0.1", "1"}, "", 2, ""},
		{[]string{"nc", "127.0.0.1"}, "", 2, ""},
	} {
		cmd := exec.Command(filepath.Join(dir, tc.cmd[0]), tc.cmd[1:]...)
		cmd.Stdin = strings.NewReader(tc.in)
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%q: %v", tc.cmd, err)
		}
		if code != tc.code || string(out) != tc.want {
			t.Errorf("%q: exit %d, %q; want %d, %q", tc.cmd, code, out, tc.code, tc.want)
		}
	}
	// Input nc cannot read (a directory) is a failed send: exit 1, whatever came back.
	stdin, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	cmd := exec.Command(filepath.Join(dir, "nc"), "-w", "1", "-u", "127.0.0.1", port(pc.LocalAddr()))
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "send: ") {
		t.Errorf("nc with a directory as input: %v, %q; want exit 1 and the send's error", err, out)
	}
}

// TestShell runs the stand-ins' sh chrooted into a tree of busybox, a /bin/nc and the shell's
// layers unpacked over them, as a stand-in has them: the shell finds nc in PATH, and passes
// on environment variables whose names are no shell identifiers.
func TestShell(t *testing.T) {
	testenv.RequireRoot(t) // chroot
	sh, err := shell(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(fixture.BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	lt, err := fixture.LayerTar([]fixture.Entry{
		{Header: tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}},
		{Header: tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755}, Body: string(bb)},
		{Header: tar.Header{Name: "bin/env", Typeflag: tar.TypeSymlink, Linkname: "busybox"}},
		{Header: tar.Header{Name: "bin/nc", Typeflag: tar.TypeReg, Mode: 0o755}, Body: "#!/bin/sh\necho nc from PATH: $*\n"},
		// Busybox's ash, which would run its own nc applet: the shell's layers replace it.
		{Header: tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	base, err := fixture.Layer(lt)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, l := range append([]v1.Layer{base}, sh...) {
		unpack(t, root, l)
	}
	cmd := exec.Command("/bin/sh", "-c", "nc -w 1 -u 10.0.0.1 8081; env")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	cmd.Env = []string{"PATH=/bin", "1-data=x", "$_-data=y"}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sh -c in the stand-in's tree: %v\n%s", err, out)
	}
	for _, want := range []string{"nc from PATH: -w 1 -u 10.0.0.1 8081\n", "\n1-data=x\n", "\n$_-data=y\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("sh -c 'nc …; env' in the stand-in's tree printed %q, want %q in it", out, want)
		}
	}
}

// unpack extracts l under root (tarx, as the runtime unpacks layers), an entry replacing
// what a lower layer left at its path.
func unpack(t *testing.T, root string, l v1.Layer) {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := tarx.Extract(t.Context(), rc, root, tarx.Options{}); err != nil {
		t.Fatal(err)
	}
}
