package fetch

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/runtime/fetch/insecure"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/fixture/fixturetest"
)

// etagServer serves the current ACI with an ETag and counts full downloads.
type etagServer struct {
	mu   sync.Mutex
	aci  *signedACI
	etag string
	full int
}

func (s *etagServer) set(a *signedACI, etag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aci, s.etag = a, etag
}

func (s *etagServer) register(h *harness) {
	h.srv.Mux.HandleFunc("/app.aci", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.Header.Get("If-None-Match") == s.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		s.full++
		w.Header().Set("ETag", s.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(s.aci.data))
	})
	h.srv.Mux.HandleFunc("/app.aci.asc", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Write(s.aci.asc)
	})
}

func TestFetchUpdateConditional(t *testing.T) {
	ctx := context.Background()
	pub := fixturetest.NewKey(t, "publisher", fixture.KeyOptions{})
	v1 := newACI(t, "example.com/app", pub)
	v2 := aciWithDeps(t, "example.com/app", pub, nil) // other content, same name
	h := newHarness(t)
	h.trustKey("example.com", pub)
	srv := &etagServer{}
	srv.set(v1, `"v1"`)
	srv.register(h)
	f := h.fetcher(insecure.None, PullUpdate)
	f.CacheDir = t.TempDir()
	const u = "https://example.com/app.aci"

	for i, want := range []struct {
		id   string
		full int
	}{{v1.id, 1}, {v1.id, 1}, {v1.id, 1}} {
		img, err := f.Fetch(ctx, Request{Image: u})
		if err != nil || img.ID != want.id || srv.full != want.full {
			t.Fatalf("fetch %d: image %v err %v, %d full downloads; want %s after %d", i, img, err, srv.full, want.id, want.full)
		}
	}
	srv.set(v2, `"v2"`)
	img, err := f.Fetch(ctx, Request{Image: u})
	if err != nil || img.ID != v2.id || srv.full != 2 {
		t.Fatalf("changed image: %v %v, %d full downloads", img, err, srv.full)
	}
}

// An image stored without its signature checked is not reused when the check is on.
func TestFetchUpdateConditionalUntrusted(t *testing.T) {
	ctx := context.Background()
	pub := fixturetest.NewKey(t, "publisher", fixture.KeyOptions{})
	a := newACI(t, "example.com/app", pub)
	h := newHarness(t)
	srv := &etagServer{}
	srv.set(a, `"v1"`)
	srv.register(h)
	cache := t.TempDir()
	f := h.fetcher(insecure.Image, PullUpdate)
	f.CacheDir = cache
	if _, err := f.Fetch(ctx, Request{Image: "https://example.com/app.aci"}); err != nil {
		t.Fatal(err)
	}
	checked := h.fetcher(insecure.None, PullUpdate)
	checked.CacheDir = cache
	_, err := checked.Fetch(ctx, Request{Image: "https://example.com/app.aci"})
	wantErr(t, err, nil, "no trusted keys")
	if srv.full != 2 {
		t.Fatalf("%d full downloads; want 2: the unverified copy must not be reused without a check", srv.full)
	}
}
