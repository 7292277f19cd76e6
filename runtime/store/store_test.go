package store

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/fixture/fixturetest"
	"github.com/cairn-os/cairn/runtime/image"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func openT(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.Log = slog.New(slog.DiscardHandler)
	return s
}

func readLayerFile(t *testing.T, img *image.Image, rel string) string {
	t.Helper()
	for _, v := range slices.Backward(img.Layers) {
		b, err := os.ReadFile(filepath.Join(v, rel))
		if err == nil {
			return string(b)
		}
	}
	t.Fatalf("image %s: %s in none of its layers %v", img.Name, rel, img.Layers)
	return ""
}

// contents lists what the store holds: trees, blobs, records, temp entries.
func contents(t *testing.T, s *Store) (trees, blobs, records, tmp []string) {
	t.Helper()
	ls := func(d string) []string {
		ents, err := os.ReadDir(s.path(d))
		if err != nil {
			t.Fatal(err)
		}
		var ns []string
		for _, e := range ents {
			ns = append(ns, e.Name())
		}
		sort.Strings(ns)
		return ns
	}
	trees = ls("tree")
	for _, alg := range []string{"sha256", "sha512"} {
		for _, b := range ls("blob/" + alg) {
			blobs = append(blobs, alg+":"+b)
		}
	}
	return trees, blobs, ls("image"), ls("tmp")
}

func assertEmpty(t *testing.T, s *Store) {
	t.Helper()
	trees, blobs, records, tmp := contents(t, s)
	if len(trees)+len(blobs)+len(records)+len(tmp) != 0 {
		t.Fatalf("store not empty: trees %v blobs %v records %v tmp %v", trees, blobs, records, tmp)
	}
}

