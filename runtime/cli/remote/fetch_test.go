package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/cli"
	"github.com/cairn-os/cairn/runtime/cli/clitest"
	"github.com/cairn-os/cairn/runtime/fetch/fetchtest"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/fixture/fixturetest"
	"github.com/cairn-os/cairn/runtime/stage1"
	"github.com/cairn-os/cairn/runtime/store"
)

// newRktEnv runs the full rkt in-process against scratch directories.
func newRktEnv(t *testing.T) *clitest.Env {
	return clitest.New(t, func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		return cli.Run(ctx, args, stdin, stdout, stderr, cli.Options{Remote: Remote{}})
	})
}

// images is the number of images in e's store.
func images(t *testing.T, e *clitest.Env) int {
	t.Helper()
	st, err := store.Open(e.Dir)
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := st.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(imgs)
}

// useServer sends the CLI's HTTP traffic for the test domains to srv.
func useServer(t *testing.T, srv *fetchtest.Server) {
	old := newTransport
	newTransport = func() *http.Transport { return srv.Transport(false) }
	t.Cleanup(func() { newTransport = old })
}

// A signed ACI fetches once its key is trusted, and fails clearly
// while the key is absent.
func TestFetchSignedACI(t *testing.T) {
	im := fixturetest.Build(t)
	e := newRktEnv(t)

	out, errOut, code := e.Rkt(t, "", "fetch", im.ACI)
	if code != stage1.ExitFailure || out != "" || !strings.Contains(errOut, "no trusted keys") ||
		!strings.Contains(errOut, "rkt trust --prefix="+fixture.ACIName) {
		t.Fatalf("fetch without the key: code %d, stderr %q", code, errOut)
	}
	if n := images(t, e); n != 0 {
		t.Fatalf("%d images in the store after a refused fetch", n)
	}

	out, errOut, code = e.Rkt(t, "yes\n", "trust", "--prefix="+fixture.ACIName, im.PublicKeyPath)
	if code != 0 || !strings.Contains(errOut, "GPG key fingerprint is: ") || !strings.Contains(out, "Added key for prefix") {
		t.Fatalf("trust: code %d", code)
	}
	want := filepath.Join(e.Local, "trustedkeys/prefix.d", fixture.ACIName, im.Fingerprint)
	if _, err := os.Stat(want); err != nil {
		t.Fatalf("key file: %v", err)
	}

	out, _, code = e.Rkt(t, "", "fetch", im.ACI)
	if code != 0 || strings.TrimSpace(out) != im.ACIID[:len("sha512-")+32] {
		t.Fatalf("fetch: code %d, stdout %q, want short ID of %s", code, out, im.ACIID)
	}
	out, _, code = e.Rkt(t, "", "fetch", "--full", "--pull-policy=new", im.ACI)
	if code != 0 || strings.TrimSpace(out) != im.ACIID {
		t.Fatalf("fetch --full: code %d, stdout %q", code, out)
	}
	// rkt's deprecated spelling of --pull-policy=never finds it by name.
	out, errOut, code = e.Rkt(t, "", "fetch", "--store-only", fixture.ACIName+":"+fixture.ACIVersion)
	if code != 0 || strings.TrimSpace(out) != im.ACIID[:len("sha512-")+32] || !strings.Contains(errOut, "deprecated") {
		t.Fatalf("fetch --store-only: code %d, stdout %q", code, out)
	}
}

func TestFetchUnsignedFormats(t *testing.T) {
	im := fixturetest.Build(t)
	e := newRktEnv(t)
	for _, p := range []string{im.OCILayout, im.OCIArchive, im.DockerArchive} {
		_, errOut, code := e.Rkt(t, "", "fetch", p)
		if code != stage1.ExitFailure || !strings.Contains(errOut, "--insecure-options=image") {
			t.Fatalf("fetch %s without --insecure-options=image: code %d, stderr %q", p, code, errOut)
		}
		out, _, code := e.Rkt(t, "", "--insecure-options=image", "fetch", p)
		if code != 0 || !strings.HasPrefix(out, "sha256:") {
			t.Fatalf("fetch %s: code %d, stdout %q", p, code, out)
		}
	}
	if n := images(t, e); n != 2 { // layout and archive hold the same image
		t.Fatalf("%d images, want 2", n)
	}
}

