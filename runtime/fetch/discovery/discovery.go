// Package discovery implements appc image discovery: an image name such as
// example.com/app:v1 is turned into the URLs of its ACI, its detached signature and its
// publisher's keys by reading the ac-discovery and ac-discovery-pubkeys meta tags of
// https://example.com/app?ac-discovery=1, walking up the name's parent paths until a page
// answers. On top of the appc rules it refuses what a hostile page could abuse: pages over a
// size limit, plain http unless allowed, and URLs that point off the name's domain unless the
// user opted out.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"sort"
	"strings"

	appc "github.com/appc/spec/discovery"
)

// App is an image name with its labels (version, os, arch, ...).
type App struct {
	Name   string
	Labels map[string]string
}

// ParseApp reads an image argument such as "example.com/app:v1,channel=beta" and fills in
// the defaults rkt uses: version "latest", and this machine's os and arch in appc's terms.
func ParseApp(s string) (*App, error) {
	a, err := appc.NewAppFromString(s)
	if err != nil {
		return nil, fmt.Errorf("image name %q: %w", s, err)
	}
	if err := CheckName(a.Name.String()); err != nil {
		return nil, fmt.Errorf("image name %q: %w", s, err)
	}
	app := &App{Name: a.Name.String(), Labels: map[string]string{}}
	for k, v := range a.Labels {
		app.Labels[k.String()] = v
	}
	for k, v := range map[string]string{"version": "latest", "os": runtime.GOOS, "arch": AppcArch(runtime.GOARCH)} {
		if app.Labels[k] == "" {
			app.Labels[k] = v
		}
	}
	return app, nil
}

// CheckName refuses names with empty, "." or ".." path elements, which appc's identifier
// check lets through and which must never reach a file path or a URL path.
func CheckName(name string) error {
	for e := range strings.SplitSeq(name, "/") {
		if e == "" || e == "." || e == ".." {
			return fmt.Errorf("path element %q not allowed", e)
		}
	}
	return nil
}

// String is the name with its labels, sorted, as the command line takes it.
func (a *App) String() string {
	keys := make([]string, 0, len(a.Labels))
	for k := range a.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := a.Name
	for _, k := range keys {
		s += "," + k + "=" + a.Labels[k]
	}
	return s
}

// AppcArch maps a Go architecture to appc's name for it.
func AppcArch(goarch string) string {
	switch goarch {
	case "arm64":
		return "aarch64"
	case "386":
		return "i386"
	case "arm":
		return "armv7l"
	}
	return goarch
}

// Endpoint is where an image and its signature are.
type Endpoint struct {
	ACI string
	ASC string
}

// Result is what one discovery page said about an app.
type Result struct {
	Page       string // the URL that answered
	Endpoints  []Endpoint
	PublicKeys []string
}

// Sentinel errors.
var (
	ErrOffDomain = errors.New("points off the image's domain")
	ErrNotFound  = errors.New("no discovery information found")
)

// Client discovers images. HTTP is required; the rest have safe zero values.
type Client struct {
	// HTTP makes the requests. A caller that accepts bad certificates (--insecure-options=tls)
	// passes a client configured so; tests pass one whose dialer reaches a local server.
	HTTP *http.Client
	// AllowHTTP permits falling back to plain http (--insecure-options=http).
	AllowHTTP bool
	// AllowOffDomain permits discovered URLs on hosts other than the name's domain and its
	// subdomains.
	AllowOffDomain bool
	// MaxPageSize bounds a discovery page; DefaultMaxPageSize when 0.
	MaxPageSize int64
	// Header returns extra request headers for a host (credentials from rkt's auth config).
	Header func(host string) http.Header
	Log    *slog.Logger
}

