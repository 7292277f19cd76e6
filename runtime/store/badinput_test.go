package store

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/aci"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/tarx"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"golang.org/x/sys/unix"
)

const goodManifest = `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/bad","app":{"exec":["/bin/true"],"user":"0","group":"0"}}`

type rawEnt struct {
	name, body, link string
	typ              byte
}

func rawTar(t *testing.T, es ...rawEnt) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: 0o644}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if typ == tar.TypeDir {
			hdr.Mode = 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// TestBadACIs: each hostile ACI fails with a one-line error naming what was wrong, and leaves
// nothing in the store and nothing outside it.
func TestBadACIs(t *testing.T) {
	outside := t.TempDir()
	manifest := rawEnt{name: "manifest", body: goodManifest}
	rootfs := rawEnt{name: "rootfs/", typ: tar.TypeDir}
	good := rawTar(t, manifest, rootfs, rawEnt{name: "rootfs/bin/true", body: strings.Repeat("x", 5000)})
	for _, tc := range []struct {
		name string
		aci  []byte
		want error
		msg  string
	}{
		{"manifest over 1 MiB", rawTar(t, rawEnt{name: "manifest", body: strings.Repeat(" ", aci.MaxManifestSize+1)}, rootfs), aci.ErrManifestTooLarge, "larger than 1 MiB"},
		{"manifest not JSON", rawTar(t, rawEnt{name: "manifest", body: "<html>"}, rootfs), aci.ErrInvalidManifest, "not JSON"},
		{"manifest fails appc validation", rawTar(t, rawEnt{name: "manifest", body: strings.Replace(goodManifest, "ImageManifest", "PodManifest", 1)}, rootfs), aci.ErrInvalidManifest, "ACKind"},
		{"no manifest", rawTar(t, rootfs), aci.ErrNoManifest, "no manifest"},
		{"manifest is a symlink", rawTar(t, rawEnt{name: "manifest", typ: tar.TypeSymlink, link: "/etc/hostname"}, rootfs), aci.ErrInvalidManifest, "manifest"},
		{"manifest is a FIFO", rawTar(t, rawEnt{name: "manifest", typ: tar.TypeFifo}, rootfs), aci.ErrInvalidManifest, "not a regular file"},
		{"rootfs is a symlink", rawTar(t, manifest, rawEnt{name: "rootfs", typ: tar.TypeSymlink, link: "/"}), nil, "no rootfs directory"},
		{"dotdot entry", rawTar(t, manifest, rootfs, rawEnt{name: "rootfs/../../pwned", body: "x"}), tarx.ErrUnsafe, `"..`},
		{"absolute entry", rawTar(t, manifest, rootfs, rawEnt{name: outside + "/pwned", body: "x"}), tarx.ErrUnsafe, "absolute path"},
		{"symlink then write through it", rawTar(t, manifest, rootfs,
			rawEnt{name: "rootfs/link", typ: tar.TypeSymlink, link: outside}, rawEnt{name: "rootfs/link/pwned", body: "x"}), tarx.ErrUnsafe, "outside the root"},
		{"hardlink escape", rawTar(t, manifest, rootfs, rawEnt{name: "rootfs/h", typ: tar.TypeLink, link: "../../../../../../etc/passwd"}), tarx.ErrUnsafe, "hardlink target"},
		{"truncated", gz(good[:len(good)-3000]), tarx.ErrTruncated, "truncated"},
		{"truncated gzip", gz(good)[:200], tarx.ErrTruncated, "truncated"},
		{"not an archive", []byte(strings.Repeat("garbage ", 200)), tarx.ErrInvalid, "invalid tar"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openT(t)
			_, err := s.ImportACI(context.Background(), bytes.NewReader(tc.aci), ImportOptions{Source: "https://example.com/bad.aci"})
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.msg) ||
				strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "import ACI https://example.com/bad.aci: ") {
				t.Fatalf("err = %v; want %v naming %q, on one line, naming the source", err, tc.want, tc.msg)
			}
			assertEmpty(t, s)
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Fatalf("%d entries written outside the store", len(ents))
			}
		})
	}
	s := openT(t)
	if _, err := s.ImportACI(context.Background(), bytes.NewReader(gz(good)), ImportOptions{}); err != nil {
		t.Fatalf("the good ACI the bad ones derive from: %v", err)
	}
}

