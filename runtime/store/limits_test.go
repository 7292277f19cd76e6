package store

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/aci"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/fixture/fixturetest"
	"github.com/ulikunitz/xz"
)

// gzipBomb is a gzip ACI whose rootfs holds files of zeros, each size bytes: gzip members
// concatenated (a valid gzip stream), so that a few MiB stand for GiBs without compressing
// them here.
func gzipBomb(t *testing.T, files int, size int64) []byte {
	t.Helper()
	const chunk = 1 << 20
	if size%chunk != 0 {
		t.Fatalf("bomb file size %d is not a whole number of MiB", size)
	}
	zeros := gz(make([]byte, chunk))
	var out, tb bytes.Buffer
	// A writer per header: the bodies of zeros go around it, straight into the gzip stream
	// (their size is a whole number of blocks, so no padding follows them).
	header := func(h *tar.Header, body string) {
		tw := tar.NewWriter(&tb)
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if body != "" {
			tw.Write([]byte(body))
			if err := tw.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	header(&tar.Header{Name: "manifest", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(goodManifest))}, goodManifest)
	header(&tar.Header{Name: "rootfs/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	for i := range files {
		header(&tar.Header{Name: fmt.Sprintf("rootfs/zero%d", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: size}, "")
		out.Write(gz(tb.Bytes()))
		tb.Reset()
		for range size / chunk {
			out.Write(zeros)
		}
	}
	tar.NewWriter(&tb).Close() // the end marker
	out.Write(gz(tb.Bytes()))
	return out.Bytes()
}

// TestImageLimits: hostile archives that expand far beyond their size are refused as they are
// read, with an error that names the limit, the image and how to raise the limit, and leave
// nothing in the store; with the limit raised the same image imports.
func TestImageLimits(t *testing.T) {
	ctx := context.Background()
	sparseLayer := func(i int, size int64) []byte {
		b, err := fixture.SparseTar(nil, "var/log/lastlog", size, strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sparseOCI := func(sizes ...int64) func(s *Store, l Limits) error {
		var layers [][]byte
		for i, sz := range sizes {
			layers = append(layers, sparseLayer(i, sz))
		}
		img, err := fixture.OCIImage([]string{"/bin/true"}, layers...)
		if err != nil {
			t.Fatal(err)
		}
		return func(s *Store, l Limits) error {
			_, err := s.ImportOCI(ctx, img, ImportOptions{Name: "example.com/sparse:1", Limits: l})
			return err
		}
	}
	aciBytes := func(b []byte) func(s *Store, l Limits) error {
		return func(s *Store, l Limits) error {
			_, err := s.ImportACI(ctx, bytes.NewReader(b), ImportOptions{Source: "https://example.com/bomb.aci", Limits: l})
			return err
		}
	}
	var tiny []rawEnt
	tiny = append(tiny, rawEnt{name: "manifest", body: goodManifest}, rawEnt{name: "rootfs/", typ: tar.TypeDir})
	for i := range 1200 {
		tiny = append(tiny, rawEnt{name: fmt.Sprintf("rootfs/d%02d/f%04d", i%20, i)})
	}
	for _, tc := range []struct {
		name   string
		do     func(s *Store, l Limits) error
		limits Limits // what refuses it (zero: the defaults)
		msg    []string
		raised *Limits // what accepts it (nil: not tried, too big to write here)
	}{
		{"gzip bomb: 4 MiB of ACI, 4 GiB of zeros in one file", aciBytes(gzipBomb(t, 1, 4<<30)), Limits{},
			[]string{"import ACI https://example.com/bomb.aci: image too large: expands more than 100-fold", `at entry "rootfs/zero0"`, "maxCompressionRatio, the default)"},
			nil},
		{"gzip bomb: files of 1 MiB of zeros", aciBytes(gzipBomb(t, 70, 1<<20)), Limits{},
			[]string{"expands more than 100-fold", "maxCompressionRatio, the default"},
			&Limits{MaxCompressionRatio: 10000}},
		{"OCI layer with a sparse file of a TiB", sparseOCI(1 << 40), Limits{},
			[]string{"import OCI image example.com/sparse:1: layer sha256:", "image too large: extracts to more than 16 GiB (a file of 1.0 TiB)", `at entry "var/log/lastlog"`, "maxImageSize, the default"},
			nil},
		{"OCI layer with a sparse file just past the grace", sparseOCI(RatioGrace + 1<<20), Limits{},
			[]string{"expands more than 100-fold", "maxCompressionRatio"},
			&Limits{MaxCompressionRatio: 1 << 30}},
		{"OCI layers that only together pass the limit", sparseOCI(30<<20, 30<<20), Limits{MaxImageSize: 50 << 20, MaxCompressionRatio: 1 << 30},
			[]string{"extracts to more than 50 MiB", "maxImageSize"},
			&Limits{MaxImageSize: 60 << 20, MaxCompressionRatio: 1 << 30}},
		{"many tiny entries", aciBytes(gz(rawTar(t, tiny...))), Limits{MaxImageEntries: 1000, Origin: map[string]string{"maxImageEntries": "/etc/rkt/store.d/50-small.json"}, ConfigDir: "/etc/rkt/store.d"},
			[]string{"more than 1000 files, directories and links", "store limit maxImageEntries, set in /etc/rkt/store.d/50-small.json; raise it there)"},
			&Limits{MaxImageEntries: 1300}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openT(t)
			err := tc.do(s, tc.limits)
			t.Logf("refused: %v", err)
			if !errors.Is(err, ErrTooLarge) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v; want ErrTooLarge on one line", err)
			}
			for _, m := range tc.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("err = %v; want it to say %q", err, m)
				}
			}
			assertEmpty(t, s)
			if tc.raised == nil {
				return
			}
			if err := tc.do(s, *tc.raised); err != nil {
				t.Fatalf("with the limit raised: %v", err)
			}
		})
	}
}

// TestACIKeptAsFetched: an ACI's blob is the file as it came, in any compression, while its ID
// is the digest of the tar inside; verify, export (uncompressed, as rkt's), render and
// cat-manifest read it, and read the uncompressed blobs of older stores alike.
func TestACIKeptAsFetched(t *testing.T) {
	ctx := context.Background()
	var plain bytes.Buffer
	id, err := fixture.WriteACI(&plain, fixture.ACIOptions{Name: "example.com/kept", NoBusybox: true, Exec: []string{"/hello"},
		Files: map[string]string{"hello": strings.Repeat("hello\n", 1000)}})
	if err != nil {
		t.Fatal(err)
	}
	var xzb bytes.Buffer
	xw, err := xz.NewWriter(&xzb)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write(plain.Bytes())
	if err := xw.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		aci  []byte
	}{
		{"plain", plain.Bytes()},
		{"gzip", gz(plain.Bytes())},
		{"xz", xzb.Bytes()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openT(t)
			img, err := s.ImportACI(ctx, bytes.NewReader(tc.aci), ImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if img.ID != id {
				t.Fatalf("imported as %s; want the digest of the tar inside, %s", img.ID, id)
			}
			blob := s.BlobPath("sha512:" + strings.TrimPrefix(id, "sha512-"))
			if b, err := os.ReadFile(blob); err != nil || !bytes.Equal(b, tc.aci) {
				t.Fatalf("blob holds %d bytes (%v); want the %d bytes imported", len(b), err, len(tc.aci))
			}
			m, err := s.CatManifest(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if want := int64(len(tc.aci) + len(m) + 6000); img.Size != want {
				t.Errorf("size %d; want the blob and the files, %d", img.Size, want)
			}
			check := func(t *testing.T) {
				t.Helper()
				if err := s.Verify(ctx, id); err != nil {
					t.Fatalf("verify: %v", err)
				}
				var out bytes.Buffer
				if err := s.Export(ctx, id, &out); err != nil {
					t.Fatal(err)
				}
				if sum := sha512.Sum512(out.Bytes()); "sha512-"+hex.EncodeToString(sum[:]) != id || !bytes.Equal(out.Bytes(), plain.Bytes()) {
					t.Fatalf("export is not the uncompressed ACI")
				}
				if m, err := s.CatManifest(ctx, id); err != nil || !bytes.Contains(m, []byte(`"example.com/kept"`)) {
					t.Fatalf("cat-manifest: %s %v", m, err)
				}
				dir := filepath.Join(t.TempDir(), "render")
				if err := s.Render(ctx, id, dir, RenderOptions{Overwrite: true}); err != nil {
					t.Fatal(err)
				}
				if b, err := os.ReadFile(filepath.Join(dir, aci.RootfsDir, "hello")); err != nil || len(b) != 6000 {
					t.Fatalf("rendered hello: %d bytes, %v", len(b), err)
				}
			}
			check(t)
			// An older store kept the uncompressed tar.
			if err := os.WriteFile(blob, plain.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			check(t)
			// A compressed blob that lost its tail is damage, named as the blob's.
			if len(tc.aci) != plain.Len() {
				if err := os.WriteFile(blob, tc.aci[:len(tc.aci)-20], 0o644); err != nil {
					t.Fatal(err)
				}
				if err := s.Verify(ctx, id); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "blob sha512:") {
					t.Fatalf("verify of a truncated blob: %v; want ErrCorrupt naming the blob", err)
				}
			}
		})
	}
}

// The busybox fixture, gzipped, stays gzipped in the store.
func TestACIBlobCompressed(t *testing.T) {
	im := fixturetest.Build(t)
	s := openT(t)
	img, err := s.ImportFile(context.Background(), im.ACI, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fetched, err := os.ReadFile(im.ACI)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(s.BlobPath("sha512:" + strings.TrimPrefix(img.ID, "sha512-")))
	if err != nil || st.Size() != int64(len(fetched)) {
		t.Fatalf("blob: %v, %v; want the %d bytes fetched", st, err, len(fetched))
	}
	var out bytes.Buffer
	if err := s.Export(context.Background(), img.ID, &out); err != nil {
		t.Fatal(err)
	}
	if int64(out.Len()) <= st.Size() {
		t.Fatalf("exported %d bytes from a blob of %d: the blob was to be the compressed ACI", out.Len(), st.Size())
	}
}

// An OCI archive is unpacked within limits too, before its layers are.
func TestOCIArchiveLimit(t *testing.T) {
	im := fixturetest.Build(t)
	s := openT(t)
	_, err := s.ImportFile(context.Background(), im.OCIArchive, ImportOptions{Limits: Limits{MaxImageEntries: 3}})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "OCI archive") {
		t.Fatalf("err = %v; want ErrTooLarge while unpacking the OCI archive", err)
	}
	assertEmpty(t, s)
	testenv.SkipShort(t, "imports the image")
	if _, err := s.ImportFile(context.Background(), im.OCIArchive, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestBudget: which charge of a sequence goes past which limit, across the layers of one
// import.
func TestBudget(t *testing.T) {
	type charge struct {
		layer int   // which archive of the import
		size  int64 // declared size
		in    int64 // bytes of that archive read so far
	}
	for _, tc := range []struct {
		name    string
		limits  Limits
		charges []charge
		fail    int    // index of the charge refused, -1 for none
		setting string // the limit named
	}{
		{"within every limit", Limits{}, []charge{{0, 1 << 30, 20 << 20}, {1, 1 << 30, 20 << 20}}, -1, ""},
		{"one file over the size at once", Limits{MaxImageSize: 1 << 30}, []charge{{0, 1<<30 + 1, 1 << 30}}, 0, "maxImageSize"},
		{"a declared size that would overflow a sum", Limits{MaxImageSize: maxLimit + 5}, []charge{{0, 1 << 62, 1 << 62}, {0, 1<<63 - 1, 1 << 62}}, 0, "maxImageSize"},
		{"the total over two layers", Limits{MaxImageSize: 100}, []charge{{0, 60, 60}, {1, 30, 30}, {1, 20, 50}}, 2, "maxImageSize"},
		{"entries over two layers", Limits{MaxImageEntries: 3}, []charge{{0, 0, 1}, {1, 0, 1}, {0, 0, 1}, {1, 0, 1}}, 3, "maxImageEntries"},
		{"a high ratio within the grace", Limits{}, []charge{{0, RatioGrace, 1}}, -1, ""},
		{"past the grace at 100-fold", Limits{}, []charge{{0, RatioGrace, 1 << 20}, {0, 1, 1 << 20}}, -1, ""},
		{"past the grace beyond 100-fold", Limits{}, []charge{{0, RatioGrace, RatioGrace/100 - 1}, {0, 1, RatioGrace/100 - 1}}, 1, "maxCompressionRatio"},
		{"the ratio is each layer's own", Limits{MaxCompressionRatio: 2}, []charge{{0, RatioGrace, 1}, {1, RatioGrace, 1}}, -1, ""},
		{"a raised ratio", Limits{MaxCompressionRatio: 1000}, []charge{{0, 2 * RatioGrace, RatioGrace / 500}}, -1, ""},
		// Past the grace by one large file, whose data the archive has then been read past.
		{"a large file at 3-fold", Limits{}, []charge{{0, 114 << 20, 38 << 20}}, -1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBudget(tc.limits)
			ins := map[int]int64{}
			layers := map[int]*layerBudget{}
			fail := -1
			var err error
			for i, c := range tc.charges {
				if layers[c.layer] == nil {
					layer := c.layer
					layers[layer] = b.layer(func() int64 { return ins[layer] })
				}
				ins[c.layer] = c.in
				// As tarx does: the header's size charged, then the content written.
				if err = layers[c.layer].Charge("f", c.size); err == nil {
					err = layers[c.layer].Wrote("f", c.size)
				}
				if err != nil {
					fail = i
					break
				}
			}
			if fail != tc.fail || (err != nil && (!errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "store limit "+tc.setting))) {
				t.Fatalf("charge %d refused: %v; want charge %d refused naming %s", fail, err, tc.fail, tc.setting)
			}
		})
	}
	if l := (Limits{MaxImageSize: 1 << 62}).withDefaults(); l.MaxImageSize != maxLimit || l.MaxImageEntries != DefaultLimits.MaxImageEntries {
		t.Fatalf("withDefaults: %+v", l)
	}
}

// TestLargeFileFirst: a layer that begins with a file past RatioGrace, of data that does
// not compress (a large binary, as a control plane's images have), imports: the ratio is of
// what was written to what was read, not of a header's size to the few bytes read before it.
func TestLargeFileFirst(t *testing.T) {
	body := make([]byte, RatioGrace+8<<20)
	rand.NewChaCha8([32]byte{1}).Read(body)
	layer, err := fixture.LayerTar([]fixture.Entry{{Header: tar.Header{Name: "usr/local/bin/big", Typeflag: tar.TypeReg, Mode: 0o755}, Body: string(body)}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := fixture.OCIImage([]string{"/usr/local/bin/big"}, layer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openT(t).ImportOCI(context.Background(), img, ImportOptions{Name: "example.com/big:1"}); err != nil {
		t.Fatalf("import of a layer led by a %d MiB binary: %v", len(body)>>20, err)
	}
}
