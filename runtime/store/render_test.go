package store

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"
	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/fixture/fixturetest"
)

func importACIT(t *testing.T, s *Store, o fixture.ACIOptions) string {
	t.Helper()
	var buf bytes.Buffer
	id, err := fixture.WriteACI(&buf, o)
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.ImportACI(context.Background(), &buf, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != id {
		t.Fatalf("imported as %s; built as %s", img.ID, id)
	}
	return id
}

func TestACIDependencies(t *testing.T) {
	ctx := context.Background()
	s := openT(t)
	app := fixture.ACIOptions{
		Name: "example.com/app", NoBusybox: true, Exec: []string{"/bin/app"},
		Files:        map[string]string{"bin/app": "app", "etc/shared": "from app\n"},
		Dependencies: types.Dependencies{{ImageName: "example.com/base", Labels: types.Labels{{Name: "version", Value: "2"}}}},
	}
	appID := importACIT(t, s, app)
	if _, err := s.Get(ctx, appID); !errors.Is(err, ErrDependency) || !strings.Contains(err.Error(), "example.com/base") {
		t.Fatalf("Get without the dependency: %v; want ErrDependency naming it", err)
	}
	if list, err := s.List(ctx); err != nil || len(list) != 1 {
		t.Fatalf("List with a missing dependency: %v %v", list, err)
	}
	base := fixture.ACIOptions{Name: "example.com/base", NoBusybox: true, Labels: map[string]string{"version": "2"},
		Files: map[string]string{"etc/shared": "from base\n", "etc/base": "base\n"}}
	importACIT(t, s, fixture.ACIOptions{Name: "example.com/base", NoBusybox: true, Labels: map[string]string{"version": "1"}})
	baseID := importACIT(t, s, base)
	img, err := s.Get(ctx, "example.com/app")
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Layers) != 2 || !strings.Contains(img.Layers[0], strings.TrimPrefix(baseID, "sha512-")) {
		t.Fatalf("layers %v; want base (version 2) then app", img.Layers)
	}

	out := filepath.Join(t.TempDir(), "render")
	if err := s.Render(ctx, appID, out, RenderOptions{Dependencies: true}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"rootfs/etc/shared": "from app\n", "rootfs/etc/base": "base\n", "rootfs/bin/app": "app"} {
		if b, err := os.ReadFile(filepath.Join(out, p)); err != nil || string(b) != want {
			t.Errorf("render: %s = %q, %v; want %q", p, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "manifest")); err != nil {
		t.Errorf("render: no manifest: %v", err)
	}
	if err := s.Render(ctx, appID, out, RenderOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("render into a non-empty dir: %v; want ErrExists", err)
	}
	if err := s.Render(ctx, appID, out, RenderOptions{RootfsOnly: true, Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "etc/base")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("extract (no dependencies) wrote the base's files: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "etc/shared")); string(b) != "from app\n" {
		t.Errorf("extract --rootfs-only: etc/shared = %q", b)
	}

	// By image ID: the version 1 base, whatever the labels say.
	v1ID := importACIT(t, s, fixture.ACIOptions{Name: "example.com/base", NoBusybox: true, Labels: map[string]string{"version": "1"}})
	h, _ := types.NewHash(v1ID)
	pinned := app
	pinned.Name = "example.com/pinned"
	pinned.Dependencies = types.Dependencies{{ImageName: "example.com/base", ImageID: h}}
	pinnedID := importACIT(t, s, pinned)
	img, err = s.Get(ctx, pinnedID)
	if err != nil || !strings.Contains(img.Layers[0], strings.TrimPrefix(v1ID, "sha512-")) {
		t.Fatalf("pinned dependency: %v %v", img, err)
	}
}

func TestRenderWhiteouts(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	s := openT(t)
	lower, err := fixture.LayerTar([]fixture.Entry{
		{Header: tar.Header{Name: "a", Typeflag: tar.TypeReg, Mode: 0o644}, Body: "a"},
		{Header: tar.Header{Name: "keep", Typeflag: tar.TypeReg, Mode: 0o644}, Body: "keep"},
		{Header: tar.Header{Name: "d/x", Typeflag: tar.TypeReg, Mode: 0o644}, Body: "x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	upper, err := fixture.LayerTar([]fixture.Entry{
		{Header: tar.Header{Name: ".wh.a", Typeflag: tar.TypeReg, Mode: 0o644}},
		{Header: tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755}},
		{Header: tar.Header{Name: "d/.wh..wh..opq", Typeflag: tar.TypeReg, Mode: 0o644}},
		{Header: tar.Header{Name: "d/z", Typeflag: tar.TypeReg, Mode: 0o644}, Body: "z"},
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.ImportOCI(ctx, ociT(t, lower, upper), ImportOptions{Name: "example.com/wh:1"})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := s.Render(ctx, img.ID, out, RenderOptions{Dependencies: true, Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.Walk(out, func(p string, _ os.FileInfo, _ error) error {
		rel, _ := filepath.Rel(out, p)
		got = append(got, rel)
		return nil
	})
	if strings.Join(got, ",") != ".,d,d/z,keep" {
		t.Fatalf("rendered %v; want a whited out and d opaque", got)
	}
	if err := s.Verify(ctx, img.ID); err != nil {
		t.Fatalf("verify: %v", err)
	}
}

func TestExportAndVerify(t *testing.T) {
	ctx := context.Background()
	im := fixturetest.Build(t)
	s := openT(t)
	a, err := s.ImportFile(ctx, im.ACI, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o, err := s.ImportFile(ctx, im.OCILayout, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{a.ID, o.ID} {
		if err := s.Verify(ctx, id); err != nil {
			t.Fatalf("verify fresh %s: %v", id, err)
		}
	}

	var buf bytes.Buffer
	if err := s.Export(ctx, a.ID, &buf); err != nil {
		t.Fatal(err)
	}
	if sum := sha512.Sum512(buf.Bytes()); "sha512-"+hex.EncodeToString(sum[:]) != a.ID {
		t.Fatalf("exported ACI does not hash to its ID")
	}
	ociOut := filepath.Join(t.TempDir(), "export.tar")
	f, err := os.Create(ociOut)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Export(ctx, o.ID, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s2 := openT(t)
	o2, err := s2.ImportFile(ctx, ociOut, ImportOptions{})
	if err != nil || o2.ID != o.ID || o2.Name != o.Name {
		t.Fatalf("re-import of the exported OCI archive: %v %v", o2, err)
	}
	if m, err := s.CatManifest(ctx, a.ID); err != nil || !bytes.Contains(m, []byte(`"example.com/busybox"`)) {
		t.Fatalf("cat-manifest ACI: %s %v", m, err)
	}
	if m, err := s.CatManifest(ctx, o.ID); err != nil || !bytes.Contains(m, []byte(`"layers"`)) {
		t.Fatalf("cat-manifest OCI: %s %v", m, err)
	}

	// Add a file to a tree, damage a tree file, then a blob: verify names each.
	extra := filepath.Join(a.Layers[0], "bin/implant")
	if err := os.WriteFile(extra, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, a.ID); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "rootfs/bin/implant is not in the image") {
		t.Fatalf("verify with an added file: %v", err)
	}
	os.Remove(extra)
	hello := filepath.Join(o.Layers[1], fixture.HelloPath)
	if err := os.WriteFile(hello, []byte("tampered\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, o.ID); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fixture.HelloPath) {
		t.Fatalf("verify tampered tree: %v; want ErrCorrupt naming %s", err, fixture.HelloPath)
	}
	blob := s.BlobPath("sha512:" + strings.TrimPrefix(a.ID, "sha512-"))
	os.Chmod(blob, 0o644)
	if err := os.WriteFile(blob, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, a.ID); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "blob sha512:") {
		t.Fatalf("verify tampered blob: %v; want ErrCorrupt naming the blob", err)
	}
}

// errWriter fails every write, as a full disk or a closed pipe would.
type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// An export that cannot write says so, for either format, from its very first write.
func TestExportWriteError(t *testing.T) {
	ctx := context.Background()
	im := fixturetest.Build(t)
	s := openT(t)
	for _, src := range []string{im.ACI, im.OCILayout} {
		img, err := s.ImportFile(ctx, src, ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		full := errors.New("no space left")
		if err := s.Export(ctx, img.ID, errWriter{full}); !errors.Is(err, full) {
			t.Errorf("export %s (%s) to a failing writer: %v, want the write error", img.ID, img.Format, err)
		}
	}
}
