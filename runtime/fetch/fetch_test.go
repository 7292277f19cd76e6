package fetch

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cairn-os/cairn/runtime/fetch/discovery"
	"github.com/cairn-os/cairn/runtime/fetch/fetchtest"
	"github.com/cairn-os/cairn/runtime/fetch/insecure"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/fixture/fixturetest"
	"github.com/cairn-os/cairn/runtime/store"
	"github.com/cairn-os/cairn/runtime/trust"
)

// signedACI is a small ACI, its signature and the key that made it.
type signedACI struct {
	name string
	data []byte
	asc  []byte
	id   string
	key  *fixturetest.Key
}

func newACI(t *testing.T, name string, key *fixturetest.Key) *signedACI {
	t.Helper()
	var buf bytes.Buffer
	id, err := fixture.WriteACI(&buf, fixture.ACIOptions{
		Name: name, Labels: map[string]string{"version": "1.0"}, NoBusybox: true,
		Exec: []string{"/hello"}, Files: map[string]string{"hello": "hi\n"}, Compress: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &signedACI{name: name, data: buf.Bytes(), asc: key.Sign(buf.Bytes()), id: id, key: key}
}

type harness struct {
	t     *testing.T
	st    *store.Store
	trust *trust.Store
	srv   *fetchtest.Server
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	return &harness{
		t:     t,
		st:    st,
		trust: trust.New(filepath.Join(dir, "etc"), filepath.Join(dir, "usr")),
		srv:   fetchtest.New(t),
	}
}

func (h *harness) fetcher(opts insecure.Options, policy PullPolicy) *Fetcher {
	return &Fetcher{
		Store: h.st, Trust: h.trust, HTTP: h.srv.Client(), Insecure: opts, PullPolicy: policy,
		TempDir: h.t.TempDir(),
	}
}

func (h *harness) trustKey(prefix string, k *fixturetest.Key) {
	h.t.Helper()
	key, err := trust.ParseKey(k.Public)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.trust.AddPrefixKey(prefix, key); err != nil {
		h.t.Fatal(err)
	}
}

// storeEmpty fails the test if anything landed in the store.
func (h *harness) storeEmpty() {
	h.t.Helper()
	imgs, err := h.st.List(context.Background())
	if err != nil || len(imgs) != 0 {
		h.t.Fatalf("store holds %d images (err %v); want none", len(imgs), err)
	}
}

func wantErr(t *testing.T, err, is error, mention string) {
	t.Helper()
	t.Logf("error: %v", err)
	if err == nil {
		t.Fatalf("no error; want %v mentioning %q", is, mention)
	}
	if (is != nil && !errors.Is(err, is)) || !strings.Contains(err.Error(), mention) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err %q; want a one-line %v mentioning %q", err, is, mention)
	}
}

func TestClassify(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "layout")
	os.Mkdir(existing, 0o755)
	for _, tc := range []struct {
		arg  string
		want Kind
	}{
		{"docker://busybox", KindDocker},
		{"https://example.com/app.aci", KindURL},
		{"http://example.com/app.aci", KindURL},
		{"file:///tmp/app.aci", KindPath},
		{"/tmp/app.aci", KindPath},
		{"./app.aci", KindPath},
		{"app.aci", KindPath},
		{existing, KindPath},
		{"example.com/app", KindName},
		{"example.com/app:v1.0", KindName},
		{"example.com/app.aci:v1", KindName},
		{"sha512-0123abcd", KindID},
		{"sha256:0123abcd", KindID},
	} {
		got, err := Classify(tc.arg)
		if err != nil || got != tc.want {
			t.Errorf("Classify(%q) = %q, %v; want %q", tc.arg, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "ftp://example.com/x.aci"} {
		if _, err := Classify(bad); !errors.Is(err, ErrUnknownArgType) {
			t.Errorf("Classify(%q): err %v", bad, err)
		}
	}
}

func TestParsePullPolicy(t *testing.T) {
	for _, s := range []string{"new", "update", "never"} {
		if p, err := ParsePullPolicy(s); err != nil || string(p) != s {
			t.Errorf("%s: %v %v", s, p, err)
		}
	}
	if _, err := ParsePullPolicy("sometimes"); err == nil || !strings.Contains(err.Error(), "sometimes") {
		t.Errorf("bad policy: %v", err)
	}
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFetchLocalACI(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	pub := fixturetest.NewKey(t, "publisher", fixture.KeyOptions{})
	a := newACI(t, "example.com/app", pub)
	dir := t.TempDir()
	path := writeFile(t, filepath.Join(dir, "app.aci"), a.data)
	writeFile(t, path+".asc", a.asc)
	f := h.fetcher(insecure.None, PullUpdate)

	_, err := f.Fetch(ctx, Request{Image: path})
	wantErr(t, err, trust.ErrNoKeys, "rkt trust --prefix=example.com/app")
	h.storeEmpty()

	h.trustKey("example.com", pub)
	img, err := f.Fetch(ctx, Request{Image: path})
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != a.id || !img.Trusted || img.Signer != pub.Fingerprint || img.Name != "example.com/app" || img.Source != path {
		t.Fatalf("image %+v", img)
	}
	// Fetching it again changes nothing.
	again, err := f.Fetch(ctx, Request{Image: path})
	if err != nil || again.ID != img.ID {
		t.Fatalf("second fetch: %v %v", again, err)
	}
	// An image ID names what is in the store.
	for _, ref := range []string{img.ID, img.ShortID()} {
		if byID, err := f.Fetch(ctx, Request{Image: ref}); err != nil || byID.ID != img.ID {
			t.Fatalf("fetch %s: %v %v", ref, byID, err)
		}
	}
	_, err = f.Fetch(ctx, Request{Image: "sha512-0123456789abcdef"})
	wantErr(t, err, store.ErrNotFound, "sha512-0123456789abcdef")
}

func TestFetchLocalACIRefused(t *testing.T) {
	ctx := context.Background()
	pub := fixturetest.NewKey(t, "publisher", fixture.KeyOptions{})
	mallory := fixturetest.NewKey(t, "mallory", fixture.KeyOptions{})
	a := newACI(t, "example.com/app", pub)
	other := newACI(t, "example.com/other", pub)
	for _, tc := range []struct {
		name    string
		asc     []byte // nil: no .asc file
		data    []byte
		is      error
		mention string
	}{
		{"signature by an untrusted key", mallory.Sign(a.data), a.data, trust.ErrUntrusted, mallory.Fingerprint},
		{"signature of other bytes", other.asc, a.data, trust.ErrBadSignature, "does not match"},
		{"missing .asc", nil, a.data, ErrNoSignature, "app.aci.asc does not exist"},
		{"truncated ACI", a.asc, a.data[:len(a.data)/2], nil, "app.aci"},
		{"not an image", a.asc, []byte("hello"), nil, "not an ACI, OCI layout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.trustKey("example.com/app", pub)
			path := writeFile(t, filepath.Join(t.TempDir(), "app.aci"), tc.data)
			if tc.asc != nil {
				writeFile(t, path+".asc", tc.asc)
			}
			_, err := h.fetcher(insecure.None, PullUpdate).Fetch(ctx, Request{Image: path})
			wantErr(t, err, tc.is, tc.mention)
			h.storeEmpty()
		})
	}
}

func TestFetchLocalACIInsecure(t *testing.T) {
	h := newHarness(t)
	a := newACI(t, "example.com/app", fixturetest.NewKey(t, "k", fixture.KeyOptions{}))
	path := writeFile(t, filepath.Join(t.TempDir(), "app.aci"), a.data) // no .asc, no key
	img, err := h.fetcher(insecure.Image, PullUpdate).Fetch(context.Background(), Request{Image: path})
	if err != nil || img.Trusted || img.ID != a.id {
		t.Fatalf("img %+v err %v", img, err)
	}
}

func TestFetchSignatureFlag(t *testing.T) {
	h := newHarness(t)
	pub := fixturetest.NewKey(t, "publisher", fixture.KeyOptions{})
	h.trustKey("example.com/app", pub)
	a := newACI(t, "example.com/app", pub)
	dir := t.TempDir()
	path := writeFile(t, filepath.Join(dir, "app.aci"), a.data)
	sig := writeFile(t, filepath.Join(dir, "elsewhere.sig"), a.asc)
	if _, err := h.fetcher(insecure.None, PullUpdate).Fetch(context.Background(), Request{Image: path, Signature: sig}); err != nil {
		t.Fatal(err)
	}
}

// serve publishes an ACI and its signature on the test server and counts ACI downloads.
func serve(h *harness, path string, a *signedACI) *atomic.Int32 {
	var hits atomic.Int32
	h.srv.Mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(a.data)
	})
	h.srv.Handle(path+".asc", a.asc)
	return &hits
}