func (c *Client) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Discover finds the ACI and signature URLs for app (and any public keys the same page
// announces), walking from the full name up to its domain.
func (c *Client) Discover(ctx context.Context, app *App) (*Result, error) {
	return c.walk(ctx, app, func(r *Result) bool { return len(r.Endpoints) > 0 })
}

// DiscoverPublicKeys finds the URLs of the keys that the publisher of app announces.
func (c *Client) DiscoverPublicKeys(ctx context.Context, app *App) (*Result, error) {
	return c.walk(ctx, app, func(r *Result) bool { return len(r.PublicKeys) > 0 })
}

func (c *Client) walk(ctx context.Context, app *App, enough func(*Result) bool) (*Result, error) {
	elems := strings.Split(app.Name, "/")
	var tried []string
	for i := len(elems); i > 0; i-- {
		prefix := strings.Join(elems[:i], "/")
		res, err := c.discoverAt(ctx, prefix, app)
		if err != nil {
			// A page that breaks the safety rules ends the walk: its parents are the same
			// server, and the user must see why rather than a vaguer "not found".
			if errors.Is(err, ErrOffDomain) || errors.Is(err, ErrPageTooBig) || ctx.Err() != nil {
				return nil, fmt.Errorf("discovery of %s: %w", app.Name, err)
			}
			c.log().Debug("discovery attempt failed", "prefix", prefix, "err", err)
			tried = append(tried, err.Error())
			continue
		}
		if enough(res) {
			return res, nil
		}
		tried = append(tried, res.Page+": no matching meta tags")
	}
	return nil, fmt.Errorf("discovery of %s: %w (tried %s)", app.Name, ErrNotFound, strings.Join(tried, "; "))
}

func (c *Client) discoverAt(ctx context.Context, prefix string, app *App) (*Result, error) {
	var (
		res *Result
		err error
	)
	for _, scheme := range c.schemes() {
		res, err = c.fetchPage(ctx, scheme+"://"+prefix+"?ac-discovery=1", app)
		if err == nil || errors.Is(err, ErrOffDomain) || errors.Is(err, ErrPageTooBig) {
			return res, err
		}
	}
	return nil, err
}

func (c *Client) schemes() []string {
	if c.AllowHTTP {
		return []string{"https", "http"}
	}
	return []string{"https"}
}

func (c *Client) fetchPage(ctx context.Context, page string, app *App) (*Result, error) {
	u, err := url.Parse(page)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", page, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, page, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", page, err)
	}
	if c.Header != nil {
		maps.Copy(req.Header, c.Header(u.Host))
	}
	client := *c.HTTP
	domain := hostOnly(u.Host)
	client.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("too many redirects")
		}
		if r.URL.Scheme != "https" && !c.AllowHTTP {
			return fmt.Errorf("redirect to %s is not https (allow it with --insecure-options=http)", r.URL.Redacted())
		}
		if !c.AllowOffDomain && !onDomain(r.URL.Host, domain) {
			return fmt.Errorf("redirect to %s %w %s", r.URL.Redacted(), ErrOffDomain, domain)
		}
		return nil
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", page, resp.Status)
	}
	metas, err := ParseMeta(resp.Body, c.MaxPageSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", page, err)
	}
	res := &Result{Page: page}
	vars := templateVars(app)
	for _, m := range metas {
		if !hasPathPrefix(app.Name, m.Prefix) {
			continue
		}
		switch m.Kind {
		case KindDiscovery:
			aci, ok1 := render(m.Template, vars, "aci")
			asc, ok2 := render(m.Template, vars, "aci.asc")
			if !ok1 || !ok2 {
				continue // a label the template needs is missing: not for this app
			}
			for _, s := range []string{aci, asc} {
				if err := c.checkURL(s, domain); err != nil {
					return nil, fmt.Errorf("%s: %w", page, err)
				}
			}
			res.Endpoints = append(res.Endpoints, Endpoint{ACI: aci, ASC: asc})
		case KindPubKeys:
			if err := c.checkURL(m.Template, domain); err != nil {
				return nil, fmt.Errorf("%s: %w", page, err)
			}
			res.PublicKeys = append(res.PublicKeys, m.Template)
		}
	}
	return res, nil
}

// checkURL applies the safety rules to a URL a page announced.
func (c *Client) checkURL(s, domain string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("announced URL %q: %v", s, err)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !c.AllowHTTP {
			return fmt.Errorf("announced URL %s is plain http (allow it with --insecure-options=http)", u.Redacted())
		}
	default:
		return fmt.Errorf("announced URL %s: scheme %q is not http(s)", u.Redacted(), u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("announced URL %s has no host", u.Redacted())
	}
	if !c.AllowOffDomain && !onDomain(u.Host, domain) {
		return fmt.Errorf("announced URL %s %w %s (allow it with --allow-off-domain)", u.Redacted(), ErrOffDomain, domain)
	}
	return nil
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return strings.ToLower(h)
	}
	return strings.ToLower(hostport)
}

// onDomain reports whether host is domain or a subdomain of it.
func onDomain(hostport, domain string) bool {
	h := hostOnly(hostport)
	return h == domain || strings.HasSuffix(h, "."+domain)
}

// hasPathPrefix reports whether name is prefix or below it, by whole path elements.
func hasPathPrefix(name, prefix string) bool {
	return name == prefix || strings.HasPrefix(name, strings.TrimSuffix(prefix, "/")+"/")
}

var unrendered = regexp.MustCompile(`\{[^{}]*\}`)

func templateVars(app *App) map[string]string {
	vars := map[string]string{}
	maps.Copy(vars, app.Labels)
	vars["name"] = app.Name // a label called "name" cannot override the name
	return vars
}

// render fills a URL template; it fails when a placeholder is left.
func render(tpl string, vars map[string]string, ext string) (string, bool) {
	out := unrendered.ReplaceAllStringFunc(tpl, func(m string) string {
		key := m[1 : len(m)-1]
		if key == "ext" {
			return ext
		}
		if v, ok := vars[key]; ok {
			return v
		}
		return m
	})
	return out, !unrendered.MatchString(out)
}
