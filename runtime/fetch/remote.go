package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/cairn-os/cairn/internal/atomicfile"
	"github.com/cairn-os/cairn/runtime/fetch/insecure"
	"github.com/cairn-os/cairn/runtime/image"
)

// remoteEntry remembers what an ACI URL gave last time: the image it became and the
// validators (ETag, Last-Modified) the server sent with it, so that --pull-policy=update asks
// "changed since?" instead of downloading the image again, as rkt did.
type remoteEntry struct {
	URL     string `json:"url"`
	ImageID string `json:"imageID"`
	validators
}

func (f *Fetcher) remotePath(u string) string {
	sum := sha256.Sum256([]byte(u))
	return filepath.Join(f.CacheDir, hex.EncodeToString(sum[:])+".json")
}

// cached returns the remembered entry for u and its image, when both still hold and the image
// passed the checks that this fetch would apply.
func (f *Fetcher) cached(ctx context.Context, u string) (*remoteEntry, *image.Image) {
	if f.CacheDir == "" {
		return nil, nil
	}
	b, err := os.ReadFile(f.remotePath(u))
	if err != nil {
		return nil, nil
	}
	var e remoteEntry
	if json.Unmarshal(b, &e) != nil || e.URL != u || (e.ETag == "" && e.LastModified == "") {
		return nil, nil
	}
	img, err := f.Store.Get(ctx, e.ImageID)
	if err != nil || (!img.Trusted && !f.Insecure.Has(insecure.Image)) {
		return nil, nil
	}
	return &e, img
}

// remember records what u gave; a failure only costs a download next time.
func (f *Fetcher) remember(u, id string, v validators) {
	if f.CacheDir == "" || (v.ETag == "" && v.LastModified == "") {
		return
	}
	b, _ := json.Marshal(remoteEntry{URL: u, ImageID: id, validators: v})
	err := os.MkdirAll(f.CacheDir, 0o700)
	if err == nil {
		err = atomicfile.WriteFile(f.remotePath(u), b, 0o600)
	}
	if err != nil {
		f.log().Debug("cannot remember download validators", "url", u, "err", err)
	}
}