// TestBadOCIBlobs: a layer blob whose content does not match its digest, or is cut short,
// fails the import and leaves nothing in the store, even after other layers succeeded.
func TestBadOCIBlobs(t *testing.T) {
	ctx := context.Background()
	good := layerT(t, map[string]string{"good": "g\n"})
	victim := layerT(t, map[string]string{"victim": "v\n"})
	other := layerT(t, map[string]string{"other": "o\n"})
	img := ociT(t, good, victim)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	otherLayer, err := fixture.Layer(other)
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := otherLayer.Compressed()
	var otherBlob bytes.Buffer
	otherBlob.ReadFrom(rc)
	for _, tc := range []struct {
		name  string
		spoil func(blob string) error
		want  error
		msg   string
	}{
		{"wrong digest", func(p string) error { return os.WriteFile(p, otherBlob.Bytes(), 0o644) }, ErrDigest, "does not match its digest"},
		{"same content, other bytes", func(p string) error {
			// recompressed: the diffID still matches, the blob digest does not
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			zw.Comment = "recompressed"
			zw.Write(victim)
			zw.Close()
			return os.WriteFile(p, buf.Bytes(), 0o644)
		}, ErrDigest, "blob is sha256:"},
		{"truncated blob", func(p string) error {
			b, _ := os.ReadFile(p)
			return os.WriteFile(p, b[:len(b)/2], 0o644)
		}, tarx.ErrTruncated, "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "layout")
			if err := fixture.WriteOCILayout(dir, img, "example.com/spoilt:1"); err != nil {
				t.Fatal(err)
			}
			d := m.Layers[1].Digest
			if err := tc.spoil(filepath.Join(dir, "blobs", d.Algorithm, d.Hex)); err != nil {
				t.Fatal(err)
			}
			p, err := layout.FromPath(dir)
			if err != nil {
				t.Fatal(err)
			}
			limg, err := p.Image(mustDigest(t, img))
			if err != nil {
				t.Fatal(err)
			}
			s := openT(t)
			_, err = s.ImportOCI(ctx, limg, ImportOptions{Name: "example.com/spoilt:1"})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), d.String()) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v; want %v naming layer %s and %q", err, tc.want, d, tc.msg)
			}
			assertEmpty(t, s)
		})
	}
}

func mustDigest(t *testing.T, img interface {
	Digest() (h v1Hash, err error)
}) v1Hash {
	t.Helper()
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type v1Hash = v1.Hash

// TestTrustKeepsPrivileges: device nodes and setuid bits of an ACI survive only when its
// signature was verified (ImportOptions.Trusted), as the appc spec allows.
func TestTrustKeepsPrivileges(t *testing.T) {
	testenv.RequireRoot(t)
	o := fixture.ACIOptions{Name: "example.com/priv", NoBusybox: true, Entries: []fixture.Entry{
		{Header: tar.Header{Name: "dev", Typeflag: tar.TypeDir, Mode: 0o755}},
		{Header: tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}},
		{Header: tar.Header{Name: "su", Typeflag: tar.TypeReg, Mode: 0o4755}, Body: "x"},
	}}
	for _, trusted := range []bool{false, true} {
		s := openT(t)
		var buf bytes.Buffer
		if _, err := fixture.WriteACI(&buf, o); err != nil {
			t.Fatal(err)
		}
		img, err := s.ImportACI(context.Background(), &buf, ImportOptions{Trusted: trusted})
		if err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		devErr := unix.Lstat(filepath.Join(img.Layers[0], "dev/null"), &st)
		if trusted != (devErr == nil) {
			t.Errorf("trusted=%v: dev/null: %v", trusted, devErr)
		}
		if err := unix.Lstat(filepath.Join(img.Layers[0], "su"), &st); err != nil || (st.Mode&unix.S_ISUID != 0) != trusted {
			t.Errorf("trusted=%v: su mode %o, %v", trusted, st.Mode, err)
		}
		if err := s.Verify(context.Background(), img.ID); err != nil {
			t.Errorf("trusted=%v: verify: %v", trusted, err)
		}
	}
}

