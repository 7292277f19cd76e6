package sysext

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	ok := Spec{Name: "kubernetes-v1.37.2", OSID: "cairn", OSVersion: "1.2.0",
		Files: []File{{Path: "/usr/bin/kubelet", Mode: 0o755, Data: []byte("x")}, {Path: "/usr/lib/x", Link: "y"}}}
	for _, tc := range []struct {
		name string
		edit func(*Spec)
		want string // "" for no error
	}{
		{"valid", func(*Spec) {}, ""},
		{"name with a slash", func(s *Spec) { s.Name = "a/b" }, "name"},
		{"empty name", func(s *Spec) { s.Name = "" }, "name"},
		{"no OS version", func(s *Spec) { s.OSVersion = "" }, "VERSION_ID"},
		{"version with a space", func(s *Spec) { s.OSVersion = "1 2" }, "not an os-release value"},
		{"outside /usr", func(s *Spec) { s.Files = append(s.Files, File{Path: "/etc/x", Data: []byte{}}) }, "under /usr"},
		{"unclean path", func(s *Spec) { s.Files = append(s.Files, File{Path: "/usr/../etc/x", Data: []byte{}}) }, "under /usr"},
		{"twice", func(s *Spec) { s.Files = append(s.Files, s.Files[0]) }, "twice"},
		{"release given", func(s *Spec) {
			s.Files = append(s.Files, File{Path: ReleaseDir + "/extension-release." + s.Name, Data: []byte{}})
		}, "written from the spec"},
		{"no content", func(s *Spec) { s.Files = append(s.Files, File{Path: "/usr/bin/empty"}) }, "no content"},
		{"empty content is content", func(s *Spec) { s.Files = append(s.Files, File{Path: "/usr/bin/empty", Data: []byte{}}) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			s.Files = append([]File{}, ok.Files...)
			tc.edit(&s)
			err := s.Check()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrSpec saying %q", err, tc.want)
			}
		})
	}
}

func TestRelease(t *testing.T) {
	s := Spec{Name: "kubernetes-v1.37.2", OSID: "cairn", OSVersion: "1.2.0"}
	if got, want := s.ReleasePath(), "/usr/lib/extension-release.d/extension-release.kubernetes-v1.37.2"; got != want {
		t.Errorf("path %s, want %s", got, want)
	}
	if got, want := s.Release(), "ID=cairn\nVERSION_ID=1.2.0\n"; got != want {
		t.Errorf("release %q, want %q", got, want)
	}
}

func TestLayout(t *testing.T) {
	const hash = "00112233445566778899aabbccddeeff102132435465768798a9bacbdcedfe0f"
	for _, tc := range []struct {
		name              string
		usr, verity       int64
		hash              string
		size              int64
		usrEnd, verityEnd uint64
		err               error
	}{
		{"small", 4096, 4096, hash, 4 << 20, 4095, 6143, nil},
		{"exact MiB", 2 << 20, 1 << 20, hash, 5 << 20, 6143, 8191, nil},
		{"one byte over", 2<<20 + 1, 1 << 20, hash, 6 << 20, 8191, 10239, nil},
		{"short hash", 4096, 4096, "0011", 0, 0, 0, ErrLayout},
		{"not hex", 4096, 4096, strings.Repeat("zz", 32), 0, 0, 0, ErrLayout},
		{"empty usr", 0, 4096, hash, 0, 0, 0, ErrLayout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab, size, err := Layout(tc.usr, tc.verity, tc.hash)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("got %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if size != tc.size {
				t.Errorf("size %d, want %d", size, tc.size)
			}
			u, v := tab.Partitions[0], tab.Partitions[1]
			if u.FirstLBA != 2048 || u.LastLBA != tc.usrEnd || v.FirstLBA != tc.usrEnd+1 || v.LastLBA != tc.verityEnd {
				t.Errorf("usr %d..%d verity %d..%d", u.FirstLBA, u.LastLBA, v.FirstLBA, v.LastLBA)
			}
			if u.Type != TypeUSR || v.Type != TypeUSRVerity || u.Name != LabelUSR || v.Name != LabelUSRVerity {
				t.Errorf("types or names: %+v %+v", u, v)
			}
			// systemd matches the data partition by the root hash's first 128 bits and
			// the verity partition by its last 128 bits, as UUID text.
			if got, want := u.GUID.String(), "00112233-4455-6677-8899-AABBCCDDEEFF"; got != want {
				t.Errorf("usr UUID %s, want %s", got, want)
			}
			if got, want := v.GUID.String(), "10213243-5465-7687-98A9-BACBDCEDFE0F"; got != want {
				t.Errorf("verity UUID %s, want %s", got, want)
			}
		})
	}
}

