package images

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// fakeRoot is a machine's file system as kube-proxy's userland and CoreDNS's certificates
// are read from it: a merged /usr with the loader behind two links, iptables behind
// update-alternatives.
var fakeRoot = []struct{ path, link, body string }{
	{path: "lib", link: "usr/lib"},
	{path: "lib64", link: "usr/lib64"},
	{path: "usr/lib64/ld-linux-x86-64.so.2", link: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
	{path: "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", body: "loader"},
	{path: "usr/lib/x86_64-linux-gnu/libc.so.6", body: "libc"},
	{path: "usr/sbin/nft", body: "nft"},
	{path: "usr/sbin/xtables-nft-multi", body: "xtables"},
	{path: "usr/sbin/iptables-nft", link: "xtables-nft-multi"},
	{path: "usr/sbin/iptables", link: "/etc/alternatives/iptables"},
	{path: "etc/alternatives/iptables", link: "/usr/sbin/iptables-nft"},
	{path: "etc/ssl/certs/ca-certificates.crt", body: "certificates"},
}

var fakeUserland = []string{"/usr/sbin/nft", "/usr/sbin/iptables", "/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6"}

func makeRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range fakeRoot {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if f.link != "" {
			err = os.Symlink(f.link, p)
		} else {
			err = os.WriteFile(p, []byte(f.body), 0o755)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// fakeSources are small files standing for the binaries, each holding its own name.
func fakeSources(t *testing.T) Sources {
	t.Helper()
	dir := t.TempDir()
	bin := func(p string) string {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		// 0600: the images' modes do not depend on the files'.
		if err := os.WriteFile(p, []byte(filepath.Base(p)+" binary\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, n := range ControlPlane {
		bin(filepath.Join(dir, "kubernetes-v1.37.2", n))
	}
	return Sources{
		Kube:           filepath.Join(dir, "kubernetes-v1.37.2"),
		KubeVersion:    "v1.37.2",
		Etcd:           bin(filepath.Join(dir, "etcd-v3.6.16", "etcd")),
		EtcdVersion:    "3.6.16",
		CoreDNS:        bin(filepath.Join(dir, "coredns-v1.14.6", "coredns")),
		CoreDNSVersion: "v1.14.6",
		Pause:          bin(filepath.Join(dir, "pause-3.10.2", "pause")),
		Userland:       fakeUserland,
		Root:           makeRoot(t),
	}
}

// entry is a layer's tar entry as the tests compare it.
type entry struct {
	Mode  int64
	Type  byte
	Link  string
	Body  string
	Xattr map[string]string
}

func layerEntries(t *testing.T, img v1.Image) (map[string]entry, []string) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	if mt, err := layers[0].MediaType(); err != nil || mt != types.OCILayer {
		t.Errorf("layer media type %s (%v), want %s", mt, err, types.OCILayer)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]entry{}
	var order []string
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !hdr.ModTime.Equal(epoch) || hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s: mtime %v, owner %d:%d; want %v, 0:0", hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid, epoch)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		e := entry{Mode: hdr.Mode, Type: hdr.Typeflag, Link: hdr.Linkname, Body: string(body)}
		for k, v := range hdr.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if e.Xattr == nil {
					e.Xattr = map[string]string{}
				}
				e.Xattr[x] = v
			}
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		out[name] = e
		order = append(order, name)
	}
	return out, order
}

func TestBuild(t *testing.T) {
	src := fakeSources(t)
	imgs, err := Build(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"registry.k8s.io/coredns/coredns:v1.14.6",
		"registry.k8s.io/etcd:3.6.16-0",
		"registry.k8s.io/kube-apiserver:v1.37.2",
		"registry.k8s.io/kube-controller-manager:v1.37.2",
		"registry.k8s.io/kube-proxy:v1.37.2",
		"registry.k8s.io/kube-scheduler:v1.37.2",
		"registry.k8s.io/pause:3.10.2",
	}
	if got := slices.Sorted(maps.Keys(imgs)); !slices.Equal(got, want) {
		t.Fatalf("images %q, want %q", got, want)
	}

	bin := func(body string) entry { return entry{Mode: 0o755, Type: tar.TypeReg, Body: body + " binary\n"} }
	d := entry{Mode: 0o755, Type: tar.TypeDir}
	tmp := entry{Mode: 0o1777, Type: tar.TypeDir}
	usrLocalBin := map[string]entry{"usr": d, "usr/local": d, "usr/local/bin": d, "tmp": tmp}
	with := func(m map[string]entry, more map[string]entry) map[string]entry {
		out := maps.Clone(m)
		maps.Copy(out, more)
		return out
	}
	pathEnv := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	tests := []struct {
		ref   string
		files map[string]entry
		cfg   v1.Config
	}{
		{"registry.k8s.io/kube-apiserver:v1.37.2", with(usrLocalBin, map[string]entry{"usr/local/bin/kube-apiserver": bin("kube-apiserver")}), v1.Config{Env: pathEnv}},
		{"registry.k8s.io/kube-controller-manager:v1.37.2", with(usrLocalBin, map[string]entry{"usr/local/bin/kube-controller-manager": bin("kube-controller-manager")}), v1.Config{Env: pathEnv}},
		{"registry.k8s.io/kube-scheduler:v1.37.2", with(usrLocalBin, map[string]entry{"usr/local/bin/kube-scheduler": bin("kube-scheduler")}), v1.Config{Env: pathEnv}},
		{"registry.k8s.io/kube-proxy:v1.37.2", with(usrLocalBin, map[string]entry{
			"usr/local/bin/kube-proxy":       bin("kube-proxy"),
			"usr/sbin":                       d,
			"usr/sbin/nft":                   {Mode: 0o755, Type: tar.TypeReg, Body: "nft"},
			"usr/sbin/iptables":              {Mode: 0o777, Type: tar.TypeSymlink, Link: "/etc/alternatives/iptables"},
			"etc":                            d,
			"etc/alternatives":               d,
			"etc/alternatives/iptables":      {Mode: 0o777, Type: tar.TypeSymlink, Link: "/usr/sbin/iptables-nft"},
			"usr/sbin/iptables-nft":          {Mode: 0o777, Type: tar.TypeSymlink, Link: "xtables-nft-multi"},
			"usr/sbin/xtables-nft-multi":     {Mode: 0o755, Type: tar.TypeReg, Body: "xtables"},
			"lib64":                          {Mode: 0o777, Type: tar.TypeSymlink, Link: "usr/lib64"},
			"usr/lib64":                      d,
			"usr/lib64/ld-linux-x86-64.so.2": {Mode: 0o777, Type: tar.TypeSymlink, Link: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
			"lib":                            {Mode: 0o777, Type: tar.TypeSymlink, Link: "usr/lib"},
			"usr/lib":                        d,
			"usr/lib/x86_64-linux-gnu":       d,
			"usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": {Mode: 0o755, Type: tar.TypeReg, Body: "loader"},
			"usr/lib/x86_64-linux-gnu/libc.so.6":            {Mode: 0o755, Type: tar.TypeReg, Body: "libc"},
		}), v1.Config{Env: pathEnv}},
		{"registry.k8s.io/etcd:3.6.16-0", with(usrLocalBin, map[string]entry{"usr/local/bin/etcd": bin("etcd")}), v1.Config{Env: pathEnv}},
		{"registry.k8s.io/coredns/coredns:v1.14.6", map[string]entry{
			"coredns": {Mode: 0o755, Type: tar.TypeReg, Body: "coredns binary\n",
				Xattr: map[string]string{"security.capability": "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}},
			"etc":                               d,
			"etc/ssl":                           d,
			"etc/ssl/certs":                     d,
			"etc/ssl/certs/ca-certificates.crt": {Mode: 0o644, Type: tar.TypeReg, Body: "certificates"},
			"tmp":                               tmp,
		}, v1.Config{Entrypoint: []string{"/coredns"}, User: "65532:65532", WorkingDir: "/",
			ExposedPorts: map[string]struct{}{"53/tcp": {}, "53/udp": {}}}},
		{"registry.k8s.io/pause:3.10.2", map[string]entry{"pause": bin("pause")},
			v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"}},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			img := imgs[tt.ref]
			got, order := layerEntries(t, img)
			for p, w := range tt.files {
				g, ok := got[p]
				if !ok {
					t.Errorf("%s missing", p)
					continue
				}
				if g.Mode != w.Mode || g.Type != w.Type || g.Link != w.Link || g.Body != w.Body || !maps.Equal(g.Xattr, w.Xattr) {
					t.Errorf("%s = %+v, want %+v", p, g, w)
				}
			}
			for p := range got {
				if _, ok := tt.files[p]; !ok {
					t.Errorf("unexpected %s", p)
				}
			}
			if !slices.IsSorted(order) {
				t.Errorf("entries not in order: %q", order)
			}

			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != "linux" || cf.Architecture == "" || !cf.Created.Equal(epoch) {
				t.Errorf("config os %q arch %q created %v", cf.OS, cf.Architecture, cf.Created)
			}
			c := cf.Config
			if !slices.Equal(c.Env, tt.cfg.Env) || !slices.Equal(c.Entrypoint, tt.cfg.Entrypoint) || c.Cmd != nil ||
				c.User != tt.cfg.User || c.WorkingDir != tt.cfg.WorkingDir || !maps.Equal(c.ExposedPorts, tt.cfg.ExposedPorts) {
				t.Errorf("config %+v, want %+v", c, tt.cfg)
			}
			if mt, err := img.MediaType(); err != nil || mt != types.OCIManifestSchema1 {
				t.Errorf("manifest media type %s (%v)", mt, err)
			}
		})
	}
}

func TestBuildReproducible(t *testing.T) {
	src := fakeSources(t)
	first := digests(t, src)
	// Another build, after the inputs were touched: same digests.
	later := time.Now().Add(time.Hour)
	for _, p := range []string{src.Etcd, src.CoreDNS, src.Pause, filepath.Join(src.Kube, "kube-proxy"), filepath.Join(src.Root, "usr/sbin/nft")} {
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if again := digests(t, src); !maps.Equal(first, again) {
		t.Errorf("digests changed:\n%v\n%v", first, again)
	}
	// And a changed binary changes its image only.
	if err := os.WriteFile(src.Etcd, []byte("another etcd"), 0o755); err != nil {
		t.Fatal(err)
	}
	changed := digests(t, src)
	for ref := range first {
		if (first[ref] != changed[ref]) != (ref == "registry.k8s.io/etcd:3.6.16-0") {
			t.Errorf("%s: %s then %s", ref, first[ref], changed[ref])
		}
	}
}

func digests(t *testing.T, src Sources) map[string]v1.Hash {
	t.Helper()
	imgs, err := Build(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]v1.Hash{}
	for ref, img := range imgs {
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out[ref] = d
	}
	return out
}

func TestBuildMissing(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(*Sources)
		want   []string
	}{
		{"kube-scheduler", func(s *Sources) { os.Remove(filepath.Join(s.Kube, "kube-scheduler")) }, []string{"kube-scheduler binary", "kube-scheduler"}},
		{"etcd", func(s *Sources) { s.Etcd += ".gone" }, []string{"etcd binary", "etcd.gone"}},
		{"coredns is a directory", func(s *Sources) { s.CoreDNS = filepath.Dir(s.CoreDNS) }, []string{"coredns binary", "not a regular file"}},
		{"pause", func(s *Sources) { s.Pause = "" }, []string{"pause binary"}},
		{"userland", func(s *Sources) { s.Userland = append(s.Userland, "/usr/sbin/conntrack") }, []string{"kube-proxy's userland", "/usr/sbin/conntrack"}},
		{"no userland", func(s *Sources) { s.Userland = nil }, []string{"kube-proxy's userland", "Sources.Userland"}},
		{"certificates", func(s *Sources) { os.Remove(filepath.Join(s.Root, caCertificates)) }, []string{"ca-certificates", caCertificates}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := fakeSources(t)
			tt.break_(&src)
			imgs, err := Build(t.Context(), src)
			if err == nil {
				t.Fatalf("built %d images", len(imgs))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestBuildCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Build(ctx, fakeSources(t)); !errors.Is(err, context.Canceled) {
		t.Errorf("Build after cancel: %v", err)
	}
}

func TestPush(t *testing.T) {
	imgs, err := Build(t.Context(), fakeSources(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	var progress bytes.Buffer
	if err := Push(t.Context(), imgs, host, &progress); err != nil {
		t.Fatal(err)
	}
	for ref, img := range imgs {
		want, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		names, err := pushNames(ref, host)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			r, err := name.ParseReference(n, name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			got, err := remote.Image(r, remote.WithContext(t.Context()))
			if err != nil {
				t.Fatalf("pull %s: %v", n, err)
			}
			if d, err := got.Digest(); err != nil || d != want {
				t.Errorf("%s: digest %s (%v), pushed %s", n, d, err, want)
			}
			if !strings.Contains(progress.String(), "pushed "+n+"@"+want.String()) {
				t.Errorf("progress does not name %s:\n%s", n, progress.String())
			}
		}
	}
	// kubeadm with imageRepository set pulls CoreDNS without the coredns/ directory.
	short, err := name.ParseReference(host+"/coredns:v1.14.6", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(short, remote.WithContext(t.Context())); err != nil {
		t.Errorf("kubeadm's name for CoreDNS: %v", err)
	}
}

func TestPushNames(t *testing.T) {
	tests := []struct {
		ref, registry string
		want          []string
		err           bool
	}{
		{"registry.k8s.io/kube-apiserver:v1.37.2", "10.0.0.1:5000", []string{"10.0.0.1:5000/kube-apiserver:v1.37.2"}, false},
		{"registry.k8s.io/coredns/coredns:v1.14.6", "127.0.0.1:5000", []string{"127.0.0.1:5000/coredns/coredns:v1.14.6", "127.0.0.1:5000/coredns:v1.14.6"}, false},
		{"registry.k8s.io/pause:3.10.2", "localhost:5000", []string{"localhost:5000/pause:3.10.2"}, false},
		{"docker.io/library/busybox:1", "localhost:5000", nil, true},
		{"registry.k8s.io/pause:3.10.2", "", nil, true},
	}
	for _, tt := range tests {
		got, err := pushNames(tt.ref, tt.registry)
		if (err != nil) != tt.err || !slices.Equal(got, tt.want) {
			t.Errorf("pushNames(%q, %q) = %q, %v; want %q, error %v", tt.ref, tt.registry, got, err, tt.want, tt.err)
		}
	}
}

func TestHostTree(t *testing.T) {
	root := makeRoot(t)
	d := func(p string) file { return dir(p, 0o755) }
	link := func(p, to string) file { return file{Path: p, Mode: fs.ModeSymlink | 0o777, Link: to} }
	reg := func(p string, size int64) file {
		return file{Path: p, Mode: 0o755, Src: filepath.Join(root, p), Size: size}
	}
	tests := []struct {
		name  string
		paths []string
		want  []file
		err   string
	}{
		{"plain file", []string{"/usr/sbin/nft"}, []file{d("usr"), d("usr/sbin"), reg("usr/sbin/nft", 3)}, ""},
		{"alternatives chain", []string{"/usr/sbin/iptables"}, []file{
			d("etc"), d("etc/alternatives"), link("etc/alternatives/iptables", "/usr/sbin/iptables-nft"),
			d("usr"), d("usr/sbin"), link("usr/sbin/iptables", "/etc/alternatives/iptables"),
			link("usr/sbin/iptables-nft", "xtables-nft-multi"), reg("usr/sbin/xtables-nft-multi", 7),
		}, ""},
		{"linked directories", []string{"/lib64/ld-linux-x86-64.so.2"}, []file{
			link("lib", "usr/lib"), link("lib64", "usr/lib64"), d("usr"), d("usr/lib"), d("usr/lib/x86_64-linux-gnu"),
			reg("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", 6),
			d("usr/lib64"), link("usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
		}, ""},
		{"dot-dot after a link", []string{"/lib/../sbin/nft"}, []file{
			link("lib", "usr/lib"), d("usr"), d("usr/lib"), d("usr/sbin"), reg("usr/sbin/nft", 3),
		}, ""},
		{"missing", []string{"/usr/sbin/conntrack"}, nil, "/usr/sbin/conntrack"},
		{"file as directory", []string{"/usr/sbin/nft/x"}, nil, "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := hostTree(root, tt.paths)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, tt.want, func(a, b file) bool { return sameEntry(a, b) && a.Path == b.Path && a.Size == b.Size }) {
				t.Errorf("got\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
	loop := t.TempDir()
	if err := os.Symlink("b", filepath.Join(loop, "a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(loop, "b")); err != nil {
		t.Fatal(err)
	}
	if _, err := hostTree(loop, []string{"/a"}); err == nil || !strings.Contains(err.Error(), "too many levels") {
		t.Errorf("link loop: %v", err)
	}
}

func TestWithParents(t *testing.T) {
	got, err := withParents([]file{
		{Path: "usr/local/bin/etcd", Mode: 0o755, Src: "/x/etcd"},
		dir("tmp", fs.ModeSticky|0o777),
		dir("usr", 0o700),
	})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range got {
		paths = append(paths, f.Path+" "+f.Mode.String())
	}
	want := []string{"tmp dtrwxrwxrwx", "usr drwx------", "usr/local drwxr-xr-x", "usr/local/bin drwxr-xr-x", "usr/local/bin/etcd -rwxr-xr-x"}
	if !slices.Equal(paths, want) {
		t.Errorf("got %q, want %q", paths, want)
	}
	if _, err := withParents([]file{dir("usr", 0o755), {Path: "usr", Mode: 0o644, Src: "/x"}}); err == nil {
		t.Error("a path listed as a directory and a file: no error")
	}
}

func TestLddPaths(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want []string
		err  error
	}{
		{"one file", "\tlinux-vdso.so.1 (0x00007ffc9d5f2000)\n" +
			"\tlibnftables.so.1 => /lib/x86_64-linux-gnu/libnftables.so.1 (0x00007f1c1c200000)\n" +
			"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f1c1c01f000)\n" +
			"\t/lib64/ld-linux-x86-64.so.2 (0x00007f1c1c4f4000)\n",
			[]string{"/lib/x86_64-linux-gnu/libnftables.so.1", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}, nil},
		{"several files, one static", "/usr/sbin/nft:\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x1)\n" +
			"/usr/bin/busybox:\n\tnot a dynamic executable\n/x:\n\tstatically linked\n",
			[]string{"/lib/x86_64-linux-gnu/libc.so.6"}, nil},
		{"unresolved", "\tlibmissing.so.3 => not found\n", nil, errLibNotFound},
		{"empty", "", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lddPaths([]byte(tt.out))
			if !errors.Is(err, tt.err) || !slices.Equal(got, tt.want) {
				t.Errorf("got %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
			if tt.err != nil && !strings.Contains(err.Error(), "libmissing.so.3") {
				t.Errorf("error %q does not name the library", err)
			}
		})
	}
}

func TestKeepDebFile(t *testing.T) {
	tests := map[string]bool{
		"/usr/sbin/nft":                                      true,
		"/usr/sbin/xtables-nft-multi":                        true,
		"/usr/lib/x86_64-linux-gnu/xtables/libxt_comment.so": true,
		"/lib/x86_64-linux-gnu/libnftables.so.1":             true,
		"/usr/bin/iptables-xml":                              true,
		"/lib/systemd/system/nftables.service":               false,
		"/etc/nftables.conf":                                 false,
		"/usr/share/man/man8/nft.8.gz":                       false,
		"/usr/share/doc/iptables/copyright":                  false,
		"/.":                                                 false,
		"":                                                   false,
		"usr/sbin/nft":                                       false,
	}
	for p, want := range tests {
		if got := keepDebFile(p); got != want {
			t.Errorf("keepDebFile(%q) = %v, want %v", p, got, want)
		}
	}
}
