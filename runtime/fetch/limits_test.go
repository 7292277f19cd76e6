package fetch

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/cairn-os/cairn/runtime/fetch/insecure"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/fixture/fixturetest"
	"github.com/cairn-os/cairn/runtime/store"
)

// The Fetcher's Limits reach the store on every path an image comes by: a refused image
// lands nowhere, and the same image fetches under a limit it fits.
func TestFetchLimits(t *testing.T) {
	ctx := context.Background()
	pub := fixturetest.NewKey(t, "publisher", fixture.KeyOptions{})
	a := newACI(t, "example.com/app", pub)
	tight := store.Limits{MaxImageSize: 2, Origin: map[string]string{"maxImageSize": "/etc/rkt/store.d/tight.json"}}
	for _, tc := range []struct {
		name  string
		setup func(h *harness) (Request, insecure.Options)
	}{
		{"local ACI", func(h *harness) (Request, insecure.Options) {
			path := writeFile(t, filepath.Join(t.TempDir(), "app.aci"), a.data)
			writeFile(t, path+".asc", a.asc)
			return Request{Image: path}, insecure.None
		}},
		{"ACI URL", func(h *harness) (Request, insecure.Options) {
			serve(h, "/app.aci", a)
			return Request{Image: "https://example.com/app.aci"}, insecure.None
		}},
		{"registry", func(h *harness) (Request, insecure.Options) {
			h.srv.Domains = append(h.srv.Domains, "127.0.0.1")
			return Request{Image: pushSmall(t, nil)}, insecure.Image
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.trustKey("example.com/app", pub)
			req, ins := tc.setup(h)
			f := h.fetcher(ins, PullUpdate)
			if ins.Has(insecure.Image) {
				f.HTTP = http.DefaultClient
			}
			f.Limits = tight
			_, err := f.Fetch(ctx, req)
			wantErr(t, err, store.ErrTooLarge, "store limit maxImageSize, set in /etc/rkt/store.d/tight.json")
			h.storeEmpty()
			f.Limits = store.Limits{MaxImageSize: 1 << 20}
			if _, err := f.Fetch(ctx, req); err != nil {
				t.Fatalf("under a limit it fits: %v", err)
			}
		})
	}
}