func TestKubernetesSpec(t *testing.T) {
	s := Kubernetes(KubernetesVersion, "1.2.0", "/bin-dir", "", 1)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	by := map[string]File{}
	for _, f := range s.Files {
		by[f.Path] = f
	}
	for _, p := range []string{"/usr/bin/kubelet", "/usr/bin/kubeadm", "/usr/bin/kubectl"} {
		if by[p].Source != "/bin-dir/"+p[len("/usr/bin/"):] || by[p].Mode != 0o755 {
			t.Errorf("%s: %+v", p, by[p])
		}
	}
	if _, ok := by["/usr/bin/crictl"]; ok {
		t.Error("crictl without being asked for")
	}
	dropIn := string(by["/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"].Data)
	if !strings.Contains(dropIn, "--container-runtime-endpoint="+KubeletSocket) ||
		!strings.Contains(dropIn, "$KUBELET_CRI_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS") {
		t.Errorf("drop-in does not point kubelet at rktlet before kubeadm's and the host's flags:\n%s", dropIn)
	}
	if l := by["/usr/lib/systemd/system/multi-user.target.wants/kubelet.service"].Link; l != "../kubelet.service" {
		t.Errorf("kubelet not enabled: link %q", l)
	}
	if s.Name != "kubernetes-v1.37.2" || s.OSID != "cairn" {
		t.Errorf("spec %s for %s", s.Name, s.OSID)
	}
	if c := Kubernetes(KubernetesVersion, "1.2.0", "/b", "/tools/crictl", 1); c.Files[3].Path != "/usr/bin/crictl" {
		t.Errorf("crictl: %+v", c.Files[3])
	}
}

// A spec's digest changes with anything the image is made of, a source file's contents
// included, and not with the order of its files.
func TestDigest(t *testing.T) {
	dir := t.TempDir()
	src := dir + "/kubelet"
	if err := os.WriteFile(src, []byte("kubelet 1"), 0o755); err != nil {
		t.Fatal(err)
	}
	base := func() Spec {
		return Spec{Name: "kubernetes-v1.37.2", OSID: "cairn", OSVersion: "1.2.0", SourceDateEpoch: 1,
			Files: []File{{Path: "/usr/bin/kubelet", Mode: 0o755, Source: src}, {Path: "/usr/lib/a", Mode: 0o644, Data: []byte("a")},
				{Path: "/usr/lib/l", Link: "a"}}}
	}
	want, err := base().Digest()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Spec)
		same bool
	}{
		{"unchanged", func(*Spec) {}, true},
		{"files reordered", func(s *Spec) { slices.Reverse(s.Files) }, true},
		{"name", func(s *Spec) { s.Name = "kubernetes-v1.37.3" }, false},
		{"OS ID", func(s *Spec) { s.OSID = "flatcar" }, false},
		{"OS version", func(s *Spec) { s.OSVersion = "1.2.1" }, false},
		{"timestamp", func(s *Spec) { s.SourceDateEpoch = 2 }, false},
		{"path", func(s *Spec) { s.Files[1].Path = "/usr/lib/b" }, false},
		{"mode", func(s *Spec) { s.Files[1].Mode = 0o755 }, false},
		{"data", func(s *Spec) { s.Files[1].Data = []byte("b") }, false},
		{"link", func(s *Spec) { s.Files[2].Link = "b" }, false},
		{"a file more", func(s *Spec) { s.Files = append(s.Files, File{Path: "/usr/lib/c", Data: []byte{}}) }, false},
		{"source file's contents", func(*Spec) {
			if err := os.WriteFile(src, []byte("kubelet 2"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			tc.edit(&s)
			got, err := s.Digest()
			if err != nil {
				t.Fatal(err)
			}
			if (got == want) != tc.same {
				t.Errorf("digest %s, base %s; want the same: %v", got, want, tc.same)
			}
		})
	}
	s := base()
	s.Files[0].Source = dir + "/missing"
	if _, err := s.Digest(); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "/usr/bin/kubelet") {
		t.Errorf("a missing source: %v", err)
	}
}
