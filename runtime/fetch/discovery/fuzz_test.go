package discovery

import (
	"bytes"
	"testing"
)

// FuzzParseMeta feeds hostile discovery pages to the meta parser and the template renderer:
// no panic, the tag limit holds, and every URL that passes the checks stays on the domain.
func FuzzParseMeta(f *testing.F) {
	f.Add([]byte(page))
	f.Add([]byte(`<meta name="ac-discovery" content="example.com https://example.com/{name}.{ext}">`))
	app := &App{Name: "example.com/app", Labels: map[string]string{"version": "1", "os": "linux", "arch": "amd64"}}
	c := &Client{}
	f.Fuzz(func(t *testing.T, data []byte) {
		metas, err := ParseMeta(bytes.NewReader(data), 4096)
		if err != nil {
			return
		}
		if len(metas) > MaxMetaTags {
			t.Fatalf("%d tags", len(metas))
		}
		vars := templateVars(app)
		for _, m := range metas {
			u, ok := render(m.Template, vars, "aci")
			if !ok {
				continue
			}
			if err := c.checkURL(u, "example.com"); err == nil && !onDomainURL(u) {
				t.Fatalf("accepted off-domain URL %q", u)
			}
		}
	})
}
