package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/runtime/fetch/fetchtest"
)

func TestParseApp(t *testing.T) {
	a, err := ParseApp("example.com/app:v1,channel=beta")
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "example.com/app" || a.Labels["version"] != "v1" || a.Labels["channel"] != "beta" || a.Labels["os"] == "" || a.Labels["arch"] == "" {
		t.Fatalf("app %+v", a)
	}
	b, _ := ParseApp("example.com/app")
	if b.Labels["version"] != "latest" {
		t.Fatalf("default version %q", b.Labels["version"])
	}
	for _, bad := range []string{"", "Example.com/app", "example.com/app:v1:v2", "example.com/../etc"} {
		if _, err := ParseApp(bad); err == nil {
			t.Errorf("ParseApp(%q) accepted", bad)
		}
	}
}

func TestParseMeta(t *testing.T) {
	page := `<html><head>
<meta name="ac-discovery" content="example.com https://example.com/{name}-{version}-{os}-{arch}.{ext}">
<meta name="ac-discovery-pubkeys" content="example.com https://example.com/pubkeys.gpg">
<META NAME="ac-discovery" CONTENT="example.com/other   https://example.com/other.{ext}"/>
<meta name="description" content="not for us">
<meta name="ac-discovery" content="only-one-field">
</head><body>hi</body></html>`
	got, err := ParseMeta(strings.NewReader(page), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []Meta{
		{KindDiscovery, "example.com", "https://example.com/{name}-{version}-{os}-{arch}.{ext}"},
		{KindPubKeys, "example.com", "https://example.com/pubkeys.gpg"},
		{KindDiscovery, "example.com/other", "https://example.com/other.{ext}"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

func TestParseMetaHostile(t *testing.T) {
	big := "<html>" + strings.Repeat("<p>filler</p>", 30000) + `<meta name="ac-discovery" content="a b">`
	if _, err := ParseMeta(strings.NewReader(big), 0); !errors.Is(err, ErrPageTooBig) {
		t.Fatalf("big page: err %v", err)
	}
	longTag := `<meta name="ac-discovery" content="` + strings.Repeat("x", 5000)
	if _, err := ParseMeta(strings.NewReader(longTag), 1024); !errors.Is(err, ErrPageTooBig) {
		t.Fatalf("long token: err %v", err)
	}
	many := strings.Repeat(`<meta name="ac-discovery" content="example.com https://example.com/{ext}">`, 1000)
	m, err := ParseMeta(strings.NewReader(many), 0)
	if err != nil || len(m) != MaxMetaTags {
		t.Fatalf("many tags: %d tags, err %v", len(m), err)
	}
	garbage := "\x00\xff\xfe<<<meta name=ac-discovery>>>\x89PNG"
	if m, err := ParseMeta(strings.NewReader(garbage), 0); err != nil || len(m) != 0 {
		t.Fatalf("garbage: %v, %v", m, err)
	}
}

const page = `<meta name="ac-discovery" content="example.com/app https://example.com/images/{name}-{version}-{os}-{arch}.{ext}">
<meta name="ac-discovery-pubkeys" content="example.com https://example.com/pubkeys.gpg">`

func TestDiscoverWalksParents(t *testing.T) {
	srv := fetchtest.New(t)
	var hits []string
	srv.Mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		hits = append(hits, r.URL.Path)
		if r.URL.Path == "/app" && r.URL.RawQuery == "ac-discovery=1" {
			fmt.Fprint(w, page)
			return
		}
		http.NotFound(w, r)
	})
	c := &Client{HTTP: srv.Client()}
	app := &App{Name: "example.com/app/sub", Labels: map[string]string{"version": "v1", "os": "linux", "arch": "amd64"}}
	// example.com/app's tag covers example.com/app/sub by path prefix.
	res, err := c.Discover(context.Background(), app)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Endpoints) != 1 || res.Endpoints[0].ACI != "https://example.com/images/example.com/app/sub-v1-linux-amd64.aci" ||
		res.Endpoints[0].ASC != "https://example.com/images/example.com/app/sub-v1-linux-amd64.aci.asc" {
		t.Fatalf("endpoints %+v", res.Endpoints)
	}
	if strings.Join(hits, " ") != "/app/sub /app" {
		t.Fatalf("walked %v", hits)
	}
	if len(res.PublicKeys) != 1 {
		t.Fatalf("keys %v", res.PublicKeys)
	}
	hits = nil
	keys, err := c.DiscoverPublicKeys(context.Background(), &App{Name: "example.com/app", Labels: app.Labels})
	if err != nil || keys.PublicKeys[0] != "https://example.com/pubkeys.gpg" {
		t.Fatalf("keys %+v err %v", keys, err)
	}
}

func TestDiscoverRefuses(t *testing.T) {
	app := &App{Name: "example.com/app", Labels: map[string]string{"version": "v1", "os": "linux", "arch": "amd64"}}
	for _, tc := range []struct {
		name      string
		body      string
		allowHTTP bool
		want      string
		is        error
	}{
		{"off domain", `<meta name="ac-discovery" content="example.com https://evil.org/{name}.{ext}">`, false, "evil.org", ErrOffDomain},
		{"off domain look-alike", `<meta name="ac-discovery" content="example.com https://notexample.com/x.{ext}">`, false, "notexample.com", ErrOffDomain},
		{"off domain keys", `<meta name="ac-discovery-pubkeys" content="example.com https://evil.org/k.gpg">
<meta name="ac-discovery" content="example.com https://example.com/x.{ext}">`, false, "evil.org", ErrOffDomain},
		{"plain http URL", `<meta name="ac-discovery" content="example.com http://example.com/x.{ext}">`, false, "--insecure-options=http", nil},
		{"file URL", `<meta name="ac-discovery" content="example.com file:///etc/passwd{ext}">`, true, "not http(s)", nil},
		{"too big", strings.Repeat("A", DefaultMaxPageSize+10), false, "too big", ErrPageTooBig},
		{"garbage", "\x00\x01\x02 definitely not html", false, "no discovery information", ErrNotFound},
		{"prefix for another app", `<meta name="ac-discovery" content="example.com/application https://example.com/x.{ext}">`, false, "no matching meta tags", ErrNotFound},
		{"unrendered label", `<meta name="ac-discovery" content="example.com https://example.com/{channel}.{ext}">`, false, "no discovery information", ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := fetchtest.New(t)
			srv.Mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, tc.body) })
			c := &Client{HTTP: srv.Client(), AllowHTTP: tc.allowHTTP}
			_, err := c.Discover(context.Background(), app)
			if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("err %v; want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestDiscoverOptOut(t *testing.T) {
	srv := fetchtest.New(t)
	srv.Handle("/app", []byte(`<meta name="ac-discovery" content="example.com https://mirror.example.org/{name}.{ext}">`))
	c := &Client{HTTP: srv.Client(), AllowOffDomain: true}
	res, err := c.Discover(context.Background(), &App{Name: "example.com/app", Labels: map[string]string{}})
	if err != nil || res.Endpoints[0].ACI != "https://mirror.example.org/example.com/app.aci" {
		t.Fatalf("res %+v err %v", res, err)
	}
}

func TestDiscoverHTTPFallback(t *testing.T) {
	srv := fetchtest.New(t)
	srv.Mux.HandleFunc("/app", func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, `<meta name="ac-discovery" content="example.com http://example.com/{name}.{ext}">`)
	})
	app := &App{Name: "example.com/app", Labels: map[string]string{}}
	if _, err := (&Client{HTTP: srv.Client()}).Discover(context.Background(), app); !errors.Is(err, ErrNotFound) {
		t.Fatalf("https only: err %v", err)
	}
	res, err := (&Client{HTTP: srv.Client(), AllowHTTP: true}).Discover(context.Background(), app)
	if err != nil || !strings.HasPrefix(res.Page, "http://") {
		t.Fatalf("with http: %+v %v", res, err)
	}
}

func TestDiscoverTLSFailure(t *testing.T) {
	srv := fetchtest.New(t)
	srv.Handle("/app", []byte(page))
	_, err := (&Client{HTTP: srv.UntrustingClient()}).Discover(context.Background(), &App{Name: "example.com/app", Labels: map[string]string{}})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err %v", err)
	}
}

func onDomainURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https") && onDomain(u.Host, "example.com")
}