func TestFetchURL(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	pub := fixturetest.NewKey(t, "publisher", fixture.KeyOptions{})
	h.trustKey("example.com/app", pub)
	a := newACI(t, "example.com/app", pub)
	hits := serve(h, "/app.aci", a)
	const u = "https://example.com/app.aci"

	_, err := h.fetcher(insecure.None, PullNever).Fetch(ctx, Request{Image: u})
	wantErr(t, err, ErrNotInStore, "--pull-policy=never")

	img, err := h.fetcher(insecure.None, PullNew).Fetch(ctx, Request{Image: u})
	if err != nil || img.ID != a.id || img.Source != u || !img.Trusted {
		t.Fatalf("img %+v err %v", img, err)
	}
	if _, err := h.fetcher(insecure.None, PullNew).Fetch(ctx, Request{Image: u}); err != nil || hits.Load() != 1 {
		t.Fatalf("pull-policy=new fetched again: hits %d err %v", hits.Load(), err)
	}
	if _, err := h.fetcher(insecure.None, PullNever).Fetch(ctx, Request{Image: u}); err != nil || hits.Load() != 1 {
		t.Fatalf("pull-policy=never: hits %d err %v", hits.Load(), err)
	}
	if _, err := h.fetcher(insecure.None, PullUpdate).Fetch(ctx, Request{Image: u}); err != nil || hits.Load() != 2 {
		t.Fatalf("pull-policy=update: hits %d err %v", hits.Load(), err)
	}
}

