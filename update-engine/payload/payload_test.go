package payload

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"testing"
)

func memSource(name string, b []byte) Source {
	return Source{Name: name, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
}

func testKey(t testing.TB) (ed25519.PrivateKey, []ed25519.PublicKey) {
	privPEM, pubPEM, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pubs, err := ParsePublicKeys(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	return priv, pubs
}

func buildTest(t testing.TB, priv ed25519.PrivateKey) ([]byte, []byte, []byte) {
	r := rand.New(rand.NewSource(1))
	usr := make([]byte, 300<<10)
	r.Read(usr[:100<<10]) // part random, part zeros: both paths of the compressor
	uki := []byte("MZ fake unified kernel image")
	var buf bytes.Buffer
	_, err := Build(&buf, BuildOptions{Version: "1.2.3", Board: "amd64-usr", MinSourceVersion: "1.0.0",
		USR: memSource(PartUSR, usr), UKI: memSource(PartUKI, uki), TempDir: t.TempDir()}, priv)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), usr, uki
}

func TestRoundTrip(t *testing.T) {
	priv, pubs := testKey(t)
	p, usr, uki := buildTest(t, priv)
	h, err := VerifyAll(bytes.NewReader(p), int64(len(p)), pubs)
	if err != nil {
		t.Fatal(err)
	}
	if h.Manifest.Version != "1.2.3" || h.Manifest.Board != "amd64-usr" || h.Size() != int64(len(p)) {
		t.Fatalf("manifest %+v size %d", h.Manifest, h.Size())
	}
	for name, want := range map[string][]byte{PartUSR: usr, PartUKI: uki} {
		part, _ := h.Manifest.Part(name)
		var out bytes.Buffer
		if err := Extract(&out, bytes.NewReader(p[part.Offset:]), part); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("part %s differs after round trip", name)
		}
	}
}

func TestRefusals(t *testing.T) {
	priv, pubs := testKey(t)
	p, _, _ := buildTest(t, priv)
	h, err := ReadHeader(bytes.NewReader(p))
	if err != nil {
		t.Fatal(err)
	}
	_, otherPubs := testKey(t)
	flip := func(off int64) []byte {
		b := bytes.Clone(p)
		b[off] ^= 0x40
		return b
	}
	usr, _ := h.Manifest.Part(PartUSR)
	cases := []struct {
		name string
		data []byte
		keys []ed25519.PublicKey
		want error
	}{
		{"wrong key", p, otherPubs, ErrSignature},
		{"no key", p, nil, ErrSignature},
		{"manifest byte flipped", flip(int64(prefixLen) + 20), pubs, nil}, // format or signature error
		{"signature flipped", flip(h.Len - 1), pubs, ErrSignature},
		{"usr part flipped", flip(usr.Offset + usr.CompressedSize/2), pubs, ErrHashMismatch},
		{"truncated in header", p[:prefixLen+5], pubs, ErrTruncated},
		{"truncated in part", p[:len(p)-3], pubs, ErrTruncated},
		{"trailing garbage", append(bytes.Clone(p), 1, 2, 3), pubs, ErrFormat},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := VerifyAll(bytes.NewReader(c.data), int64(len(c.data)), c.keys)
			if err == nil {
				t.Fatal("accepted")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
		})
	}
}

func header(manifest string, sigLen uint16) []byte {
	b := []byte(Magic)
	b = binary.BigEndian.AppendUint32(b, uint32(len(manifest)))
	b = binary.BigEndian.AppendUint16(b, sigLen)
	b = append(b, manifest...)
	return append(b, make([]byte, sigLen)...)
}