func TestFetchDockerRegistry(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	img, err := fixture.BusyboxOCIImage()
	testenv.Require(t, err == nil, "no busybox fixture (busybox-static): %v", err)
	ref, _ := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/library/busybox:1.36")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	e := newRktEnv(t)
	_, errOut, code := e.Rkt(t, "", "fetch", "docker://"+ref.String())
	if code != stage1.ExitFailure || !strings.Contains(errOut, "--insecure-options=image") {
		t.Fatalf("code %d stderr %q", code, errOut)
	}
	out, _, code := e.Rkt(t, "", "--insecure-options=image", "fetch", "--full", "docker://"+ref.String())
	d, _ := img.Digest()
	if code != 0 || strings.TrimSpace(out) != d.String() {
		t.Fatalf("code %d stdout %q want %s", code, out, d)
	}
	// The store has it: never does not go out.
	srv.Close()
	out, _, code = e.Rkt(t, "", "--insecure-options=image", "fetch", "--pull-policy=never", "docker://"+ref.String())
	if code != 0 || !strings.HasPrefix(d.String(), strings.TrimSpace(out)) {
		t.Fatalf("never: code %d stdout %q", code, out)
	}
}

func TestFetchDiscoveryAndURL(t *testing.T) {
	im := fixturetest.Build(t)
	srv := fetchtest.New(t)
	useServer(t, srv)
	aci, _ := os.ReadFile(im.ACI)
	asc, _ := os.ReadFile(im.ASC)
	srv.Handle("/busybox", []byte(`<meta name="ac-discovery" content="example.com https://example.com/dl/{name}-{version}.{ext}">
<meta name="ac-discovery-pubkeys" content="example.com https://example.com/key.asc">`))
	srv.Handle("/dl/example.com/busybox-1.36.aci", aci)
	srv.Handle("/dl/example.com/busybox-1.36.aci.asc", asc)
	srv.Handle("/key.asc", im.PublicKey)
	e := newRktEnv(t)

	// No key and no --trust-keys-from-https: refused.
	_, errOut, code := e.Rkt(t, "", "fetch", "example.com/busybox:1.36")
	if code != stage1.ExitFailure || !strings.Contains(errOut, "no trusted keys") {
		t.Fatalf("code %d stderr %q", code, errOut)
	}
	out, _, code := e.Rkt(t, "", "--trust-keys-from-https", "fetch", "--full", "example.com/busybox:1.36")
	if code != 0 || strings.TrimSpace(out) != im.ACIID {
		t.Fatalf("discovery fetch: code %d stdout %q", code, out)
	}
	// The same image by URL, the key now trusted.
	out, _, code = e.Rkt(t, "", "fetch", "--full", "https://example.com/dl/example.com/busybox-1.36.aci")
	if code != 0 || strings.TrimSpace(out) != im.ACIID {
		t.Fatalf("URL fetch: code %d stdout %q", code, out)
	}
	// Plain http needs --insecure-options=http.
	_, errOut, code = e.Rkt(t, "", "fetch", "http://example.com/dl/example.com/busybox-1.36.aci")
	if code != stage1.ExitFailure || !strings.Contains(errOut, "--insecure-options=http") {
		t.Fatalf("http: code %d stderr %q", code, errOut)
	}
	if _, _, code = e.Rkt(t, "", "--insecure-options=http", "fetch", "http://example.com/dl/example.com/busybox-1.36.aci"); code != 0 {
		t.Fatalf("http allowed: code %d", code)
	}
}

func TestFetchBadFlags(t *testing.T) {
	e := newRktEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--insecure-options=image,bogus", "fetch", "x.aci"}, `unknown --insecure-options value "bogus"`},
		{[]string{"fetch", "--pull-policy=sometimes", "x.aci"}, `unknown --pull-policy "sometimes"`},
		{[]string{"fetch", "--store-only", "--no-store", "x.aci"}, "both --store-only and --no-store"},
		{[]string{"fetch"}, "requires at least 1 arg"},
		{[]string{"fetch", "ftp://example.com/x.aci"}, `scheme "ftp" not supported`},
	} {
		_, errOut, code := e.Rkt(t, "", tc.args...)
		if code != stage1.ExitFailure || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("rkt %v: code %d stderr %q; want one line with %q", tc.args, code, errOut, tc.want)
		}
	}
}

