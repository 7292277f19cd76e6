package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/e2e/fleet"
	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/update-engine/payload"
)

// What the demo prints before its update: the console's URL and a login that works, and the
// group's rollout policy, set; its pages show the fleet's etcd. No VM: the fleet's services
// alone, with a release key of the test's own.
func TestConsoleLogin(t *testing.T) {
	testenv.SkipShort(t, "starts the fleet's etcd and console")
	dir := t.TempDir()
	priv, _, err := payload.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "release.key.pem")
	if err := os.WriteFile(key, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f, err := fleet.StartFleet(ctx, filepath.Join(dir, "fleet"), &fleet.Images{Key: key, Release: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	if err := consoleLogin(ctx, f, &out); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`Open (http://127\.0\.0\.1:\d+/) — user admin, password (\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no URL and login in:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "every host at once, halt after 1 failure") {
		t.Errorf("the policy is not said:\n%s", out.String())
	}
	g, err := f.Group(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g.Policy != DemoPolicy {
		t.Errorf("group policy %+v, want %+v", g.Policy, DemoPolicy)
	}

	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	res, err := hc.PostForm(m[1]+"login", url.Values{"username": {"admin"}, "password": {m[2]}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(page), "Fleet overview") {
		t.Fatalf("logging in with the printed password: %s\n%s", res.Status, page)
	}
	u, err := f.GroupURL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ url, want string }{
		{u, "halts at 1"},
		{m[1] + "cluster", f.Etcd.Endpoint},
	} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			res, err := hc.Get(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK && strings.Contains(string(b), tc.want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s, no %q in\n%s", tc.url, res.Status, tc.want, b)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