// TestPrivilegedKeepsPrivileges: an OCI image imported Privileged (a CRI pull) keeps its
// setuid bits and device nodes without being Trusted, and verifies; without it, it loses them.
func TestPrivilegedKeepsPrivileges(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	for _, privileged := range []bool{false, true} {
		s := openT(t)
		layer, err := fixture.LayerTar([]fixture.Entry{
			{Header: tar.Header{Name: "dev/", Typeflag: tar.TypeDir, Mode: 0o755}},
			{Header: tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}},
			{Header: tar.Header{Name: "su", Typeflag: tar.TypeReg, Mode: 0o4755}, Body: "x"},
		})
		if err != nil {
			t.Fatal(err)
		}
		img, err := s.ImportOCI(ctx, ociT(t, layer), ImportOptions{Name: "example.com/priv:1", Privileged: privileged})
		if err != nil {
			t.Fatal(err)
		}
		if img.Trusted {
			t.Errorf("privileged=%v: the image is Trusted", privileged)
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(img.Layers[0], "dev/null"), &st); privileged != (err == nil) {
			t.Errorf("privileged=%v: dev/null: %v", privileged, err)
		}
		if err := unix.Lstat(filepath.Join(img.Layers[0], "su"), &st); err != nil || (st.Mode&unix.S_ISUID != 0) != privileged {
			t.Errorf("privileged=%v: su mode %o, %v", privileged, st.Mode, err)
		}
		if err := s.Verify(ctx, img.ID); err != nil {
			t.Errorf("privileged=%v: verify: %v", privileged, err)
		}
	}
}

func TestTrustUpgrade(t *testing.T) {
	ctx := context.Background()
	s := openT(t)
	plain := fixture.ACIOptions{Name: "example.com/plain", NoBusybox: true, Files: map[string]string{"f": "f"}}
	var buf bytes.Buffer
	fixture.WriteACI(&buf, plain)
	b := buf.Bytes()
	if img, err := s.ImportACI(ctx, bytes.NewReader(b), ImportOptions{}); err != nil || img.Trusted {
		t.Fatalf("unverified import: %v %v", img, err)
	}
	img, err := s.ImportACI(ctx, bytes.NewReader(b), ImportOptions{Trusted: true, Signer: "ABCD"})
	if err != nil || !img.Trusted || img.Signer != "ABCD" {
		t.Fatalf("verified re-import of an image that lost nothing: %+v %v; want trusted", img, err)
	}
	// One that lost a setuid bit stays untrusted: its tree is not what the signer signed.
	suid := fixture.ACIOptions{Name: "example.com/suid", NoBusybox: true, Entries: []fixture.Entry{
		{Header: tar.Header{Name: "su", Typeflag: tar.TypeReg, Mode: 0o4755}, Body: "x"}}}
	buf.Reset()
	fixture.WriteACI(&buf, suid)
	b = buf.Bytes()
	s.ImportACI(ctx, bytes.NewReader(b), ImportOptions{})
	if img, err := s.ImportACI(ctx, bytes.NewReader(b), ImportOptions{Trusted: true}); err != nil || img.Trusted {
		t.Fatalf("verified re-import of an image that lost its setuid bit: %+v %v; want untrusted", img, err)
	}
}
