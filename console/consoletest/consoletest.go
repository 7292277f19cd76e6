// Package consoletest starts a console for a test: in-process on loopback, with its own
// SQLite database (or the PostgreSQL DSN given) and payload directory in temporary
// directories, a signing key whose public half it trusts, an admin and an API token; and
// builds signed payloads to publish on it. It is for tests only.
package consoletest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/console/auth"
	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/console/server"
	"github.com/cairn-os/cairn/console/store"
	"github.com/cairn-os/cairn/console/updates"
	"github.com/cairn-os/cairn/update-engine/payload"
	"github.com/cairn-os/cairn/update-engine/updateconf"
)

// AppID is the application the console is set up with: Cairn's default.
var AppID = updateconf.Defaults["APP_ID"]

// Options change what Start makes.
type Options struct {
	// DSN of the database (a fresh SQLite file when empty).
	DSN string
	// Now is the console's clock.
	Now func() time.Time
	// Log receives the console's log (discarded when nil).
	Log *slog.Logger
	// Config, when set, changes the server's config before it starts (etcd, intervals).
	Config func(*server.Config)
}

// Console is a running console.
type Console struct {
	t      testing.TB
	URL    string // http://127.0.0.1:port, no trailing slash
	Server *server.Server
	Store  *store.Store
	// Key signs payloads the console trusts; PublicKeyFile holds its public half (PEM), for
	// an engine's update.conf.
	Key           ed25519.PrivateKey
	PublicKeyFile string
	// App is the application AppID; Token is an admin API token.
	App   *store.App
	Token string
	http  *http.Client
}

// Start starts a console that serves until the test ends.
func Start(t testing.TB, o Options) *Console {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	dsn := o.DSN
	if dsn == "" {
		dsn = filepath.Join(dir, "console.db")
	}
	st, err := store.Open(ctx, dsn, store.Options{Sync: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if o.Now != nil {
		st.Now = o.Now
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	privPEM, pubPEM, err := payload.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	key, _ := payload.ParsePrivateKey(privPEM)
	keys, _ := payload.ParsePublicKeys(pubPEM)
	c := &Console{t: t, Store: st, Key: key, PublicKeyFile: filepath.Join(dir, "update-key.pem"), http: &http.Client{Timeout: time.Minute}}
	if err := os.WriteFile(c.PublicKeyFile, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Store: st, PayloadDir: filepath.Join(dir, "payloads"), Keys: keys, Log: o.Log, Now: o.Now}
	if o.Config != nil {
		o.Config(&cfg)
	}
	c.Server = server.New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.URL = "http://" + ln.Addr().String()
	hs := &http.Server{Handler: c.Server.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { hs.Close() })
	if c.App, err = c.Server.EnsureApp(ctx, AppID, "Cairn"); err != nil {
		t.Fatal(err)
	}
	hash, err := auth.HashPassword("admin-password")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := st.CreateUser(ctx, "admin", hash, store.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	c.Token = auth.NewToken()
	if _, err := st.CreateToken(ctx, admin.ID, "consoletest", store.RoleAdmin, auth.Hash(c.Token), time.Time{}); err != nil {
		t.Fatal(err)
	}
	return c
}

// UpdateURL is the console's Omaha endpoint.
func (c *Console) UpdateURL() string { return c.URL + updates.UpdatePath }

// Group makes the group of track (with a channel of its name) under policy.
func (c *Console) Group(track string, policy rollout.Policy) *store.Group {
	c.t.Helper()
	ctx := context.Background()
	g, err := c.Server.EnsureGroup(ctx, c.App.ID, track)
	if err != nil {
		c.t.Fatal(err)
	}
	if g, err = c.Store.UpdateGroup(ctx, c.App.ID, g.ID, store.GroupSpec{Name: g.Name, Track: g.Track, ChannelID: g.ChannelID, Policy: policy}); err != nil {
		c.t.Fatal(err)
	}
	return g
}

// Payload builds a payload of version for board amd64-usr signed with key (the console's
// when nil), with a /usr of usr (a few KiB of filler when nil), into a temporary file.
func (c *Console) Payload(version string, key ed25519.PrivateKey, usr []byte) string {
	c.t.Helper()
	if key == nil {
		key = c.Key
	}
	return BuildPayload(c.t, version, "amd64-usr", key, usr)
}

// BuildPayload builds a signed payload into a temporary file and returns its path.
func BuildPayload(t testing.TB, version, board string, key ed25519.PrivateKey, usr []byte) string {
	t.Helper()
	if usr == nil {
		usr = bytes.Repeat([]byte("cairn "+version+" /usr "), 4096)
	}
	src := func(name string, b []byte) payload.Source {
		return payload.Source{Name: name, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
	}
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "cairn-"+version+".cairn"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := payload.Build(f, payload.BuildOptions{Version: version, Board: board, USR: src(payload.PartUSR, usr),
		UKI: src(payload.PartUKI, []byte("UKI "+version)), TempDir: dir}, key); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// Publish imports the payload file at path and publishes it on the channel of track
// (made with its group if missing), and returns the package.
func (c *Console) Publish(track, path string) *store.Package {
	c.t.Helper()
	ctx := context.Background()
	if _, err := c.Server.EnsureGroup(ctx, c.App.ID, track); err != nil {
		c.t.Fatal(err)
	}
	p, err := c.Server.ImportFile(ctx, c.App.ID, path, "consoletest")
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.Server.Publish(ctx, c.App.ID, track, p, "consoletest"); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// Unpublish leaves track's channel without a package: its machines are offered nothing.
func (c *Console) Unpublish(track string) {
	c.t.Helper()
	ctx := context.Background()
	ch, err := c.Store.Channel(ctx, c.App.ID, track)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.Store.SetChannelPackage(ctx, c.App.ID, ch.ID, ""); err != nil {
		c.t.Fatal(err)
	}
}

// Events are the events the console recorded, oldest first.
func (c *Console) Events() []*store.Event {
	c.t.Helper()
	evs, err := c.Store.Events(context.Background(), store.EventFilter{Oldest: true, Limit: 10000})
	if err != nil {
		c.t.Fatal(err)
	}
	return evs
}

// Instance is the machine's instance of the application.
func (c *Console) Instance(machine string) *store.Instance {
	c.t.Helper()
	in, err := c.Store.Instance(context.Background(), c.App.ID, machine)
	if err != nil {
		c.t.Fatal(err)
	}
	return in
}

// API calls the JSON API with the admin token: method, path under /api/v1, a body to send
// as JSON (nil for none); it decodes the answer into out (unless nil) and returns the HTTP
// status. An error body is returned as the error.
func (c *Console) API(method, path string, body, out any) (int, error) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.URL+"/api/v1"+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		return res.StatusCode, fmt.Errorf("%s %s: %s: %s", method, path, res.Status, strings.TrimSpace(string(b)))
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return res.StatusCode, nil
}
