package cri

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/appc/spec/schema"

	"github.com/cairn-os/cairn/runtime/image"
)

func TestImageRefs(t *testing.T) {
	for ref, want := range map[string][]string{
		"busybox":                                {"docker.io/library/busybox:latest", "busybox"},
		"busybox:1.36":                           {"docker.io/library/busybox:1.36", "busybox:1.36"},
		"registry.k8s.io/pause:3.10":             {"registry.k8s.io/pause:3.10"},
		"sha256:" + repeat("ab", 32):             {"sha256:" + repeat("ab", 32)},
		"sha512-0123":                            {"sha512-0123"},
		"quay.io/x/y@sha256:" + repeat("cd", 32): {"quay.io/x/y@sha256:" + repeat("cd", 32), "sha256:" + repeat("cd", 32)},
		"example.com/app:v1.0":                   {"example.com/app:v1.0"},
	} {
		if got := imageRefs(ref); !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", ref, got, want)
		}
	}
}

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}

// Repo tags and digests as containerd lists them.
func TestRepoNames(t *testing.T) {
	id := "sha256:" + repeat("ab", 32)
	img := &image.Image{ID: id, Format: image.OCI, Name: "docker.io/library/busybox:latest",
		Aliases: []string{"docker.io/library/busybox:1.36", "quay.io/mirror/busybox:1.36", "quay.io/mirror/busybox@" + id}}
	tags, digests := repoNames(img)
	if !slices.Equal(tags, []string{"docker.io/library/busybox:latest", "docker.io/library/busybox:1.36", "quay.io/mirror/busybox:1.36"}) {
		t.Errorf("tags %q", tags)
	}
	if !slices.Equal(digests, []string{"docker.io/library/busybox@" + id, "quay.io/mirror/busybox@" + id}) {
		t.Errorf("digests %q", digests)
	}
	aci := &image.Image{ID: "sha512-01", Format: image.ACI, Name: "example.com/etcd", Labels: map[string]string{"version": "v3"}, ACIManifest: &schema.ImageManifest{}}
	if tags, digests := repoNames(aci); !slices.Equal(tags, []string{"example.com/etcd:v3"}) || digests != nil {
		t.Errorf("ACI: %q %q", tags, digests)
	}
}

// A mirrored registry's requests go to the mirror, path prefix kept; others go as they are.
func TestMirrorTransport(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Host+r.URL.Path)
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	mirrors, err := parseMirrors(map[string]string{"registry.k8s.io": srv.URL + "/k8s"})
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &mirrorTransport{base: http.DefaultTransport, mirrors: mirrors}}
	resp, err := c.Get("https://registry.k8s.io/v2/pause/manifests/3.10")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(got) != 1 || got[0] != srv.Listener.Addr().String()+"/k8s/v2/pause/manifests/3.10" {
		t.Fatalf("mirror got %q", got)
	}
	for _, bad := range []map[string]string{{"registry.k8s.io": "ftp://x"}, {"": "http://x"}, {"a/b": "http://x"}, {"r": "http://"}} {
		if _, err := parseMirrors(bad); err == nil {
			t.Errorf("mirror %v accepted", bad)
		}
	}
}
