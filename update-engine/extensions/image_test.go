package extensions

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/gpt"
	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/update-engine/osrelease"
)

// The fixtures were made with erofs-utils 1.5 from a tree holding
// usr/lib/extension-release.d/extension-release.demo ("ID=cairn\nVERSION_ID=1.2.0\n") and
// usr/bin/hello:
//
//	mkfs.erofs -zlz4hc -T1700000000 --all-root -x-1 testdata/usr.erofs tree/usr
//	mkfs.erofs -zlz4hc -T1700000000 --all-root -x-1 testdata/bare.erofs tree
const demoRelease = "ID=cairn\nVERSION_ID=1.2.0\n"

func fixture(t testing.TB, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ddi puts fs into the one partition of typ of a GPT disk, as image/sysext lays out a usr
// partition.
func ddi(t testing.TB, fs []byte, typ gpt.GUID) []byte {
	const first = 40
	sectors := (len(fs) + 511) / 512
	d := make(memDisk, (first+sectors+40)*512)
	tb := &gpt.Table{DiskGUID: gpt.MustParseGUID("11111111-2222-4333-8444-555555555555"), Partitions: []gpt.Partition{
		{Number: 1, Type: typ, GUID: gpt.MustParseGUID("21111111-2222-4333-8444-555555555555"), FirstLBA: first, LastLBA: uint64(first + sectors - 1), Name: "usr-x86-64"},
	}}
	if err := tb.Write(d, int64(len(d))); err != nil {
		t.Fatal(err)
	}
	copy(d[first*512:], fs)
	return d
}

// readImageRelease reads extension-release.NAME from an image of size bytes, as the check
// does.
func readImageRelease(r io.ReaderAt, size int64, name, arch string) ([]byte, error) {
	fs, err := openImage(r, size, arch)
	if err != nil {
		return nil, err
	}
	return fs.release(name)
}

// blankFS is a file system of 128 KiB that is blank but for its magic number at off: enough
// for the check to tell what it is.
func blankFS(off int, magic string) []byte {
	b := make([]byte, 128<<10)
	copy(b[off:], magic)
	return b
}

func TestReadImageRelease(t *testing.T) {
	usr := gpt.TypeUSR
	root := gpt.MustParseGUID("4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709") // x86-64 root: not where a sysext's /usr is
	esp := gpt.MustParseGUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
	squashfs, ext4 := blankFS(0, "hsqs"), blankFS(1080, "\x53\xef")
	for _, tc := range []struct {
		name, ext, arch string
		image           []byte
		want            string
		wantErr         error
	}{
		{"usr partition of a disk image", "demo", "x86-64", ddi(t, fixture(t, "usr.erofs"), usr), demoRelease, nil},
		{"bare erofs", "demo", "x86-64", fixture(t, "bare.erofs"), demoRelease, nil},
		// systemd would take extension-release.demo if its extended attribute
		// user.extension-release.strict were false, which is not read here.
		{"another name", "other", "x86-64", ddi(t, fixture(t, "usr.erofs"), usr), "", errUnsupported},
		{"a root partition instead of a usr partition", "demo", "x86-64", ddi(t, fixture(t, "usr.erofs"), root), "", errUnsupported},
		{"no usr partition nor root partition", "demo", "x86-64", ddi(t, fixture(t, "usr.erofs"), esp), "", ErrRelease},
		{"architecture without a known usr type", "demo", "mips-le", ddi(t, fixture(t, "usr.erofs"), usr), "", errUnsupported},
		{"squashfs usr partition", "demo", "x86-64", ddi(t, squashfs, usr), "", errUnsupported},
		{"ext4 usr partition", "demo", "x86-64", ddi(t, ext4, usr), "", errUnsupported},
		{"blank usr partition", "demo", "x86-64", ddi(t, make([]byte, 8192), usr), "", ErrRelease},
		{"bare squashfs", "demo", "x86-64", squashfs, "", errUnsupported},
		{"bare ext4", "demo", "x86-64", ext4, "", errUnsupported},
		{"the usr partition's tree without usr/", "demo", "x86-64", fixture(t, "usr.erofs"), "", errAbsent},
		{"neither", "demo", "x86-64", make([]byte, 8192), "", ErrRelease},
		{"empty", "demo", "x86-64", nil, "", ErrRelease},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := readImageRelease(bytes.NewReader(tc.image), int64(len(tc.image)), tc.ext, tc.arch)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !errors.Is(err, ErrRelease) {
					t.Fatalf("got %q, %v; want %v", b, err, tc.wantErr)
				}
				// Only what systemd may merge is not checked; the rest fails the check.
				if unchecked := errors.Is(err, errUnsupported); unchecked != (tc.wantErr == errUnsupported) {
					t.Fatalf("got %v: not checked is %v", err, unchecked)
				}
				return
			}
			if err != nil || string(b) != tc.want {
				t.Fatalf("got %q, %v; want %q", b, err, tc.want)
			}
		})
	}
}