func TestFetchURLRefused(t *testing.T) {
	ctx := context.Background()
	pub := fixturetest.NewKey(t, "publisher", fixture.KeyOptions{})
	a := newACI(t, "example.com/app", pub)
	other := newACI(t, "example.com/app", fixturetest.NewKey(t, "mallory", fixture.KeyOptions{}))

	t.Run("plain http", func(t *testing.T) {
		h := newHarness(t)
		h.trustKey("example.com", pub)
		hits := serve(h, "/app.aci", a)
		_, err := h.fetcher(insecure.None, PullUpdate).Fetch(ctx, Request{Image: "http://example.com/app.aci"})
		wantErr(t, err, ErrInsecure, "--insecure-options=http")
		h.storeEmpty()
		if hits.Load() != 0 {
			t.Fatal("downloaded over http anyway")
		}
		if _, err := h.fetcher(insecure.HTTP, PullUpdate).Fetch(ctx, Request{Image: "http://example.com/app.aci"}); err != nil {
			t.Fatalf("with --insecure-options=http: %v", err)
		}
	})
	t.Run("redirect to http", func(t *testing.T) {
		h := newHarness(t)
		h.trustKey("example.com", pub)
		serve(h, "/app.aci", a)
		h.srv.Mux.Handle("/moved.aci", http.RedirectHandler("http://example.com/app.aci", http.StatusFound))
		h.srv.Mux.Handle("/moved.aci.asc", http.RedirectHandler("http://example.com/app.aci.asc", http.StatusFound))
		_, err := h.fetcher(insecure.None, PullUpdate).Fetch(ctx, Request{Image: "https://example.com/moved.aci"})
		wantErr(t, err, ErrInsecure, "--insecure-options=http")
		h.storeEmpty()
	})
	t.Run("truncated download", func(t *testing.T) {
		h := newHarness(t)
		h.trustKey("example.com", pub)
		h.srv.Mux.HandleFunc("/app.aci", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(a.data)))
			w.Write(a.data[:len(a.data)/2])
		})
		h.srv.Handle("/app.aci.asc", a.asc)
		_, err := h.fetcher(insecure.None, PullUpdate).Fetch(ctx, Request{Image: "https://example.com/app.aci"})
		wantErr(t, err, ErrTruncated, "download truncated")
		h.storeEmpty()
	})
	t.Run("missing signature", func(t *testing.T) {
		h := newHarness(t)
		h.trustKey("example.com", pub)
		h.srv.Handle("/app.aci", a.data)
		_, err := h.fetcher(insecure.None, PullUpdate).Fetch(ctx, Request{Image: "https://example.com/app.aci"})
		wantErr(t, err, ErrNoSignature, "404")
		h.storeEmpty()
	})
	t.Run("untrusted key", func(t *testing.T) {
		h := newHarness(t)
		h.trustKey("example.com", pub)
		serve(h, "/app.aci", other)
		_, err := h.fetcher(insecure.None, PullUpdate).Fetch(ctx, Request{Image: "https://example.com/app.aci"})
		wantErr(t, err, trust.ErrUntrusted, other.key.Fingerprint)
		h.storeEmpty()
	})
	t.Run("bad certificate", func(t *testing.T) {
		h := newHarness(t)
		h.trustKey("example.com", pub)
		serve(h, "/app.aci", a)
		f := h.fetcher(insecure.None, PullUpdate)
		f.HTTP = h.srv.UntrustingClient()
		_, err := f.Fetch(ctx, Request{Image: "https://example.com/app.aci"})
		wantErr(t, err, nil, "--insecure-options=tls")
		h.storeEmpty()
		f.HTTP = h.srv.InsecureClient()
		if _, err := f.Fetch(ctx, Request{Image: "https://example.com/app.aci"}); err != nil {
			t.Fatalf("with an insecure TLS client: %v", err)
		}
	})
}

