package clustertest

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/cairn-os/cairn/kube/images"
	"github.com/cairn-os/cairn/runtime/fixture"
)

// AgnhostTag is the tag Kubernetes' e2e tests ask for (test/utils/image/manifest.go).
const AgnhostTag = "2.66.1"

// pushAgnhost builds Kubernetes' test image, agnhost (built from k8s.io/kubernetes by
// tools/kube) over the busybox fixture in place of upstream's Alpine, and pushes it.
func pushAgnhost(t *testing.T, c *Cluster) {
	t.Helper()
	bin, err := os.ReadFile(filepath.Join(c.Kube, "agnhost"))
	if err != nil {
		t.Fatalf("agnhost (tools/kube/build.sh agnhost): %v", err)
	}
	bb, err := fixture.BusyboxLayerTar()
	if err != nil {
		t.Fatal(err)
	}
	layer, err := fixture.LayerTar([]fixture.Entry{
		{Header: tar.Header{Name: "agnhost", Typeflag: tar.TypeReg, Mode: 0o755}, Body: string(bin)},
		{Header: tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777}},
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := fixture.OCIImage([]string{"pause"}, bb, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.Entrypoint = []string{"/agnhost"}
	if img, err = mutate.Config(img, cfg); err != nil {
		t.Fatal(err)
	}
	ref := "registry.k8s.io/e2e-test-images/agnhost:" + AgnhostTag
	if err := images.Push(t.Context(), map[string]v1.Image{ref: img}, c.pushTo, io.Discard); err != nil {
		t.Fatalf("push agnhost: %v", err)
	}
}