func TestImportFixtures(t *testing.T) {
	ctx := context.Background()
	im := fixturetest.Build(t)
	s := openT(t)

	a, err := s.ImportFile(ctx, im.ACI, ImportOptions{Trusted: true, Signer: im.Fingerprint})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != im.ACIID || a.Format != image.ACI || a.Name != fixture.ACIName || a.Labels["version"] != fixture.ACIVersion {
		t.Fatalf("ACI imported as %+v; want ID %s", a, im.ACIID)
	}
	if len(a.Layers) != 1 || !strings.HasSuffix(a.Layers[0], "/rootfs") {
		t.Fatalf("ACI layers %v", a.Layers)
	}
	if st, err := os.Stat(filepath.Join(a.Layers[0], "bin/busybox")); err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("busybox in ACI tree: %v %v", st, err)
	}
	if got := a.ACIManifest.App.Exec; len(got) == 0 || got[0] != "/bin/sh" {
		t.Fatalf("ACI exec %v", got)
	}
	if !a.Trusted || a.Signer != im.Fingerprint || a.Source != im.ACI {
		t.Fatalf("ACI trust/source: %+v", a)
	}

	o, err := s.ImportFile(ctx, im.OCILayout, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Format != image.OCI || o.Name != fixture.OCIName || len(o.Layers) != 2 || !strings.HasPrefix(o.ID, "sha256:") {
		t.Fatalf("OCI layout imported as %+v", o)
	}
	if got := readLayerFile(t, o, fixture.HelloPath); got != fixture.HelloText {
		t.Fatalf("hello file %q", got)
	}
	if o.OCIConfig == nil || o.OCIConfig.Config.Cmd[0] != "/bin/cat" || o.Labels["version"] != "latest" || o.Labels["arch"] != "amd64" {
		t.Fatalf("OCI config/labels: %+v %+v", o.OCIConfig, o.Labels)
	}

	// The archive holds the very same image: importing it is a no-op.
	treesBefore, blobsBefore, _, _ := contents(t, s)
	o2, err := s.ImportFile(ctx, im.OCIArchive, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if o2.ID != o.ID || !o2.ImportTime.Equal(o.ImportTime) {
		t.Fatalf("OCI archive imported as %s at %v; want the layout's %s at %v", o2.ID, o2.ImportTime, o.ID, o.ImportTime)
	}

	d, err := s.ImportFile(ctx, im.DockerArchive, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.ID == o.ID || d.Name != fixture.DockerName {
		t.Fatalf("docker archive imported as %s %q", d.ID, d.Name)
	}
	// Same layers (same diffIDs): the docker image shares the OCI image's trees.
	if strings.Join(d.Layers, ",") != strings.Join(o.Layers, ",") {
		t.Fatalf("docker layers %v, OCI layers %v: want shared trees", d.Layers, o.Layers)
	}
	treesAfter, blobsAfter, _, _ := contents(t, s)
	if len(treesAfter) != len(treesBefore) {
		t.Fatalf("docker import added trees: %v -> %v", treesBefore, treesAfter)
	}
	if len(blobsAfter) <= len(blobsBefore) {
		t.Fatalf("docker import added no blobs (its manifest and config are its own)")
	}

	for ref, want := range map[string]string{
		a.ID:                               a.ID,
		a.ID[:20]:                          a.ID,
		fixture.ACIName:                    a.ID,
		fixture.ACIName + ":" + "1.36":     a.ID,
		fixture.OCIName:                    o.ID,
		"localhost/busybox":                o.ID,
		strings.Replace(o.ID, ":", "-", 1): o.ID,
		o.ID[:15]:                          o.ID,
		fixture.DockerName:                 d.ID,
	} {
		got, err := s.Get(ctx, ref)
		if err != nil || got.ID != want {
			t.Errorf("Get(%q) = %v, %v; want %s", ref, got, err, want)
		}
	}
	for _, ref := range []string{"example.com/nothing", "sha512-00", fixture.ACIName + ":9.9"} {
		if _, err := s.Get(ctx, ref); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) = %v; want ErrNotFound", ref, err)
		}
	}
	if _, err := s.Get(ctx, "sha256:"); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("Get(sha256:) = %v; want ErrAmbiguous", err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("List: %d images, %v", len(list), err)
	}

	// rm frees what only that image used, and nothing else.
	if err := s.Remove(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if trees, blobs, _, _ := contents(t, s); strings.Join(trees, ",") != strings.Join(treesBefore, ",") || strings.Join(blobs, ",") != strings.Join(blobsBefore, ",") {
		t.Fatalf("after rm of docker image: trees %v blobs %v; want %v %v", trees, blobs, treesBefore, blobsBefore)
	}
	if got := readLayerFile(t, o, fixture.HelloPath); got != fixture.HelloText {
		t.Fatalf("OCI image damaged by rm of another: %q", got)
	}
	if err := s.Remove(ctx, o.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, a.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second rm: %v; want ErrNotFound", err)
	}
	assertEmpty(t, s)
}

// layerEntries makes a small layer tar with the given files.
func layerT(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var es []fixture.Entry
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		es = append(es, fixture.Entry{Header: tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644}, Body: files[n]})
	}
	b, err := fixture.LayerTar(es)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ociT(t *testing.T, layers ...[]byte) v1.Image {
	t.Helper()
	img, err := fixture.OCIImage([]string{"/bin/true"}, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestSharedLayersAndRemove(t *testing.T) {
	ctx := context.Background()
	s := openT(t)
	base := layerT(t, map[string]string{"base": "shared\n"})
	imgA := ociT(t, base, layerT(t, map[string]string{"a": "A\n"}))
	imgB := ociT(t, base, layerT(t, map[string]string{"b": "B\n"}))
	a, err := s.ImportOCI(ctx, imgA, ImportOptions{Name: "example.com/a:1"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.ImportOCI(ctx, imgB, ImportOptions{Name: "example.com/b:1"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Layers[0] != b.Layers[0] || a.Layers[1] == b.Layers[1] {
		t.Fatalf("layers a %v b %v: want the base shared, the tops distinct", a.Layers, b.Layers)
	}
	trees, _, _, _ := contents(t, s)
	if len(trees) != 3 {
		t.Fatalf("trees %v; want 3 (base once)", trees)
	}
	if err := s.Remove(ctx, "example.com/a:1"); err != nil {
		t.Fatal(err)
	}
	for _, p := range b.Layers {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("b's layer %s gone after rm a: %v", p, err)
		}
	}
	if _, err := os.Stat(a.Layers[1]); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a's own layer survived rm: %v", err)
	}
	if err := s.Remove(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	assertEmpty(t, s)
}

func TestGC(t *testing.T) {
	ctx := context.Background()
	s := openT(t)
	old, err := s.ImportOCI(ctx, ociT(t, layerT(t, map[string]string{"x": "old\n"})), ImportOptions{Name: "example.com/old:1"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s.Now = func() time.Time { return now.Add(48 * time.Hour) }
	fresh, err := s.ImportOCI(ctx, ociT(t, layerT(t, map[string]string{"y": "fresh\n"})), ImportOptions{Name: "example.com/fresh:1"})
	if err != nil {
		t.Fatal(err)
	}
	inUse, err := s.ImportOCI(ctx, ociT(t, layerT(t, map[string]string{"z": "used\n"})), ImportOptions{Name: "example.com/used:1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Touch(ctx, inUse.ID); err != nil {
		t.Fatal(err)
	}
	s.Now = func() time.Time { return now.Add(96 * time.Hour) }
	if err := s.Touch(ctx, inUse.ID); err != nil {
		t.Fatal(err)
	}
	// garbage: a tree and a blob no image references
	if err := os.Mkdir(s.TreePath("sha256-"+strings.Repeat("0", 64)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.BlobPath("sha256:"+strings.Repeat("1", 64)), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.InUse = func(context.Context) ([]string, error) { return nil, nil }
	removed, err := s.GC(ctx, 24*time.Hour*3) // old: 96h unused; fresh: 48h; used: 0h
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != old.ID {
		t.Fatalf("GC removed %v; want only %s", removed, old.ID)
	}
	for _, id := range []string{fresh.ID, inUse.ID} {
		if _, err := s.Get(ctx, id); err != nil {
			t.Fatalf("GC removed %s: %v", id, err)
		}
	}
	trees, blobs, _, _ := contents(t, s)
	if len(trees) != 2 || len(blobs) != 6 {
		t.Fatalf("after GC: trees %v blobs %v; want 2 trees, 6 blobs", trees, blobs)
	}
	// InUse protects whatever its age.
	s.InUse = func(context.Context) ([]string, error) { return []string{fresh.ID}, nil }
	removed, err = s.GC(ctx, 0)
	if err != nil || len(removed) != 1 || removed[0] != inUse.ID {
		t.Fatalf("GC(0) removed %v, %v; want %s", removed, err, inUse.ID)
	}
	// A negative grace period removes no image, only garbage.
	if removed, err := s.GC(ctx, -1); err != nil || len(removed) != 0 {
		t.Fatalf("GC(-1) = %v, %v", removed, err)
	}
	if _, err := s.Get(ctx, fresh.ID); err != nil {
		t.Fatal(err)
	}
}

func TestOpenClearsTemp(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(s.path("tmp"), "layer-123", "tree", "ro")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(stale), 0o555)
	if err := os.WriteFile(s.path("image", ".tmp-x.json-1"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if _, _, recs, tmp := contents(t, s); len(recs)+len(tmp) != 0 {
		t.Fatalf("stale files survive Open: %v %v", recs, tmp)
	}
}

func TestSameImageOtherName(t *testing.T) {
	ctx := context.Background()
	s := openT(t)
	img := ociT(t, layerT(t, map[string]string{"x": "x"}))
	a, err := s.ImportOCI(ctx, img, ImportOptions{Name: "example.com/x:latest"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportOCI(ctx, img, ImportOptions{Name: "example.com/x:1.0"}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"example.com/x:latest", "example.com/x", "example.com/x:1.0"} {
		if got, err := s.Get(ctx, ref); err != nil || got.ID != a.ID {
			t.Errorf("Get(%s) = %v, %v; want %s", ref, got, err, a.ID)
		}
	}
	list, _ := s.List(ctx)
	if len(list) != 1 {
		t.Fatalf("%d images; want one image under two names", len(list))
	}
	if got := list[0]; got.Name != "example.com/x:latest" || !slices.Equal(got.Aliases, []string{"example.com/x:1.0"}) {
		t.Fatalf("image named %s, aliases %v", got.Name, got.Aliases)
	}
}

func TestDockerShortNames(t *testing.T) {
	r := &record{Format: image.OCI, Name: "docker.io/library/busybox:latest", Aliases: []string{"quay.io/x/y:2"}}
	for ref, want := range map[string]bool{
		"busybox": true, "busybox:latest": true, "library/busybox": true, "docker.io/library/busybox": true,
		"docker.io/library/busybox:latest": true, "quay.io/x/y:2": true,
		"busybox:1.36": false, "busy": false, "quay.io/x/y": false,
	} {
		if got := matchName(r, ref); got != want {
			t.Errorf("matchName(%q) = %v, want %v", ref, got, want)
		}
	}
}

// A name that an image carries wins over a Docker image's short name, whichever came last.
func TestExactNameBeforeShortName(t *testing.T) {
	ctx := context.Background()
	s := openT(t)
	var buf bytes.Buffer
	if _, err := fixture.WriteACI(&buf, fixture.ACIOptions{Name: "redis", NoBusybox: true, Files: map[string]string{"aci": "x"}}); err != nil {
		t.Fatal(err)
	}
	aci, err := s.ImportACI(ctx, &buf, ImportOptions{Name: "redis"})
	if err != nil {
		t.Fatal(err)
	}
	oci, err := s.ImportOCI(ctx, ociT(t, layerT(t, map[string]string{"oci": "x"})), ImportOptions{Name: "docker.io/library/redis:latest"})
	if err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]string{"redis": aci.ID, "redis:latest": oci.ID, "library/redis": oci.ID, "docker.io/library/redis:latest": oci.ID} {
		if got, err := s.Get(ctx, ref); err != nil || got.ID != want {
			t.Errorf("Get(%s) = %v, %v; want %s", ref, got, err, want)
		}
	}
}
