package remote

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/fixture/fixturetest"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// rkt fetch refuses an image that extracts beyond the store's limits, by default and as set
// in store.d, saying which limit, where it is set and where to raise it, and leaves nothing
// in the store; raised, the limit lets the image in. rkt config shows the limits.
func TestFetchStoreLimits(t *testing.T) {
	e := newRktEnv(t)
	img, err := fixture.SparseTar(nil, "var/log/lastlog", 1<<40, "x")
	if err != nil {
		t.Fatal(err)
	}
	oimg, err := fixture.OCIImage([]string{"/bin/true"}, img)
	if err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(t.TempDir(), "sparse")
	if err := fixture.WriteOCILayout(layout, oimg, "example.com/sparse:1"); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := e.Rkt(t, "", "--insecure-options=image", "fetch", layout)
	storeD := filepath.Join(e.Local, "store.d")
	for _, want := range []string{"image too large: extracts to more than 16 GiB (a file of 1.0 TiB)", `"var/log/lastlog"`,
		"store limit maxImageSize, the default; raise it in a file in " + storeD} {
		if code != stage1.ExitFailure || !strings.Contains(errOut, want) {
			t.Fatalf("fetch of a TiB sparse file: code %d, stderr %q; want it to say %q", code, errOut, want)
		}
	}
	if n := images(t, e); n != 0 {
		t.Fatalf("%d images after a refused fetch", n)
	}
	// rkt prepare (and run) fetch a missing image the same way, within the same limits.
	_, errOut, code = e.Rkt(t, "", "--insecure-options=image", "prepare", layout)
	if code != stage1.ExitFailure || !strings.Contains(errOut, "image too large: extracts to more than 16 GiB") {
		t.Fatalf("prepare of a TiB sparse file: code %d, stderr %q", code, errOut)
	}
	if n := images(t, e); n != 0 {
		t.Fatalf("%d images after a refused prepare", n)
	}

	im := fixturetest.Build(t)
	if _, _, code := e.Rkt(t, "", "trust", "--skip-fingerprint-review", "--prefix="+fixture.ACIName, im.PublicKeyPath); code != 0 {
		t.Fatalf("trust: code %d", code)
	}
	if err := os.MkdirAll(storeD, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(storeD, "50-small.json")
	setLimit := func(size string) {
		body := `{"rktKind":"store","rktVersion":"v1","maxImageSize":"` + size + `","maxImageEntries":100000}`
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setLimit("1MiB")
	_, errOut, code = e.Rkt(t, "", "fetch", im.ACI)
	if code != stage1.ExitFailure || !strings.Contains(errOut, "extracts to more than 1.0 MiB") ||
		!strings.Contains(errOut, "store limit maxImageSize, set in "+conf) {
		t.Fatalf("fetch over a configured limit: code %d, stderr %q", code, errOut)
	}
	if n := images(t, e); n != 0 {
		t.Fatalf("%d images after a refused fetch", n)
	}
	out, _, code := e.Rkt(t, "", "config")
	if code != 0 || !strings.Contains(out, `"rktKind": "store"`) || !strings.Contains(out, `"maxImageSize": "1MiB"`) ||
		!strings.Contains(out, `"maxImageEntries": 100000`) {
		t.Fatalf("config: code %d, %s", code, out)
	}
	setLimit("64MiB")
	if out, _, code := e.Rkt(t, "", "fetch", "--full", im.ACI); code != 0 || strings.TrimSpace(out) != im.ACIID {
		t.Fatalf("fetch under a raised limit: code %d, stdout %q", code, out)
	}
}
