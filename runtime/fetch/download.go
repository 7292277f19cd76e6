package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"

	"github.com/cairn-os/cairn/runtime/fetch/insecure"
)

// ErrHTTPStatus is a download answered with a status other than 200.
var ErrHTTPStatus = errors.New("unexpected HTTP status")

// validators are what a server said identifies the content it sent; sent back, they let it
// answer 304 Not Modified.
type validators struct {
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"lastModified,omitempty"`
}

// downloaded describes a finished download.
type downloaded struct {
	n           int64
	validators  validators
	notModified bool // the server answered 304 to the validators given: nothing was written
}

// download copies the body at rawURL to w, at most limit bytes (no limit when limit <= 0),
// showing progress for what. It refuses plain http (also after a redirect) unless allowHTTP,
// and reports a body shorter than its Content-Length as ErrTruncated. With cond, the request
// is conditional.
func (f *Fetcher) download(ctx context.Context, rawURL, what string, w io.Writer, limit int64, allowHTTP bool, cond *validators) (*downloaded, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, rawURL, err)
	}
	if err := checkScheme(u, allowHTTP); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, u.Redacted(), err)
	}
	f.addHeaders(req)
	if cond != nil {
		if cond.ETag != "" {
			req.Header.Set("If-None-Match", cond.ETag)
		}
		if cond.LastModified != "" {
			req.Header.Set("If-Modified-Since", cond.LastModified)
		}
	}
	client := *f.HTTP
	client.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("too many redirects")
		}
		if err := checkScheme(r.URL, allowHTTP); err != nil {
			return err
		}
		if r.URL.Host == via[0].URL.Host {
			f.addHeaders(r) // credentials go only to the host they are for
		}
		return nil
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, u.Redacted(), hintTLS(err))
	}
	defer resp.Body.Close()
	if cond != nil && resp.StatusCode == http.StatusNotModified {
		return &downloaded{notModified: true, validators: *cond}, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %w %s", what, u.Redacted(), ErrHTTPStatus, resp.Status)
	}
	var body io.Reader = resp.Body
	if limit > 0 {
		if resp.ContentLength > limit {
			return nil, fmt.Errorf("%s %s: larger than %d bytes", what, u.Redacted(), limit)
		}
		body = io.LimitReader(resp.Body, limit+1)
	}
	var bar *progressBar
	if f.Progress != nil && limit <= 0 {
		bar = newProgressBar(f.Progress, what, resp.ContentLength)
		w = io.MultiWriter(w, bar)
	}
	n, err := io.Copy(w, body)
	if bar != nil {
		bar.finish()
	}
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || (err == nil && resp.ContentLength >= 0 && n != resp.ContentLength):
		return nil, fmt.Errorf("%s %s: %w: got %d of %d bytes", what, u.Redacted(), ErrTruncated, n, resp.ContentLength)
	case err != nil:
		return nil, fmt.Errorf("%s %s: %w", what, u.Redacted(), hintTLS(err))
	case limit > 0 && n > limit:
		return nil, fmt.Errorf("%s %s: larger than %d bytes", what, u.Redacted(), limit)
	}
	return &downloaded{n: n, validators: validators{ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified")}}, nil
}

func (f *Fetcher) addHeaders(req *http.Request) {
	if f.Header == nil {
		return
	}
	maps.Copy(req.Header, f.Header(req.URL.Host))
}

func checkScheme(u *url.URL, allowHTTP bool) error {
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if allowHTTP {
			return nil
		}
		return fmt.Errorf("%s: plain http can be tampered with on the way; use https: %w=http", u.Redacted(), ErrInsecure)
	}
	return fmt.Errorf("%s: scheme %q not supported", u.Redacted(), u.Scheme)
}

// hintTLS adds what to do to a certificate verification failure.
func hintTLS(err error) error {
	var (
		verr *tls.CertificateVerificationError
		uerr x509.UnknownAuthorityError
		herr x509.HostnameError
		cerr x509.CertificateInvalidError
	)
	if errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &cerr) {
		return fmt.Errorf("%w (the server's TLS certificate is not trusted; fix the certificate or skip the check with --insecure-options=tls)", err)
	}
	return err
}

// InsecureTransport returns a transport like base (http.DefaultTransport when nil) that skips
// TLS certificate verification, for --insecure-options=tls.
func InsecureTransport(base *http.Transport) *http.Transport {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport)
	}
	tr := base.Clone()
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{}
	}
	tr.TLSClientConfig.InsecureSkipVerify = true
	return tr
}

// tempFile is an anonymous file for a download: unlinked at once, so that nothing is left
// behind however the process ends.
func (f *Fetcher) tempFile() (*os.File, error) {
	dir := f.TempDir
	if dir == "" {
		dir = os.TempDir()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("download directory: %w", err)
	}
	tf, err := os.CreateTemp(dir, "fetch-*")
	if err != nil {
		return nil, fmt.Errorf("download directory: %w", err)
	}
	os.Remove(tf.Name())
	return tf, nil
}

func (f *Fetcher) allowHTTP() bool { return f.Insecure.Has(insecure.HTTP) }
