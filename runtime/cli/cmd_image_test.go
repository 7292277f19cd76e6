package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/fixture/fixturetest"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
	"github.com/cairn-os/cairn/runtime/store"
)

func TestImageCommands(t *testing.T) {
	im := fixturetest.Build(t)
	dir := t.TempDir()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := s.ImportFile(ctx, im.ACI, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o, err := s.ImportFile(ctx, im.OCILayout, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rkt := func(args ...string) (string, string, int) {
		return run(t, append([]string{"--dir", dir}, args...)...)
	}

	out, errOut, code := rkt("image", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "ID NAME SIZE IMPORT TIME LAST USED" {
		t.Fatalf("image list: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if f := strings.Fields(lines[1]); f[0] != a.ID[:19] || f[1] != "example.com/busybox:1.36" || !strings.HasSuffix(f[2], "iB") {
		t.Fatalf("ACI row %q", lines[1])
	}
	if f := strings.Fields(lines[2]); f[0] != o.ID[:19] || f[1] != fixture.OCIName {
		t.Fatalf("OCI row %q", lines[2])
	}
	out, _, _ = rkt("image", "list", "--no-legend", "--full", "--fields=id,name")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || strings.Fields(lines[0])[0] != a.ID {
		t.Fatalf("list --no-legend --full --fields=id,name: %q", out)
	}
	for _, f := range []string{"json", "json-pretty"} {
		out, _, code = rkt("image", "list", "--format="+f)
		var es []imageListEntry
		if err := json.Unmarshal([]byte(out), &es); err != nil || code != 0 || len(es) != 2 {
			t.Fatalf("list --format=%s: %v %q", f, err, out)
		}
		if es[0].ID != a.ID || es[1].ID != o.ID || es[0].ImportTime == 0 || es[1].Size == 0 {
			t.Fatalf("list --format=%s: %+v", f, es)
		}
	}
	if _, errOut, code := rkt("image", "list", "--fields=bogus"); code == 0 || !strings.Contains(errOut, "bogus") {
		t.Fatalf("--fields=bogus: code %d %q", code, errOut)
	}

	out, _, code = rkt("image", "cat-manifest", a.ID[:19])
	if code != 0 || !strings.Contains(out, `"name": "example.com/busybox"`) {
		t.Fatalf("cat-manifest: %d %q", code, out)
	}
	// rkt's words: the name as given, then the full ID it resolved to.
	want := fmt.Sprintf("successfully verified checksum for image: %q (%q)\n", a.ID, a.ID) +
		fmt.Sprintf("successfully verified checksum for image: %q (%q)\n", fixture.OCIName, o.ID)
	if out, _, code = rkt("image", "verify", a.ID, fixture.OCIName); code != 0 || out != want {
		t.Fatalf("verify: %d %q, want %q", code, out, want)
	}

	exp := filepath.Join(t.TempDir(), "out.aci")
	if _, errOut, code := rkt("image", "export", "example.com/busybox", exp); code != 0 {
		t.Fatalf("export: %d %q", code, errOut)
	}
	if _, errOut, code := rkt("image", "export", "example.com/busybox", exp); code == 0 || !strings.Contains(errOut, "--overwrite") {
		t.Fatalf("export over an existing file: %d %q", code, errOut)
	}
	rdir := filepath.Join(t.TempDir(), "r")
	if _, errOut, code := rkt("image", "render", a.ID, rdir); code != 0 {
		t.Fatalf("render: %d %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(rdir, "rootfs/bin/busybox")); err != nil {
		t.Fatalf("render: %v", err)
	}
	xdir := filepath.Join(t.TempDir(), "x")
	if _, errOut, code := rkt("image", "extract", "--rootfs-only", o.ID, xdir); code != 0 {
		t.Fatalf("extract: %d %q", code, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(xdir, fixture.HelloPath)); string(b) != fixture.HelloText {
		t.Fatalf("extract: hello = %q", b)
	}

	if out, errOut, code := rkt("image", "rm", a.ID, "sha512-ffff"); code != stage1.ExitFailure || !strings.Contains(errOut, "1 image(s) successfully removed") || !strings.Contains(errOut, "sha512-ffff") ||
		out != fmt.Sprintf("successfully removed aci for image: %q\n", a.ID) {
		t.Fatalf("rm: %d %q %q", code, out, errOut)
	}
	if out, errOut, code := rkt("image", "gc", "--grace-period=0s"); code != 0 || !strings.Contains(out, o.ID) || !strings.Contains(errOut, "1 image(s)") {
		t.Fatalf("gc: %d %q %q", code, out, errOut)
	}
	if out, errOut, code := rkt("image", "gc", "--grace-period=0s"); code != 0 || out != "" || errOut != "" {
		t.Fatalf("gc with nothing to remove: %d %q %q", code, out, errOut)
	}
	if out, _, _ := rkt("image", "list", "--no-legend"); strings.TrimSpace(out) != "" {
		t.Fatalf("list after rm and gc: %q", out)
	}
}

func TestImageGCKeepsPodImages(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var ids []string
	for _, n := range []string{"example.com/used", "example.com/unused"} {
		var buf bytes.Buffer
		if _, err := fixture.WriteACI(&buf, fixture.ACIOptions{Name: n, NoBusybox: true, Exec: []string{"/x"}}); err != nil {
			t.Fatal(err)
		}
		img, err := s.ImportACI(ctx, &buf, store.ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, img.ID)
	}
	p, err := pod.NewStore(dir).Create()
	if err != nil {
		t.Fatal(err)
	}
	h, _ := types.NewHash(ids[0])
	m := schema.BlankPodManifest()
	m.Apps = schema.AppList{{Name: "used", Image: schema.RuntimeImage{ID: *h}}}
	if err := p.WriteManifest(m); err != nil {
		t.Fatal(err)
	}
	p.Close()
	out, errOut, code := run(t, "--dir", dir, "image", "gc", "--grace-period=0s")
	if code != 0 || strings.Contains(out, ids[0]) || !strings.Contains(out, ids[1]) {
		t.Fatalf("gc: %d %q %q; want only the unused image removed", code, out, errOut)
	}
}
