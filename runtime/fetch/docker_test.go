package fetch

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cairn-os/cairn/runtime/fetch/insecure"
	"github.com/cairn-os/cairn/runtime/fixture"
)

// pushSmall starts an in-process registry on 127.0.0.1 (wrapped by wrap when set), pushes a
// one-layer image to it and returns the docker:// reference.
func pushSmall(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	h := registry.New(registry.Logger(quietLogger()))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := fixture.OCIImage([]string{"/hello"}, smallOCI(t))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host + "/test/small:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push: %v", err)
	}
	return "docker://" + ref.String()
}

func TestFetchDocker(t *testing.T) {
	ctx := context.Background()
	ref := pushSmall(t, nil)
	h := newHarness(t)
	h.srv.Domains = append(h.srv.Domains, "127.0.0.1")

	_, err := h.fetcher(insecure.None, PullUpdate).Fetch(ctx, Request{Image: ref})
	wantErr(t, err, ErrInsecure, "--insecure-options=image")
	h.storeEmpty()

	f := h.fetcher(insecure.Image, PullUpdate)
	f.HTTP = http.DefaultClient
	var progress bytes.Buffer
	f.Progress = &progress
	img, err := f.Fetch(ctx, Request{Image: ref})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimPrefix(ref, "docker://")
	if img.Name != want || img.Format != "oci" || img.Trusted || len(img.Layers) != 1 || img.Source != ref {
		t.Fatalf("image %+v; want name %s", img, want)
	}
	if !strings.Contains(progress.String(), "Downloading layers") {
		t.Fatalf("no progress shown: %q", progress.String())
	}
	// pull-policy=new and never find it in the store under the same name.
	for _, p := range []PullPolicy{PullNew, PullNever} {
		f.PullPolicy = p
		again, err := f.Fetch(ctx, Request{Image: ref})
		if err != nil || again.ID != img.ID {
			t.Fatalf("pull-policy=%s: %v %v", p, again, err)
		}
	}
}

// A registry that serves a layer whose bytes do not match the digest it was asked for: a
// valid layer of other content, and a damaged one.
func TestFetchDockerWrongDigest(t *testing.T) {
	otherTar, err := fixture.LayerTar([]fixture.Entry{{Header: tar.Header{Name: "evil", Typeflag: tar.TypeReg, Mode: 0o755}, Body: "#!/bin/sh\n"}})
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(otherTar)
	zw.Close()
	for _, tc := range []struct {
		name    string
		replace func([]byte) []byte
		mention string
	}{
		{"other layer", func([]byte) []byte { return gz.Bytes() }, "does not match its digest"},
		{"damaged layer", func(b []byte) []byte { b[len(b)/2] ^= 0xff; return b }, "does not match its digest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := pushSmall(t, replaceLayers(tc.replace))
			h := newHarness(t)
			f := h.fetcher(insecure.Image, PullUpdate)
			f.HTTP = http.DefaultClient
			_, err := f.Fetch(context.Background(), Request{Image: ref})
			wantErr(t, err, nil, tc.mention)
			h.storeEmpty()
		})
	}
}

func replaceLayers(replace func([]byte) []byte) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			if len(body) > 0 && !bytes.HasPrefix(body, []byte("{")) { // a layer, not the config
				body = replace(body)
				rec.Header().Set("Content-Length", strconv.Itoa(len(body)))
			}
			maps.Copy(w.Header(), rec.Header())
			w.WriteHeader(rec.Code)
			w.Write(body)
		})
	}
}

func TestFetchDockerNotFound(t *testing.T) {
	ref := pushSmall(t, nil)
	h := newHarness(t)
	f := h.fetcher(insecure.Image, PullUpdate)
	f.HTTP = http.DefaultClient
	_, err := f.Fetch(context.Background(), Request{Image: strings.Replace(ref, ":v1", ":v2", 1)})
	wantErr(t, err, nil, "small:v2")
	h.storeEmpty()
}
