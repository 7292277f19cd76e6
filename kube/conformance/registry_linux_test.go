package conformance

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"path"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/runtime/fixture"
)

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