func TestFetchUsesAuthConfig(t *testing.T) {
	pub := fixturetest.NewKey(t, "publisher", fixture.KeyOptions{})
	var buf bytes.Buffer
	if _, err := fixture.WriteACI(&buf, fixture.ACIOptions{Name: "example.com/private", NoBusybox: true, Exec: []string{"/x"}}); err != nil {
		t.Fatal(err)
	}
	data, asc := buf.Bytes(), pub.Sign(buf.Bytes())
	srv := fetchtest.New(t)
	useServer(t, srv)
	srv.Mux.HandleFunc("/private.aci", func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "s3cret" {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		w.Write(data)
	})
	srv.Handle("/private.aci.asc", asc)
	e := newRktEnv(t)
	keyFile := filepath.Join(t.TempDir(), "pub.asc")
	os.WriteFile(keyFile, pub.Public, 0o644)
	if _, _, code := e.Rkt(t, "", "trust", "--skip-fingerprint-review", "--prefix=example.com/private", keyFile); code != 0 {
		t.Fatal("trust failed")
	}
	_, errOut, code := e.Rkt(t, "", "fetch", "https://example.com/private.aci")
	if code != stage1.ExitFailure || !strings.Contains(errOut, "401") {
		t.Fatalf("without credentials: code %d stderr %q", code, errOut)
	}
	os.MkdirAll(filepath.Join(e.Local, "auth.d"), 0o755)
	os.WriteFile(filepath.Join(e.Local, "auth.d/example.json"), []byte(`{"rktKind":"auth","rktVersion":"v1",
"domains":["example.com"],"type":"basic","credentials":{"user":"alice","password":"s3cret"}}`), 0o600)
	if _, _, code := e.Rkt(t, "", "fetch", "https://example.com/private.aci"); code != 0 {
		t.Fatalf("with credentials: code %d", code)
	}
}

func TestFetchUsesDockerAuth(t *testing.T) {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "bob" || p != "hunter2" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := fixture.OCIImage([]string{"/x"})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host + "/private/app:1")
	if err := remote.Write(ref, img, remote.WithAuth(basicAuth("bob", "hunter2"))); err != nil {
		t.Fatal(err)
	}
	e := newRktEnv(t)
	_, errOut, code := e.Rkt(t, "", "--insecure-options=image", "fetch", "docker://"+ref.String())
	if code != stage1.ExitFailure || !strings.Contains(errOut, "UNAUTHORIZED") && !strings.Contains(errOut, "401") {
		t.Fatalf("without credentials: code %d stderr %q", code, errOut)
	}
	os.MkdirAll(filepath.Join(e.System, "auth.d"), 0o755)
	os.WriteFile(filepath.Join(e.System, "auth.d/registry.json"), []byte(`{"rktKind":"dockerAuth","rktVersion":"v1",
"registries":["`+host+`"],"credentials":{"user":"bob","password":"hunter2"}}`), 0o600)
	if _, _, code := e.Rkt(t, "", "--insecure-options=image", "fetch", "docker://"+ref.String()); code != 0 {
		t.Fatalf("with credentials: code %d", code)
	}
}