func discoveryPage(prefix, tpl string) []byte {
	return []byte(fmt.Sprintf(`<html><head><meta name="ac-discovery" content="%s %s">
<meta name="ac-discovery-pubkeys" content="%s https://example.com/pubkeys.gpg"></head></html>`, prefix, tpl, prefix))
}

func TestFetchDiscovery(t *testing.T) {
	ctx := context.Background()
	pub := fixturetest.NewKey(t, "publisher", fixture.KeyOptions{})
	a := newACI(t, "example.com/app", pub)
	const tpl = "https://example.com/images/{name}-{version}-{os}-{arch}.{ext}"
	aciPath := "/images/example.com/app-1.0-linux-" + discovery.AppcArch(runtimeArch()) + ".aci"

	t.Run("trusted", func(t *testing.T) {
		h := newHarness(t)
		h.trustKey("example.com/app", pub)
		h.srv.Handle("/app", discoveryPage("example.com/app", tpl))
		serve(h, aciPath, a)
		img, err := h.fetcher(insecure.None, PullUpdate).Fetch(ctx, Request{Image: "example.com/app:1.0"})
		if err != nil || img.ID != a.id {
			t.Fatalf("img %+v err %v", img, err)
		}
		// pull-policy=new finds it by name:version in the store.
		f := h.fetcher(insecure.None, PullNever)
		if img, err := f.Fetch(ctx, Request{Image: "example.com/app:1.0"}); err != nil || img.ID != a.id {
			t.Fatalf("from the store: %v %v", img, err)
		}
	})
	t.Run("key absent", func(t *testing.T) {
		h := newHarness(t)
		h.srv.Handle("/app", discoveryPage("example.com/app", tpl))
		serve(h, aciPath, a)
		_, err := h.fetcher(insecure.None, PullUpdate).Fetch(ctx, Request{Image: "example.com/app:1.0"})
		wantErr(t, err, trust.ErrNoKeys, "rkt trust")
		h.storeEmpty()
	})
	t.Run("trust keys from https", func(t *testing.T) {
		h := newHarness(t)
		h.srv.Handle("/app", discoveryPage("example.com/app", tpl))
		h.srv.Handle("/pubkeys.gpg", pub.Public)
		serve(h, aciPath, a)
		f := h.fetcher(insecure.None, PullUpdate)
		f.TrustKeysFromHTTPS = true
		if _, err := f.Fetch(ctx, Request{Image: "example.com/app:1.0"}); err != nil {
			t.Fatal(err)
		}
		keys, _ := h.trust.Keyring("example.com/app")
		if len(keys) != 1 || keys[0].Fingerprint != pub.Fingerprint {
			t.Fatalf("trusted keys %v", keys)
		}
	})
	t.Run("off domain", func(t *testing.T) {
		h := newHarness(t)
		h.trustKey("example.com/app", pub)
		h.srv.Handle("/app", discoveryPage("example.com/app", "https://evil.example.org/{name}.{ext}"))
		_, err := h.fetcher(insecure.None, PullUpdate).Fetch(ctx, Request{Image: "example.com/app:1.0"})
		wantErr(t, err, discovery.ErrOffDomain, "evil.example.org")
		h.storeEmpty()
	})
	t.Run("page too big", func(t *testing.T) {
		h := newHarness(t)
		h.srv.Handle("/app", bytes.Repeat([]byte("<p>"), discovery.DefaultMaxPageSize))
		_, err := h.fetcher(insecure.None, PullUpdate).Fetch(ctx, Request{Image: "example.com/app:1.0"})
		wantErr(t, err, discovery.ErrPageTooBig, "too big")
		h.storeEmpty()
	})
	t.Run("garbage page", func(t *testing.T) {
		h := newHarness(t)
		h.srv.Handle("/", []byte("\x00\x01garbage<meta<<"))
		_, err := h.fetcher(insecure.None, PullUpdate).Fetch(ctx, Request{Image: "example.com/app:1.0"})
		wantErr(t, err, discovery.ErrNotFound, "example.com/app")
		h.storeEmpty()
	})
	t.Run("another image behind the name", func(t *testing.T) {
		h := newHarness(t)
		h.trustKey("example.com", pub)
		evil := newACI(t, "example.com/evil", pub)
		h.srv.Handle("/app", discoveryPage("example.com/app", tpl))
		serve(h, aciPath, evil)
		_, err := h.fetcher(insecure.None, PullUpdate).Fetch(ctx, Request{Image: "example.com/app:1.0"})
		wantErr(t, err, ErrNameMismatch, "example.com/evil")
		h.storeEmpty()
	})
}

func smallOCI(t *testing.T) []byte {
	t.Helper()
	lt, err := fixture.LayerTar([]fixture.Entry{{Header: tar.Header{Name: "hello", Typeflag: tar.TypeReg, Mode: 0o644}, Body: "hi\n"}})
	if err != nil {
		t.Fatal(err)
	}
	return lt
}

func TestFetchLocalOCI(t *testing.T) {
	ctx := context.Background()
	img, err := fixture.OCIImage([]string{"/hello"}, smallOCI(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	layoutDir := filepath.Join(dir, "layout")
	if err := fixture.WriteOCILayout(layoutDir, img, "localhost/small:1"); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "docker.tar")
	if err := fixture.WriteDockerArchive(archive, img, "localhost/small-docker:1"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{layoutDir, archive} {
		h := newHarness(t)
		_, err := h.fetcher(insecure.None, PullUpdate).Fetch(ctx, Request{Image: p})
		wantErr(t, err, ErrInsecure, "--insecure-options=image")
		h.storeEmpty()
		got, err := h.fetcher(insecure.Image, PullUpdate).Fetch(ctx, Request{Image: p})
		if err != nil || got.Trusted || got.Format != "oci" {
			t.Fatalf("%s: img %+v err %v", p, got, err)
		}
	}
}
