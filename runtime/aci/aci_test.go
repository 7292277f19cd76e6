package aci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/ulikunitz/xz"
)

const validManifest = `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/busybox",
 "labels":[{"name":"version","value":"1.36"},{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}],
 "app":{"exec":["/bin/sh","-c","echo hello"],"user":"0","group":"0"}}`

func TestParseManifest(t *testing.T) {
	m, err := ParseManifest([]byte(validManifest))
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "example.com/busybox" || m.App.Exec[0] != "/bin/sh" {
		t.Fatalf("parsed %+v", m)
	}
	if v, _ := m.GetLabel("version"); v != "1.36" {
		t.Fatalf("version %q", v)
	}
}

func TestParseManifestRejects(t *testing.T) {
	big := `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/x","annotations":[{"name":"x","value":"` +
		strings.Repeat("a", MaxManifestSize) + `"}]}`
	for _, tc := range []struct {
		name, in string
		want     error
		msg      string
	}{
		{"too large", big, ErrManifestTooLarge, "larger than 1 MiB"},
		{"not JSON", "<html>", ErrInvalidManifest, "not JSON"},
		{"truncated JSON", validManifest[:40], ErrInvalidManifest, "not JSON"},
		{"wrong kind", strings.Replace(validManifest, "ImageManifest", "PodManifest", 1), ErrInvalidManifest, "ACKind"},
		{"no version", strings.Replace(validManifest, `"acVersion":"0.8.11",`, "", 1), ErrInvalidManifest, "acVersion"},
		{"bad name", strings.Replace(validManifest, "example.com/busybox", "Not A Name!", 1), ErrInvalidManifest, "ACIdentifier"},
		{"relative exec", strings.Replace(validManifest, `"/bin/sh"`, `"bin/sh"`, 1), ErrInvalidManifest, "absolute"},
		{"bad label", strings.Replace(validManifest, `"name":"os","value":"linux"`, `"name":"os","value":"plan9"`, 1), ErrInvalidManifest, "os"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseManifest([]byte(tc.in))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v; want %v mentioning %q", err, tc.want, tc.msg)
			}
			_, err = ReadManifest(strings.NewReader(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("ReadManifest: err = %v; want %v", err, tc.want)
			}
		})
	}
}

func buildACI(t *testing.T) []byte {
	t.Helper()
	m := schema.BlankImageManifest()
	m.Name = "example.com/test"
	m.App = &types.App{Exec: []string{"/hello"}, User: "0", Group: "0"}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, m, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(&tar.Header{Name: "hello", Typeflag: tar.TypeReg, Mode: 0o755, Size: 2}, strings.NewReader("hi")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return buf.Bytes()
}

func TestDecompressAndManifestFromTar(t *testing.T) {
	plain := buildACI(t)
	var gz, xzb bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	xw, err := xz.NewWriter(&xzb)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write(plain)
	xw.Close()
	inputs := map[Compression][]byte{None: plain, Gzip: gz.Bytes(), Xz: xzb.Bytes()}
	if bz, err := exec.LookPath("bzip2"); err == nil {
		cmd := exec.Command(bz, "-c")
		cmd.Stdin = bytes.NewReader(plain)
		if out, err := cmd.Output(); err == nil {
			inputs[Bzip2] = out
		}
	}
	for c, in := range inputs {
		r, got, err := Decompress(bytes.NewReader(in))
		if err != nil || got != c {
			t.Fatalf("%s: detected %s, %v", c, got, err)
		}
		b, _ := io.ReadAll(r)
		if !bytes.Equal(b, plain) {
			t.Fatalf("%s: decompressed bytes differ", c)
		}
		m, err := ManifestFromTar(bytes.NewReader(b))
		if err != nil || m.Name != "example.com/test" {
			t.Fatalf("%s: manifest %v %v", c, m, err)
		}
	}
	if _, err := ManifestFromTar(bytes.NewReader(plain[1024:])); err == nil {
		t.Fatal("manifest found in a tar without one")
	}
}

// An entry added with no Typeflag (tar's zero value, the legacy TypeRegA) is a regular file,
// body included.
func TestWriterZeroTypeflag(t *testing.T) {
	m := schema.BlankImageManifest()
	m.Name = "example.com/legacy"
	var buf bytes.Buffer
	w, err := NewWriter(&buf, m, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(&tar.Header{Name: "legacy", Mode: 0o644, Size: 2}, strings.NewReader("ok")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("rootfs/legacy not found: %v", err)
		}
		if hdr.Name != RootfsDir+"/legacy" {
			continue
		}
		b, err := io.ReadAll(tr)
		if hdr.Typeflag != tar.TypeReg || err != nil || string(b) != "ok" {
			t.Fatalf("rootfs/legacy: type %q, body %q, %v; want a regular file holding \"ok\"", hdr.Typeflag, b, err)
		}
		return
	}
}
