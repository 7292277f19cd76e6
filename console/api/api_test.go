package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/console/api"
	"github.com/cairn-os/cairn/console/auth"
	"github.com/cairn-os/cairn/console/consoletest"
	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/console/store"
	"github.com/cairn-os/cairn/update-engine/payload"
)

// client is one caller: a browser with a cookie jar (and the session's CSRF token), or a
// script with a token.
type client struct {
	t     *testing.T
	base  string
	hc    *http.Client
	csrf  string
	token string
}

func browser(t *testing.T, c *consoletest.Console) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: c.URL + api.Prefix, hc: &http.Client{Jar: jar}}
}

func script(t *testing.T, c *consoletest.Console, token string) *client {
	return &client{t: t, base: c.URL + api.Prefix, hc: &http.Client{}, token: token}
}

// do sends a request; body is JSON unless it is an io.Reader; it returns the status and
// the body.
func (cl *client) do(method, path string, body any, hdr ...string) (int, []byte) {
	cl.t.Helper()
	var r io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case io.Reader:
		r = b
	default:
		j, _ := json.Marshal(b)
		r, ctype = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, cl.base+path, r)
	if err != nil {
		cl.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if cl.token != "" {
		req.Header.Set("Authorization", "Bearer "+cl.token)
	}
	if cl.csrf != "" && method != "GET" {
		req.Header.Set("X-CSRF-Token", cl.csrf)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := cl.hc.Do(req)
	if err != nil {
		cl.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func (cl *client) want(status int, method, path string, body any, hdr ...string) []byte {
	cl.t.Helper()
	got, b := cl.do(method, path, body, hdr...)
	if got != status {
		cl.t.Fatalf("%s %s: %d %s, want %d", method, path, got, b, status)
	}
	return b
}

func (cl *client) login(user, pw string) {
	cl.t.Helper()
	var info api.SessionInfo
	if err := json.Unmarshal(cl.want(200, "POST", "/login", api.Login{Username: user, Password: pw}), &info); err != nil || info.CSRFToken == "" {
		cl.t.Fatalf("login: %+v %v", info, err)
	}
	cl.csrf = info.CSRFToken
}

func addUser(t *testing.T, c *consoletest.Console, name, role string) {
	t.Helper()
	hash, _ := auth.HashPassword(name + "-password")
	if _, err := c.Store.CreateUser(context.Background(), name, hash, role); err != nil {
		t.Fatal(err)
	}
}

func TestAuthentication(t *testing.T) {
	c := consoletest.Start(t, consoletest.Options{})
	addUser(t, c, "vera", store.RoleViewer)
	anon := browser(t, c)
	anon.want(401, "GET", "/apps", nil)
	anon.want(401, "POST", "/login", api.Login{Username: "admin", Password: "wrong-password"})
	anon.want(401, "POST", "/login", api.Login{Username: "nobody", Password: "admin-password"})
	anon.want(400, "POST", "/login", strings.NewReader("{"))
	script(t, c, "cairn_not-a-token").want(401, "GET", "/apps", nil)
	script(t, c, "").want(401, "GET", "/apps", nil, "Authorization", "Basic YWRtaW46eA==")

	// A browser: the session cookie reads; a change needs the CSRF token.
	b := browser(t, c)
	b.login("admin", "admin-password")
	b.want(200, "GET", "/apps", nil)
	csrf := b.csrf
	b.csrf = ""
	b.want(403, "POST", "/apps", api.AppSpec{Name: "x", ProductID: "x"})
	b.want(403, "POST", "/apps", api.AppSpec{Name: "x", ProductID: "x"}, "X-CSRF-Token", "guess")
	b.csrf = csrf
	b.want(201, "POST", "/apps", api.AppSpec{Name: "Other", ProductID: "org.example.other"})
	// A form carries it as a field.
	form := strings.NewReader("csrf_token=" + csrf)
	b.want(404, "POST", "/apps/"+consoletest.AppID+"/groups/none/pause", form, "Content-Type", "application/x-www-form-urlencoded") // past the CSRF check: no such group
	// Cross-origin browser requests are refused, token or not.
	b.want(403, "POST", "/apps", api.AppSpec{Name: "y", ProductID: "y"}, "Sec-Fetch-Site", "cross-site")
	var info api.SessionInfo
	json.Unmarshal(b.want(200, "GET", "/session", nil), &info)
	if info.User.Username != "admin" || info.Role != store.RoleAdmin || info.CSRFToken != csrf {
		t.Fatalf("session %+v", info)
	}
	b.want(204, "POST", "/logout", nil)
	b.want(401, "GET", "/apps", nil)

	// A viewer reads and changes nothing; users and tokens are for admins.
	v := browser(t, c)
	v.login("vera", "vera-password")
	v.want(200, "GET", "/apps/"+consoletest.AppID, nil)
	v.want(403, "POST", "/apps", api.AppSpec{Name: "z", ProductID: "z"})
	v.want(403, "GET", "/users", nil)

	// Tokens: a script's; a viewer token of an admin reads only; revoked, it is refused.
	adm := script(t, c, c.Token)
	var nt api.NewTokenResult
	json.Unmarshal(adm.want(201, "POST", "/tokens", api.TokenBody{Name: "dashboards", Role: store.RoleViewer}), &nt)
	if !strings.HasPrefix(nt.Secret, auth.TokenPrefix) || nt.Token.Role != store.RoleViewer {
		t.Fatalf("token %+v", nt)
	}
	ro := script(t, c, nt.Secret)
	ro.want(200, "GET", "/apps", nil)
	ro.want(403, "DELETE", "/apps/"+consoletest.AppID, nil)
	adm.want(400, "POST", "/tokens", api.TokenBody{Name: "x", Role: store.RoleAdmin, User: "vera"})
	adm.want(204, "DELETE", "/tokens/"+nt.Token.ID, nil)
	ro.want(401, "GET", "/apps", nil)

	// The last admin stays.
	adm.want(409, "PUT", "/users/admin", api.UserBody{Role: store.RoleViewer})
	adm.want(409, "DELETE", "/users/admin", nil)
	adm.want(400, "POST", "/users", api.UserBody{Username: "short", Password: "123", Role: store.RoleAdmin})
	adm.want(201, "POST", "/users", api.UserBody{Username: "olga", Password: "olga-password", Role: store.RoleAdmin})
	adm.want(204, "DELETE", "/users/vera", nil)
	v.want(401, "GET", "/apps", nil)

	// Every change is in the activity log with who made it.
	var log []*store.Activity
	json.Unmarshal(adm.want(200, "GET", "/activity?limit=100", nil), &log)
	actors := map[string]bool{}
	for _, a := range log {
		actors[a.Actor+" "+a.Kind] = true
	}
	for _, want := range []string{"admin app.created", "admin (token consoletest) token.created", "admin (token consoletest) user.created",
		"admin (token consoletest) user.deleted", "admin (token consoletest) token.revoked"} {
		if !actors[want] {
			t.Errorf("no %q in the activity log: %v", want, actors)
		}
	}
}

func TestPackagesGroupsInstances(t *testing.T) {
	c := consoletest.Start(t, consoletest.Options{})
	adm := script(t, c, c.Token)
	app := "/apps/" + consoletest.AppID
	adm.want(201, "POST", app+"/channels", api.ChannelSpec{Name: "stable"})
	var g store.Group
	json.Unmarshal(adm.want(201, "POST", app+"/groups", map[string]any{"name": "Production", "track": "stable", "channel": "stable",
		"policy": map[string]any{"max_in_flight": 50, "canaries": 2, "halt_percent": 10, "halt_min_sample": 20, "window_start": "Thu 04:00", "window_length": "2h"}}), &g)
	if g.Policy.MaxInFlight != 50 || g.Policy.UpdateTimeout != rollout.DefaultPolicy().UpdateTimeout || g.Channel != "stable" || g.Track != "stable" {
		t.Fatalf("group %+v", g)
	}
	// Hostile or mistaken bodies are refused with what was wrong.
	for body, want := range map[string]string{
		`{"name": "x", "polcy": {}}`:                                                         "unknown field",
		`{"name": "x", "policy": {"halt_percent": 300}}`:                                     "halt_percent",
		`{"name": "x", "policy": {"update_timeout": "forever"}}`:                             "duration",
		`{"name": "x", "policy": {"window_start": "Caturday 04:00", "window_length": "1h"}}`: "unknown day",
		`{"name": "x"} {"name": "y"}`:                                                        "more than one value",
		`[]`:                                                                                 "JSON body",
		`{"name": "x", "channel": "nope"}`:                                                   "not found",
	} {
		status, b := adm.do("POST", app+"/groups", strings.NewReader(body), "Content-Type", "application/json")
		if status < 400 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d %s, want an error naming %q", body, status, b, want)
		}
	}
	// A PUT changes what it names and keeps the rest.
	json.Unmarshal(adm.want(200, "PUT", app+"/groups/stable", map[string]any{"policy": map[string]any{"max_in_flight": 5}}), &g)
	if g.Policy.MaxInFlight != 5 || g.Policy.Canaries != 2 || g.Name != "Production" {
		t.Fatalf("after PUT %+v", g)
	}

	// Upload: raw body, signed with the console's key: verified, published at once.
	var up api.UploadResult
	good, _ := os.ReadFile(c.Payload("2.0.0", nil, nil))
	json.Unmarshal(adm.want(201, "POST", app+"/packages?publish=stable&release_notes=fixes", bytes.NewReader(good), "Content-Type", "application/octet-stream"), &up)
	if !up.Publishable || up.PublishedTo != "stable" || up.Package.Version != "2.0.0" || up.Package.ReleaseNotes != "fixes" || up.Package.CreatedBy != "admin" {
		t.Fatalf("upload %+v", up)
	}
	// Signed with another key: stored as unverified, and refused for publishing with the reason.
	otherPEM, _, _ := payload.GenerateKey()
	other, _ := payload.ParsePrivateKey(otherPEM)
	bad, _ := os.ReadFile(c.Payload("2.0.1", other, nil))
	json.Unmarshal(adm.want(201, "POST", app+"/packages", bytes.NewReader(bad), "Content-Type", "application/octet-stream"), &up)
	if up.Publishable || up.Package.Signature != store.SignatureUnverified || !strings.Contains(up.Package.SignatureError, "none of the console's keys") {
		t.Fatalf("unverified upload %+v", up)
	}
	status, b := adm.do("POST", app+"/packages/2.0.1/publish", api.PublishBody{Channel: "stable"})
	if status != 409 || !strings.Contains(string(b), "not verified") || !strings.Contains(string(b), "-keys") {
		t.Fatalf("publishing an unverified package: %d %s", status, b)
	}
	status, b = adm.do("POST", app+"/packages?publish=stable", bytes.NewReader(bad), "Content-Type", "application/octet-stream")
	if status != 409 || !strings.Contains(string(b), "stored") || !strings.Contains(string(b), "not published") {
		t.Fatalf("upload and publish of an unverified package: %d %s", status, b)
	}
	// Not a payload at all: refused, nothing kept.
	status, b = adm.do("POST", app+"/packages", strings.NewReader("#!/bin/sh\nrm -rf /\n"), "Content-Type", "application/octet-stream")
	if status != 400 || !strings.Contains(string(b), "not a Cairn payload") {
		t.Fatalf("garbage upload: %d %s", status, b)
	}
	// A browser's multipart form, its CSRF token as the first field.
	br := browser(t, c)
	br.login("admin", "admin-password")
	third, _ := os.ReadFile(c.Payload("2.0.2", nil, nil))
	mp := func(csrf string) (*bytes.Buffer, string) {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		if csrf != "" {
			w.WriteField("csrf_token", csrf)
		}
		w.WriteField("release_notes", "from the form")
		fw, _ := w.CreateFormFile("file", `C:\builds\cairn-2.0.2.cairn`)
		fw.Write(third)
		w.Close()
		return &buf, w.FormDataContentType()
	}
	token := br.csrf
	br.csrf = ""
	body, ctype := mp("")
	br.want(403, "POST", app+"/packages", body, "Content-Type", ctype)
	body, ctype = mp(token)
	json.Unmarshal(br.want(201, "POST", app+"/packages", body, "Content-Type", ctype), &up)
	if up.Package.Filename != "cairn-2.0.2.cairn" || up.Package.ReleaseNotes != "from the form" || !up.Publishable {
		t.Fatalf("form upload %+v", up)
	}
	br.csrf = token
	var pkgs []*store.Package
	json.Unmarshal(adm.want(200, "GET", app+"/packages", nil), &pkgs)
	if len(pkgs) != 3 {
		t.Fatalf("packages %+v", pkgs)
	}
	adm.want(409, "DELETE", app+"/packages/2.0.0", nil)
	adm.want(204, "DELETE", app+"/packages/2.0.1", nil)

	// Pause and resume, by hand.
	json.Unmarshal(adm.want(200, "POST", app+"/groups/stable/pause", api.PauseBody{Reason: "change freeze"}), &g)
	if !g.Paused || g.PausedReason != "change freeze" {
		t.Fatalf("paused %+v", g)
	}
	json.Unmarshal(adm.want(200, "POST", app+"/groups/stable/resume", nil), &g)
	if g.Paused {
		t.Fatalf("resumed %+v", g)
	}

	// Instances: a page, one with its events, the summary.
	for _, id := range []string{"a", "b", "c"} {
		c.Store.Write(context.Background(), func(tx *store.Tx) error {
			_, err := tx.CheckIn(context.Background(), store.CheckIn{AppID: c.App.ID, MachineID: id, GroupID: g.ID, Track: "stable", Version: "1.0.0", Check: true})
			return err
		})
	}
	var page api.InstancePage
	json.Unmarshal(adm.want(200, "GET", app+"/instances?group=stable&per_page=2&page=2&sort=id", nil), &page)
	if page.Total != 3 || len(page.Instances) != 1 || page.Instances[0].ID != "c" {
		t.Fatalf("page %+v", page)
	}
	adm.want(400, "GET", app+"/instances?page=x", nil)
	adm.want(400, "GET", app+"/instances?sort=password", nil)
	var detail api.InstanceDetail
	json.Unmarshal(adm.want(200, "GET", app+"/instances/a", nil), &detail)
	if detail.Instance.ID != "a" || detail.Events == nil || detail.History == nil {
		t.Fatalf("detail %+v", detail)
	}
	adm.want(404, "GET", app+"/instances/zz", nil)
	var sum store.Summary
	json.Unmarshal(adm.want(200, "GET", app+"/summary", nil), &sum)
	if sum.Instances != 3 || len(sum.Groups) != 1 || sum.Groups[0].Version != "2.0.0" {
		t.Fatalf("summary %+v", sum)
	}
	// /metrics has the rollout gauges.
	res, err := http.Get(c.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{`cairn_console_instances{app="`, `cairn_console_group_paused{`, `cairn_console_group_updates_in_flight{`} {
		if !bytes.Contains(mb, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
