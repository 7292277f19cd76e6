package fetch

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/cairn-os/cairn/runtime/fetch/discovery"
	"github.com/cairn-os/cairn/runtime/fetch/insecure"
	"github.com/cairn-os/cairn/runtime/trust"
)

// AnnouncedKey is a public key found through discovery or given as a URL, not yet trusted.
type AnnouncedKey struct {
	Location string
	Key      *trust.Key
}

// FetchKey reads a public key from a local file or an http(s) URL. Plain http is allowed
// only with allowHTTP (rkt trust --insecure-allow-http) or --insecure-options=pubkey.
func (f *Fetcher) FetchKey(ctx context.Context, location string, allowHTTP bool) (*AnnouncedKey, error) {
	var data []byte
	if strings.HasPrefix(location, "https://") || strings.HasPrefix(location, "http://") {
		var buf limitedBuffer
		if _, err := f.download(ctx, location, "public key", &buf, trust.MaxKeySize, allowHTTP || f.Insecure.Has(insecure.PubKey), nil); err != nil {
			return nil, err
		}
		data = buf.b
	} else {
		b, err := os.ReadFile(location)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		data = b
	}
	k, err := trust.ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", location, err)
	}
	return &AnnouncedKey{Location: location, Key: k}, nil
}

// DiscoverKeys finds and downloads the keys that the publisher of prefix announces with
// ac-discovery-pubkeys. allowHTTP (rkt trust --insecure-allow-http) permits plain http for
// the discovery page and the keys.
func (f *Fetcher) DiscoverKeys(ctx context.Context, prefix string, allowHTTP bool) ([]*AnnouncedKey, error) {
	app, err := discovery.ParseApp(prefix)
	if err != nil {
		return nil, err
	}
	dc := f.discoverer()
	dc.AllowHTTP = dc.AllowHTTP || allowHTTP
	res, err := dc.DiscoverPublicKeys(ctx, app)
	if err != nil {
		return nil, err
	}
	return f.fetchKeys(ctx, res.PublicKeys, allowHTTP)
}

func (f *Fetcher) fetchKeys(ctx context.Context, urls []string, allowHTTP bool) ([]*AnnouncedKey, error) {
	var out []*AnnouncedKey
	for _, u := range urls {
		k, err := f.FetchKey(ctx, u, allowHTTP)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// trustAnnouncedKeys implements --trust-keys-from-https: when nothing is trusted for the
// name yet, the keys its discovery page announces over https become trusted for it.
func (f *Fetcher) trustAnnouncedKeys(ctx context.Context, app *discovery.App, urls []string) error {
	have, err := f.Trust.Keyring(app.Name)
	if err != nil || len(have) > 0 {
		return err
	}
	if len(urls) == 0 {
		res, err := f.discoverer().DiscoverPublicKeys(ctx, app)
		if err != nil {
			return fmt.Errorf("--trust-keys-from-https: %w", err)
		}
		urls = res.PublicKeys
	}
	for _, u := range urls {
		if !strings.HasPrefix(u, "https://") && !f.Insecure.Has(insecure.PubKey) {
			return fmt.Errorf("--trust-keys-from-https: key %s is not on https (allow it with --insecure-options=pubkey)", u)
		}
	}
	keys, err := f.fetchKeys(ctx, urls, false)
	if err != nil {
		return fmt.Errorf("--trust-keys-from-https: %w", err)
	}
	for _, k := range keys {
		path, err := f.Trust.AddPrefixKey(app.Name, k.Key)
		if err != nil {
			return err
		}
		f.log().Info("trusting key announced over https (--trust-keys-from-https)",
			"prefix", app.Name, "fingerprint", k.Key.Fingerprint, "from", k.Location, "path", path)
	}
	return nil
}