// The reader against mkfs.erofs: files of every size class around a block, plain and with
// inline tails, in a directory of several blocks; and the extension-release of a compressed
// image, as image/sysext makes them. A compressed file and a symlink are errUnsupported.
func TestErofsReadsWhatMkfsWrites(t *testing.T) {
	testenv.RequireCommand(t, "mkfs.erofs")
	tree := t.TempDir()
	want := map[string][]byte{}
	put := func(p string, b []byte) {
		full := filepath.Join(tree, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
		want[p] = b
	}
	for _, n := range []int{0, 1, 100, 4095, 4096, 4097, 8192, 12345, 100000} {
		b := make([]byte, n)
		rand.Read(b)
		put(fmt.Sprintf("sizes/f%d", n), b)
	}
	for i := range 300 {
		put(fmt.Sprintf("wide/entry-with-a-longish-name-%03d", i), []byte(fmt.Sprint(i)))
	}
	put("lib/extension-release.d/extension-release.x", []byte(demoRelease))
	// Large enough and repetitive: compressed when the image is.
	big := []byte(strings.Repeat("# a comment line\n", 2000) + demoRelease)
	put("lib/extension-release.d/extension-release.big", big)
	for link, target := range map[string]string{"lib/extension-release.d/extension-release.link": "extension-release.x", "liblink": "lib"} {
		if err := os.Symlink(target, filepath.Join(tree, link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, z := range []string{"", "-zlz4hc"} {
		img := filepath.Join(t.TempDir(), "fs.erofs")
		args := []string{"--quiet", "-T1", "--all-root", "-x-1", img, tree}
		if z != "" {
			args = append([]string{z}, args...)
		}
		if o, err := exec.Command("mkfs.erofs", args...).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.erofs: %v\n%s", err, o)
		}
		b, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		fs, err := openErofs(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		for p, w := range want {
			got, err := fs.readFile(p, 1<<20)
			if z != "" && p != "lib/extension-release.d/extension-release.x" && errors.Is(err, errUnsupported) {
				continue // compressed, as mkfs.erofs chose
			}
			if err != nil || !bytes.Equal(got, w) {
				t.Errorf("%s %s: %d bytes, %v; want %d bytes", z, p, len(got), err, len(w))
			}
		}
		if _, err := fs.readFile("lib/extension-release.d/extension-release.big", 1<<20); z != "" && !errors.Is(err, errUnsupported) {
			t.Errorf("a compressed extension-release: %v; want errUnsupported", err)
		}
		for _, p := range []string{"lib/extension-release.d/extension-release.link", "liblink/extension-release.d/extension-release.x"} {
			if _, err := fs.readFile(p, 1<<20); !errors.Is(err, errUnsupported) || !strings.Contains(err.Error(), "symbolic link") {
				t.Errorf("%s %s: %v; want errUnsupported for a symlink", z, p, err)
			}
		}
		if _, err := fs.readFile("sizes/f100/x", 1<<20); !errors.Is(err, ErrRelease) || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("a path through a file: %v", err)
		}
		if _, err := fs.readFile("wide", 1<<20); !errors.Is(err, ErrRelease) || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("a directory read as a file: %v", err)
		}
		if _, err := fs.readFile("sizes/f100000", 1000); err == nil {
			t.Error("a file over the limit was read")
		}
	}
}

// boundedDisk fails the test on a read outside the image.
type boundedDisk struct {
	t *testing.T
	b []byte
}

func (d boundedDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(d.b)) {
		d.t.Fatalf("read of %d bytes at %d from an image of %d", len(p), off, len(d.b))
	}
	return copy(p, d.b[off:]), nil
}

// FuzzReadImageRelease: an image, however made, is read only inside its bounds, and what is
// returned is no larger than an extension-release may be; looking for its os-release too.
func FuzzReadImageRelease(f *testing.F) {
	f.Add(fixture(f, "bare.erofs"))
	f.Add(ddi(f, fixture(f, "usr.erofs"), gpt.TypeUSR))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := readImageRelease(boundedDisk{t, b}, int64(len(b)), "demo", "x86-64")
		if err == nil && len(got) > osrelease.MaxSize {
			t.Fatalf("returned %d bytes", len(got))
		}
		if err != nil && !errors.Is(err, ErrRelease) {
			t.Fatalf("error not ErrRelease: %v", err)
		}
		if fs, err := openImage(boundedDisk{t, b}, int64(len(b)), "x86-64"); err == nil {
			if _, err := fs.hasOSRelease(); err != nil && !errors.Is(err, ErrRelease) {
				t.Fatalf("os-release: error not ErrRelease: %v", err)
			}
		}
	})
}
