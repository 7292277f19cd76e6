package fetch

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/runtime/fetch/insecure"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/fixture/fixturetest"
)

func aciWithDeps(t *testing.T, name string, key *fixturetest.Key, deps types.Dependencies) *signedACI {
	t.Helper()
	var buf bytes.Buffer
	id, err := fixture.WriteACI(&buf, fixture.ACIOptions{
		Name: name, Labels: map[string]string{"version": "1.0"}, NoBusybox: true,
		Exec: []string{"/hello"}, Files: map[string]string{name[len("example.com/"):]: "x"}, Dependencies: deps,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &signedACI{name: name, data: buf.Bytes(), asc: key.Sign(buf.Bytes()), id: id, key: key}
}

func dep(t *testing.T, name, id string) types.Dependency {
	d := types.Dependency{ImageName: types.ACIdentifier(name), Labels: types.Labels{{Name: "version", Value: "1.0"}}}
	if id != "" {
		h, err := types.NewHash(id)
		if err != nil {
			t.Fatal(err)
		}
		d.ImageID = h
	}
	return d
}

func TestFetchDependencies(t *testing.T) {
	ctx := context.Background()
	pub := fixturetest.NewKey(t, "publisher", fixture.KeyOptions{})
	base := aciWithDeps(t, "example.com/base", pub, nil)
	const page = `<meta name="ac-discovery" content="example.com https://example.com/aci/{name}-{version}.{ext}">`

	for _, tc := range []struct {
		name    string
		pin     string
		wantErr string
	}{
		{"by name and labels", "", ""},
		{"pinned ID", base.id, ""},
		{"wrong pinned ID", "sha512-" + string(bytes.Repeat([]byte("ab"), 64)), "pins sha512-abab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.trustKey("example.com", pub)
			h.srv.Handle("/base", []byte(page))
			serve(h, "/aci/example.com/base-1.0.aci", base)
			app := aciWithDeps(t, "example.com/app", pub, types.Dependencies{dep(t, "example.com/base", tc.pin)})
			path := writeFile(t, filepath.Join(t.TempDir(), "app.aci"), app.data)
			writeFile(t, path+".asc", app.asc)
			img, err := h.fetcher(insecure.None, PullUpdate).Fetch(ctx, Request{Image: path})
			if tc.wantErr != "" {
				wantErr(t, err, ErrNameMismatch, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if img.ID != app.id || len(img.Layers) != 2 {
				t.Fatalf("image %s with %d layers; want %s on top of its dependency", img.ID, len(img.Layers), app.id)
			}
		})
	}
}

func TestFetchDependencyCycle(t *testing.T) {
	pub := fixturetest.NewKey(t, "publisher", fixture.KeyOptions{})
	h := newHarness(t)
	h.trustKey("example.com", pub)
	// example.com/loop depends on itself, and is not in the store until its dependency is.
	loop := aciWithDeps(t, "example.com/loop", pub, types.Dependencies{dep(t, "example.com/loop", "")})
	h.srv.Handle("/loop", []byte(`<meta name="ac-discovery" content="example.com https://example.com/aci/{name}-{version}.{ext}">`))
	serve(h, "/aci/example.com/loop-1.0.aci", loop)
	_, err := h.fetcher(insecure.None, PullUpdate).Fetch(context.Background(), Request{Image: "example.com/loop:1.0"})
	wantErr(t, err, nil, "dependency cycle: example.com/loop -> example.com/loop")
	h.storeEmpty()
}