func TestConfig(t *testing.T) {
	e := newRktEnv(t)
	write := func(dir, sub, file, body string) {
		os.MkdirAll(filepath.Join(dir, sub), 0o755)
		os.WriteFile(filepath.Join(dir, sub, file), []byte(body), 0o644)
	}
	write(e.System, "paths.d", "paths.json", `{"rktKind":"paths","rktVersion":"v1","data":"/srv/rkt","stage1-images":"/usr/lib/rkt/s1"}`)
	write(e.Local, "paths.d", "paths.json", `{"rktKind":"paths","rktVersion":"v1","data":"/var/lib/other"}`)
	write(e.System, "stage1.d", "s1.json", `{"rktKind":"stage1","rktVersion":"v1","name":"example.com/stage1","version":"1.0","location":"/usr/lib/rkt/s1/stage1.aci"}`)
	write(e.Local, "auth.d", "a.json", `{"rktKind":"auth","rktVersion":"v1","domains":["example.com"],"type":"oauth","credentials":{"token":"t0k"}}`)
	var out bytes.Buffer
	code := cli.Run(context.Background(), []string{"--local-config=" + e.Local, "--system-config=" + e.System, "config"}, strings.NewReader(""), &out, &bytes.Buffer{}, cli.Options{Remote: Remote{}})
	if code != 0 {
		t.Fatalf("config: code %d", code)
	}
	var got struct {
		Stage0 []map[string]any `json:"stage0"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	kinds := map[string]map[string]any{}
	for _, s := range got.Stage0 {
		if s["rktVersion"] != "v1" {
			t.Fatalf("entry without rktVersion v1: %v", s)
		}
		kinds[s["rktKind"].(string)] = s
	}
	if p := kinds["paths"]; p["data"] != "/var/lib/other" || p["stage1-images"] != "/usr/lib/rkt/s1" {
		t.Errorf("paths %v: local must override system field by field", p)
	}
	if s := kinds["stage1"]; s["name"] != "example.com/stage1" || s["location"] != "/usr/lib/rkt/s1/stage1.aci" {
		t.Errorf("stage1 %v", s)
	}
	if a := kinds["auth"]; a["type"] != "oauth" {
		t.Errorf("auth %v", a)
	}
	// --dir wins over paths.d.
	out.Reset()
	cli.Run(context.Background(), []string{"--dir=/tmp/x", "--local-config=" + e.Local, "--system-config=" + e.System, "config"}, strings.NewReader(""), &out, &bytes.Buffer{}, cli.Options{Remote: Remote{}})
	if !strings.Contains(out.String(), `"data": "/tmp/x"`) {
		t.Errorf("--dir not reflected: %s", out.String())
	}
	// A broken file is an error that names it.
	write(e.Local, "stage1.d", "broken.json", `{"rktKind":"stage1","rktVersion":"v2"}`)
	_, errOut, code := e.Rkt(t, "", "config")
	if code != stage1.ExitFailure || !strings.Contains(errOut, "broken.json") || !strings.Contains(errOut, "v2") {
		t.Fatalf("broken config: code %d stderr %q", code, errOut)
	}
}

type basicAuthenticator struct{ user, pass string }

func basicAuth(u, p string) *basicAuthenticator { return &basicAuthenticator{u, p} }

func (b *basicAuthenticator) Authorization() (*authn.AuthConfig, error) {
	return &authn.AuthConfig{Username: b.user, Password: b.pass}, nil
}

func TestFetchTLSOption(t *testing.T) {
	im := fixturetest.Build(t)
	srv := fetchtest.New(t)
	old := newTransport
	newTransport = func() *http.Transport { return srv.UntrustingClient().Transport.(*http.Transport) }
	t.Cleanup(func() { newTransport = old })
	aci, _ := os.ReadFile(im.ACI)
	srv.Handle("/busybox.aci", aci)
	srv.Handle("/busybox.aci.asc", []byte("unused"))
	e := newRktEnv(t)
	_, errOut, code := e.Rkt(t, "", "--insecure-options=image", "fetch", "https://example.com/busybox.aci")
	if code != stage1.ExitFailure || !strings.Contains(errOut, "--insecure-options=tls") {
		t.Fatalf("untrusted certificate: code %d stderr %q", code, errOut)
	}
	if _, errOut, code = e.Rkt(t, "", "--insecure-options=image,tls", "fetch", "https://example.com/busybox.aci"); code != 0 {
		t.Fatalf("with tls check off: code %d stderr %q", code, errOut)
	}
	// stderr is no terminal here: no progress bar, only the warning about the disabled check.
	if strings.Contains(errOut, "Downloading") {
		t.Fatalf("progress bar on a non-terminal: %q", errOut)
	}
}
