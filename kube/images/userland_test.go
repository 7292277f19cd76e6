package images

import (
	"archive/tar"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/cairn-os/cairn/internal/testenv"
)

// TestUserland lists this machine's nftables and iptables as kube-proxy's image gets them,
// and builds the image of them.
func TestUserland(t *testing.T) {
	testenv.RequireCommand(t, "dpkg-query")
	testenv.RequireCommand(t, "ldd")
	paths, err := Userland(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/usr/sbin/nft", "/usr/sbin/iptables", "/usr/sbin/ip6tables-restore", "/usr/sbin/xtables-nft-multi", "/usr/lib/x86_64-linux-gnu/xtables/libxt_comment.so"} {
		if !slices.Contains(paths, want) {
			t.Errorf("%s missing from %q", want, paths)
		}
	}
	for _, script := range []string{"/usr/sbin/iptables-apply", "/usr/sbin/ip6tables-apply"} {
		if slices.Contains(paths, script) {
			t.Errorf("%s: a shell script, and the image has no shell", script)
		}
	}
	var nftables, loader bool
	for _, p := range paths {
		nftables = nftables || strings.Contains(p, "/libnftables.so.")
		loader = loader || strings.Contains(p, "/ld-linux")
		if strings.HasPrefix(p, "/usr/share/") || strings.HasPrefix(p, "/etc/") || strings.Contains(p, "systemd") {
			t.Errorf("%s: not needed at run time", p)
		}
	}
	if !nftables || !loader {
		t.Errorf("libnftables (%v) or the dynamic loader (%v) missing from %q", nftables, loader, paths)
	}

	src := fakeSources(t)
	src.Userland, src.Root = paths, "/"
	imgs, err := Build(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := layerEntries(t, imgs["registry.k8s.io/kube-proxy:v1.37.2"])
	for _, p := range []string{"usr/sbin/nft", "usr/sbin/iptables-restore", "lib64", "usr/lib64/ld-linux-x86-64.so.2", "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"} {
		if _, ok := files[p]; !ok {
			t.Errorf("kube-proxy's image has no %s", p)
		}
	}
}

func TestUserlandMissing(t *testing.T) {
	testenv.RequireCommand(t, "dpkg-query")
	tests := []struct {
		name string
		pkgs []debPackage
		want []string
	}{
		{"package", []debPackage{{Name: "cairn-no-such-package"}}, []string{"package cairn-no-such-package (Debian) is not installed", "tools/deps/install.sh"}},
		{"command", []debPackage{{Name: "iptables", Commands: []string{"/usr/sbin/cairn-no-such-command"}}}, []string{"package iptables (Debian)", "/usr/sbin/cairn-no-such-command"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := userland(t.Context(), tt.pkgs)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestHostLayer makes the layer of this machine's bash: the program where it is, its
// libraries and the loader at the paths ldd names, the symlinks on the way as symlinks.
func TestHostLayer(t *testing.T) {
	testenv.RequireCommand(t, "ldd")
	bash, err := filepath.EvalSymlinks("/bin/bash")
	if err != nil {
		t.Skipf("no bash: %v", err)
	}
	l, err := HostLayer(t.Context(), bash)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	files, order := layerEntries(t, img)
	body, err := os.ReadFile(bash)
	if err != nil {
		t.Fatal(err)
	}
	if e := files[strings.TrimPrefix(bash, "/")]; e.Type != tar.TypeReg || e.Body != string(body) || e.Mode&0o111 == 0 {
		t.Errorf("%s in the layer: type %c, mode %o, %d bytes; want the program, executable", bash, e.Type, e.Mode, len(e.Body))
	}
	var libc, loader bool
	for _, p := range order {
		e := files[p]
		libc = libc || strings.Contains(p, "/libc.so.6")
		loader = loader || strings.Contains(p, "/ld-linux")
		if e.Type == tar.TypeSymlink {
			if fi, err := os.Lstat("/" + p); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Errorf("%s: a symlink in the layer, not on the machine (%v)", p, err)
			}
		}
	}
	if !libc || !loader {
		t.Errorf("libc (%v) or the dynamic loader (%v) missing from %q", libc, loader, order)
	}
	if _, err := HostLayer(t.Context(), "/nonexistent/program"); err == nil || !strings.Contains(err.Error(), "/nonexistent/program") {
		t.Errorf("a missing program: %v; want an error naming it", err)
	}
}
