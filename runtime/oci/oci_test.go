package oci

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/fixture/fixturetest"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

func TestOpen(t *testing.T) {
	im := fixturetest.Build(t)
	ctx := context.Background()
	want, err := fixture.BusyboxOCIImage()
	if err != nil {
		t.Fatal(err)
	}
	wantDigest, _ := want.Digest()
	for _, tc := range []struct {
		path, name string
		kind       Kind
	}{
		{im.OCILayout, fixture.OCIName, Layout},
		{im.OCIArchive, fixture.OCIName, Archive},
		{im.DockerArchive, fixture.DockerName, DockerArchive},
	} {
		o, err := Open(ctx, tc.path, "", t.TempDir(), nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		if o.Kind != tc.kind || o.Name != tc.name {
			t.Errorf("%s: kind %s name %q; want %s %q", tc.path, o.Kind, o.Name, tc.kind, tc.name)
		}
		ls, err := o.Image.Layers()
		if err != nil || len(ls) != 2 {
			t.Errorf("%s: %d layers, %v", tc.path, len(ls), err)
		}
		if d, _ := o.Image.Digest(); tc.kind != DockerArchive && d != wantDigest {
			t.Errorf("%s: digest %s; want %s", tc.path, d, wantDigest)
		}
		o.Close()
	}
}

func TestOpenRejects(t *testing.T) {
	ctx := context.Background()
	junk := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(junk, []byte("this is not an image"), 0o644)
	if _, err := Open(ctx, junk, "", t.TempDir(), nil); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("junk: %v; want ErrUnknownFormat", err)
	}
	if _, err := Open(ctx, t.TempDir(), "", t.TempDir(), nil); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("empty dir: %v; want ErrUnknownFormat", err)
	}
	// Two images in one layout: a name must pick one.
	dir := filepath.Join(t.TempDir(), "two")
	a, err := fixture.OCIImage([]string{"/a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := fixture.OCIImage([]string{"/b"})
	if err != nil {
		t.Fatal(err)
	}
	if err := fixture.WriteOCILayout(dir, a, "example.com/a:1"); err != nil {
		t.Fatal(err)
	}
	p, _ := layout.FromPath(dir)
	if err := p.AppendImage(b, layout.WithAnnotations(map[string]string{refNameAnno: "example.com/b:1"})); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dir, "", t.TempDir(), nil); !errors.Is(err, ErrNoImage) {
		t.Errorf("two images, no name: %v; want ErrNoImage", err)
	}
	o, err := Open(ctx, dir, "example.com/b:1", t.TempDir(), nil)
	if err != nil || o.Name != "example.com/b:1" {
		t.Fatalf("pick b: %v %v", o, err)
	}
	if _, err := Open(ctx, dir, "example.com/c:1", t.TempDir(), nil); !errors.Is(err, ErrNoImage) {
		t.Errorf("unknown name: %v; want ErrNoImage", err)
	}
}

func TestArchiveOnlyFilesAndDirs(t *testing.T) {
	for _, typ := range []byte{tar.TypeSymlink, tar.TypeFifo} {
		p := filepath.Join(t.TempDir(), "bad.tar")
		f, _ := os.Create(p)
		tw := tar.NewWriter(f)
		tw.WriteHeader(&tar.Header{Name: "oci-layout", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2})
		tw.Write([]byte("{}"))
		tw.WriteHeader(&tar.Header{Name: "index.json", Typeflag: typ, Linkname: "/etc/hostname", Mode: 0o644})
		tw.Close()
		f.Close()
		if _, err := Open(context.Background(), p, "", t.TempDir(), nil); !errors.Is(err, ErrInvalidArchive) || !strings.Contains(err.Error(), "index.json") {
			t.Errorf("index.json of type %q: %v; want ErrInvalidArchive naming it", typ, err)
		}
	}
}