func TestHostileHeaders(t *testing.T) {
	good := `{"format":1,"version":"1","board":"b","parts":[` +
		`{"name":"usr","offset":%d,"compressed_size":1,"compressed_sha256":"` + zeros + `","size":1,"sha256":"` + zeros + `"},` +
		`{"name":"uki","offset":1,"compressed_size":1,"compressed_sha256":"` + zeros + `","size":1,"sha256":"` + zeros + `"}]}`
	huge := make([]byte, 14)
	copy(huge, Magic)
	binary.BigEndian.PutUint32(huge[8:], 0xffffffff)
	cases := map[string][]byte{
		"empty":             nil,
		"bad magic":         append([]byte("CAIRNUP2"), header("{}", 64)[8:]...),
		"huge manifest len": huge,
		"zero manifest len": header("", 64),
		"short signature":   header(`{"format":1}`, 32),
		"not json":          header(`{{{`, 64),
		"json array":        header(`[1,2]`, 64),
		"unknown field":     header(`{"format":1,"evil":1}`, 64),
		"trailing json":     header(`{"format":1}{}`, 64),
		"format 2":          header(`{"format":2,"version":"1","board":"b"}`, 64),
		"format 3":          header(`{"format":3,"version":"1","board":"b"}`, 64),
		"bad version":       header(`{"format":1,"version":"../../x","board":"b"}`, 64),
		"no parts":          header(`{"format":1,"version":"1","board":"b","parts":[]}`, 64),
		"bad offsets":       header(fmt.Sprintf(good, 0), 64),
		"negative size": header(`{"format":1,"version":"1","board":"b","parts":[{"name":"usr","offset":0,"compressed_size":-1,"compressed_sha256":"`+
			zeros+`","size":-5,"sha256":"`+zeros+`"}]}`, 64),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := ReadHeader(bytes.NewReader(b)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"

var testExtension = Extension{Name: "kubernetes-v1.37.2", URL: "https://updates.example/1.2.3/kubernetes-v1.37.2.raw",
	Size: 100663296, SHA256: strings.Repeat("ab", 32), USRHash: strings.Repeat("cd", 32)}

func TestExtensions(t *testing.T) {
	priv, pubs := testKey(t)
	var buf bytes.Buffer
	m, err := Build(&buf, BuildOptions{Version: "1.2.3", Board: "amd64-usr", USR: memSource(PartUSR, []byte("usr")),
		UKI: memSource(PartUKI, []byte("uki")), TempDir: t.TempDir(), Extensions: []Extension{testExtension}}, priv)
	if err != nil {
		t.Fatal(err)
	}
	if m.Format != FormatExtensions {
		t.Errorf("format %d with extensions, want %d", m.Format, FormatExtensions)
	}
	h, err := VerifyAll(bytes.NewReader(buf.Bytes()), int64(buf.Len()), pubs)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Manifest.Extensions) != 1 || h.Manifest.Extensions[0] != testExtension {
		t.Errorf("extensions %+v", h.Manifest.Extensions)
	}
	// Without extensions a payload stays format 1, which older engines read.
	p, _, _ := buildTest(t, priv)
	if h, err := ReadHeader(bytes.NewReader(p)); err != nil || h.Manifest.Format != Format || bytes.Contains(p[:h.Len], []byte("extensions")) {
		t.Errorf("payload without extensions: %v", err)
	}

	for name, edit := range map[string]func(*Manifest){
		"in format 1":    func(m *Manifest) { m.Format = Format },
		"named twice":    func(m *Manifest) { m.Extensions = append(m.Extensions, m.Extensions[0]) },
		"bad name":       func(m *Manifest) { m.Extensions[0].Name = "../etc/x" },
		"file URL":       func(m *Manifest) { m.Extensions[0].URL = "file:///etc/shadow" },
		"zero size":      func(m *Manifest) { m.Extensions[0].Size = 0 },
		"upper-case hex": func(m *Manifest) { m.Extensions[0].SHA256 = strings.Repeat("AB", 32) },
		"short usrhash":  func(m *Manifest) { m.Extensions[0].USRHash = "cd" },
		"too many": func(m *Manifest) {
			for i := range MaxExtensions {
				e := testExtension
				e.Name = fmt.Sprintf("e%d", i)
				m.Extensions = append(m.Extensions, e)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			bad := *m
			bad.Extensions = append([]Extension(nil), m.Extensions...)
			edit(&bad)
			if err := bad.check(h.Len); !errors.Is(err, ErrFormat) {
				t.Fatalf("accepted: %v", err)
			}
		})
	}
}

func TestCompareVersions(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"1.2.3", "1.2.3", 0},
		{"1.2.10", "1.2.9", 1},
		{"3815.2.0", "3975.1.0", -1},
		{"1.2", "1.2.0", 0},
		{"1.2.3-rc1", "1.2.3", -1},
		{"1.2.3+build5", "1.2.3", 0},
		{"2.0.0-beta", "2.0.0-alpha", 1},
	}
	for _, c := range cases {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func FuzzReadHeader(f *testing.F) {
	priv, pubs := testKey(f)
	p, _, _ := buildTest(f, priv)
	f.Add(p[:1024])
	f.Add(header(`{"format":1}`, 64))
	f.Add([]byte(Magic))
	// A format 2 header, signed with another key: it parses and must not verify.
	other, _ := testKey(f)
	var withExt bytes.Buffer
	if _, err := Build(&withExt, BuildOptions{Version: "1.2.3", Board: "amd64-usr", USR: memSource(PartUSR, []byte("usr")),
		UKI: memSource(PartUKI, []byte("uki")), TempDir: f.TempDir(), Extensions: []Extension{testExtension}}, other); err != nil {
		f.Fatal(err)
	}
	f.Add(withExt.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ReadHeader(bytes.NewReader(b))
		if err != nil {
			return
		}
		// Whatever parses must be internally consistent, and must not verify unless signed.
		if h.Size() <= h.Len {
			t.Fatalf("size %d <= header %d", h.Size(), h.Len)
		}
		if h.Verify(pubs) == nil && !bytes.Equal(b[:h.Len], p[:h.Len]) {
			t.Fatal("forged header verified")
		}
	})
}

func TestExtractLengthMismatch(t *testing.T) {
	priv, _ := testKey(t)
	p, _, _ := buildTest(t, priv)
	h, err := ReadHeader(bytes.NewReader(p))
	if err != nil {
		t.Fatal(err)
	}
	part, _ := h.Manifest.Part(PartUSR)
	for _, delta := range []int64{-1, +1} {
		bad := part
		bad.Size += delta
		err := Extract(io.Discard, bytes.NewReader(p[part.Offset:]), bad)
		if !errors.Is(err, ErrHashMismatch) {
			t.Errorf("size off by %d: %v", delta, err)
		}
	}
	// Cut in the middle of a zstd frame.
	cut := part
	cut.CompressedSize /= 2
	if err := Extract(io.Discard, bytes.NewReader(p[part.Offset:]), cut); err == nil {
		t.Error("half a frame decompressed without error")
	}
}
