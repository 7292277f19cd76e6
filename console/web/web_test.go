package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/console/auth"
	"github.com/cairn-os/cairn/console/consoletest"
	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/console/store"
	"github.com/cairn-os/cairn/update-engine/omaha"
)

// browser is a person's browser: a cookie jar, no redirects followed (the test looks at
// them), same-origin fetch metadata as a browser sends it for a form of the console's own.
type browser struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newBrowser(t *testing.T, c *consoletest.Console) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: c.URL, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values, hdr ...string) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	s, _ := io.ReadAll(res.Body)
	return res, string(s)
}

// get loads a page, following redirects, and returns its HTML.
func (b *browser) get(path string) string {
	b.t.Helper()
	for range 5 {
		res, body := b.do(http.MethodGet, path, nil)
		if res.StatusCode == http.StatusSeeOther || res.StatusCode == http.StatusFound || res.StatusCode == http.StatusMovedPermanently {
			path = res.Header.Get("Location")
			continue
		}
		if res.StatusCode != http.StatusOK {
			b.t.Fatalf("GET %s: %s\n%s", path, res.Status, body)
		}
		return body
	}
	b.t.Fatalf("GET %s: too many redirects", path)
	return ""
}

// post submits a form as the page does (with its CSRF token) and returns where it led and
// the flash message shown there.
func (b *browser) post(path string, form url.Values) (string, string) {
	b.t.Helper()
	res, body := b.do(http.MethodPost, path, form)
	if res.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("POST %s: %s, want a redirect\n%s", path, res.Status, body)
	}
	loc := res.Header.Get("Location")
	page := b.get(loc)
	return loc, flashOf(page)
}

var flashRE = regexp.MustCompile(`<div class="flash (ok|error)"[^>]*>([^<]*)</div>`)

func flashOf(page string) string {
	m := flashRE.FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return m[1] + ": " + htmlText(m[2])
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token on the page")
	}
	return m[1]
}

var tagRE = regexp.MustCompile(`<[^>]*>`)

// htmlText is a page's text as a person reads it, spaces squeezed.
func htmlText(s string) string {
	s = tagRE.ReplaceAllString(s, " ")
	r := strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&quot;", `"`)
	return strings.Join(strings.Fields(r.Replace(s)), " ")
}

func (b *browser) login(user, password string) {
	b.t.Helper()
	res, body := b.do(http.MethodPost, "/login", url.Values{"username": {user}, "password": {password}, "next": {"/"}})
	if res.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("login as %s: %s\n%s", user, res.Status, htmlText(body))
	}
}

// machine is an Omaha client of the test's.
type machine struct {
	t       *testing.T
	c       *omaha.Client
	id      string
	version string
	track   string
}

func (m *machine) send(check bool, evs ...*omaha.EventRequest) *omaha.AppResponse {
	m.t.Helper()
	app := &omaha.AppRequest{ID: consoletest.AppID, Version: m.version, Track: m.track, MachineID: m.id, MachineAlias: "host-" + m.id,
		Board: "amd64-usr", Events: evs}
	if check {
		app.UpdateCheck = &omaha.UpdateCheck{}
	}
	resp, err := m.c.Do(context.Background(), &omaha.Request{Protocol: omaha.Protocol, Apps: []*omaha.AppRequest{app}})
	if err != nil {
		m.t.Fatal(err)
	}
	a, err := resp.App(consoletest.AppID)
	if err != nil {
		m.t.Fatal(err)
	}
	return a
}

func newMachine(t *testing.T, c *consoletest.Console, id string) *machine {
	return &machine{t: t, c: &omaha.Client{URL: c.UpdateURL()}, id: id, version: "1.0.0", track: "stable"}
}

// fleet makes a console with a group "stable" (canaries 1, max 2 in flight, halting after
// 2 failures), 2.0.0 published on it, and three machines: one complete, one downloading,
// one that rolled back.
func fleet(t *testing.T) *consoletest.Console {
	c := consoletest.Start(t, consoletest.Options{})
	p := rollout.DefaultPolicy()
	p.MaxInFlight, p.HaltErrors = 3, 5
	c.Group("stable", p)
	c.Publish("stable", c.Payload("2.0.0", nil, nil))
	m1, m2, m3 := newMachine(t, c, "m1"), newMachine(t, c, "m2"), newMachine(t, c, "m3")
	for _, m := range []*machine{m1, m2, m3} {
		m.send(true)
	}
	m1.send(false, omaha.DownloadStarted(), omaha.DownloadFinished(), omaha.Installed())
	m1.version = "2.0.0"
	m1.send(false, omaha.Complete("1.0.0"))
	m2.send(false, omaha.DownloadStarted())
	m3.send(false, omaha.DownloadStarted(), omaha.DownloadFinished(), omaha.Installed())
	m3.send(false, omaha.RolledBack("2.0.0", 3, 0))
	return c
}

func groupID(t *testing.T, c *consoletest.Console) string {
	g, err := c.Store.Group(context.Background(), c.App.ID, "stable")
	if err != nil {
		t.Fatal(err)
	}
	return g.ID
}

// Every page renders for an admin and says what a person expects to read there.
func TestPages(t *testing.T) {
	c := fleet(t)
	b := newBrowser(t, c)
	if res, _ := b.do(http.MethodGet, "/", nil); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/login") {
		t.Fatalf("/ before login: %s to %q, want the login page", res.Status, res.Header.Get("Location"))
	}
	b.login("admin", "admin-password")
	app := "/apps/" + url.PathEscape(c.App.ProductID)
	gid := groupID(t, c)
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/", []string{"Fleet overview", "Machines 3", "Versions", "2.0.0", "Complete 1", "Downloading 1", "Error 1", "stable", "Rolling out"}},
		{"/apps", []string{"Applications", "Cairn", c.App.ProductID}},
		{app + "/groups", []string{"New group", "stable", "Rolling out", "max 3 in flight"}},
		{app + "/groups/" + gid, []string{"stable", "Rolling out", "On target 1 of 3", "Rolled back from 2.0.0", "host-m3", "Save policy", "Pause updates"}},
		{app + "/packages", []string{"Packages", "2.0.0", "Verified", "Upload a package", "stable"}},
		{app + "/instances", []string{"3 machines", "host-m1", "host-m2", "host-m3"}},
		{app + "/instances?status=error", []string{"1 machine match", "host-m3"}},
		{app + "/instances?q=m2", []string{"1 machine match", "host-m2"}},
		{app + "/instances/m3", []string{"host-m3", "Error", "Rolled back from 2.0.0", "error 44", "Status history", "Events", "not configured"}},
		{"/cluster", []string{"etcd is not configured", "Kubernetes is not configured"}},
		{"/activity", []string{"Activity log", "host-m3 rolled back from 2.0.0"}},
		{"/admin", []string{"Users", "admin", "API tokens", "consoletest"}},
	} {
		text := htmlText(b.get(tc.path))
		for _, w := range tc.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: no %q in\n%s", tc.path, w, text)
			}
		}
	}
	if res, body := b.do(http.MethodGet, app+"/groups/nosuch", nil); res.StatusCode != http.StatusNotFound || !strings.Contains(htmlText(body), "not found") {
		t.Errorf("a group that is not there: %s\n%s", res.Status, htmlText(body))
	}
	if res, _ := b.do(http.MethodGet, "/static/style.css", nil); res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/css; charset=utf-8" {
		t.Errorf("style.css: %s %s", res.Status, res.Header.Get("Content-Type"))
	}
}

// A viewer reads every page but sees no control that changes anything, and a form posted
// anyway is refused by the API's role check.
func TestViewerSeesNoControls(t *testing.T) {
	c := fleet(t)
	hash, _ := auth.HashPassword("viewer-password")
	if _, err := c.Store.CreateUser(context.Background(), "vera", hash, store.RoleViewer); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, c)
	b.login("vera", "viewer-password")
	app := "/apps/" + url.PathEscape(c.App.ProductID)
	gid := groupID(t, c)
	postRE := regexp.MustCompile(`<form[^>]*method="post"[^>]*action="([^"]*)"`)
	var page string
	for _, p := range []string{"/", app + "/groups", app + "/groups/" + gid, app + "/packages", app + "/instances", app + "/instances/m3", "/cluster", "/activity", "/apps"} {
		page = b.get(p)
		for _, m := range postRE.FindAllStringSubmatch(page, -1) {
			if m[1] != "/logout" {
				t.Errorf("%s: a viewer sees a form that posts to %s", p, m[1])
			}
		}
	}
	if res, _ := b.do(http.MethodGet, "/admin", nil); res.StatusCode != http.StatusForbidden {
		t.Errorf("/admin for a viewer: %s, want 403", res.Status)
	}
	page = b.get(app + "/groups/" + gid)
	_, flash := b.post(app+"/groups/"+gid+"/pause", url.Values{"csrf_token": {csrfOf(t, page)}})
	if !strings.Contains(flash, "error: forbidden") || !strings.Contains(flash, "needs the admin role") {
		t.Errorf("a viewer's pause: %q, want the API's refusal", flash)
	}
	if g, _ := c.Store.Group(context.Background(), c.App.ID, gid); g.Paused {
		t.Error("a viewer paused the group")
	}
}

// A form's change goes through the API: refused without the session's CSRF token or from
// another origin, done with it, and written to the audit log with the user.
func TestFormsGoThroughTheAPI(t *testing.T) {
	c := fleet(t)
	b := newBrowser(t, c)
	b.login("admin", "admin-password")
	app := "/apps/" + url.PathEscape(c.App.ProductID)
	gid := groupID(t, c)
	page := b.get(app + "/groups/" + gid)
	csrf := csrfOf(t, page)

	if _, flash := b.post(app+"/groups/"+gid+"/pause", url.Values{"csrf_token": {"wrong"}}); !strings.Contains(flash, "CSRF") {
		t.Errorf("pause with a wrong CSRF token: %q", flash)
	}
	res, _ := b.do(http.MethodPost, app+"/groups/"+gid+"/pause", url.Values{"csrf_token": {csrf}}, "Sec-Fetch-Site", "cross-site")
	if loc := res.Header.Get("Location"); res.StatusCode == http.StatusSeeOther {
		if f := flashOf(b.get(loc)); !strings.Contains(f, "error") {
			t.Errorf("a cross-site pause: %q, want refused", f)
		}
	}
	if g, _ := c.Store.Group(context.Background(), c.App.ID, gid); g.Paused {
		t.Fatal("paused without a valid CSRF token or from another site")
	}

	_, flash := b.post(app+"/groups/"+gid+"/pause", url.Values{"csrf_token": {csrf}, "reason": {"bad batch"}})
	if !strings.HasPrefix(flash, "ok: Paused") {
		t.Errorf("pause: %q", flash)
	}
	text := htmlText(b.get(app + "/groups/" + gid))
	for _, w := range []string{"Updates paused", "by admin: bad batch", "Resume rollout"} {
		if !strings.Contains(text, w) {
			t.Errorf("paused group page: no %q in\n%s", w, text)
		}
	}
	act, _ := c.Store.ActivityLog(context.Background(), store.ActivityFilter{Kind: "group.paused"})
	if len(act) != 1 || act[0].Actor != "admin" || !strings.Contains(act[0].Message, "bad batch") {
		t.Errorf("audit of the pause: %+v", act)
	}

	form := url.Values{"csrf_token": {csrf}, "name": {"stable"}, "track": {"stable"}, "channel": {""}, "approval": {"admin"},
		"max_in_flight": {"7"}, "canaries": {"2"}, "period": {"2h"}, "update_timeout": {"90m"}, "halt_errors": {"3"}, "halt_percent": {"25"},
		"halt_min_sample": {"8"}, "max_updates_per_period": {"40"}, "window_start": {"Thu 04:00"}, "window_length": {"2h"}, "timezone": {"Europe/Berlin"}}
	g0, _ := c.Store.Group(context.Background(), c.App.ID, gid)
	form.Set("channel", g0.ChannelID)
	if _, flash := b.post(app+"/groups/"+gid, form); !strings.HasPrefix(flash, "ok:") {
		t.Fatalf("saving the policy: %q", flash)
	}
	g, _ := c.Store.Group(context.Background(), c.App.ID, gid)
	want := rollout.Policy{Approval: rollout.ApprovalAdmin, MaxInFlight: 7, Canaries: 2, Period: rollout.Duration(2 * time.Hour),
		UpdateTimeout: rollout.Duration(90 * time.Minute), HaltErrors: 3, HaltPercent: 25, HaltMinSample: 8, MaxUpdatesPerPeriod: 40,
		WindowStart: "Thu 04:00", WindowLength: "2h", Timezone: "Europe/Berlin"}
	if g.Policy != want {
		t.Errorf("policy saved from the form:\n%+v\nwant\n%+v", g.Policy, want)
	}
	form.Set("max_in_flight", "many")
	if _, flash := b.post(app+"/groups/"+gid, form); !strings.Contains(flash, `max in flight "many": want a whole number`) {
		t.Errorf("a policy with a bad number: %q", flash)
	}
	form.Set("max_in_flight", "1")
	form.Set("window_start", "someday")
	if _, flash := b.post(app+"/groups/"+gid, form); !strings.Contains(flash, "error:") || !strings.Contains(flash, "someday") {
		t.Errorf("a policy the API refuses: %q", flash)
	}
}

// An open group page hears of a machine's check-in on its stream: the fragments that
// changed, and only those.
func TestLiveFragments(t *testing.T) {
	c := fleet(t)
	b := newBrowser(t, c)
	b.login("admin", "admin-password")
	gid := groupID(t, c)
	page := b.get("/apps/" + url.PathEscape(c.App.ProductID) + "/groups/" + gid)
	m := regexp.MustCompile(`data-live="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("the group page has no live stream")
	}
	live := strings.ReplaceAll(m[1], "&amp;", "&")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+live, nil)
	jar := b.hc.Jar
	res, err := (&http.Client{Jar: jar}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %s %s", res.Status, res.Header.Get("Content-Type"))
	}
	events := make(chan []map[string]string, 10)
	go func() {
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(nil, 4<<20)
		name := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && name == "fragments":
				var f []map[string]string
				json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &f)
				events <- f
			}
		}
		close(events)
	}()
	// The page's fragments come again when a machine checks in: those that changed (its
	// machines), not those that did not (the banner of a group that is not paused).
	newMachine(t, c, "m4").send(true)
	for {
		select {
		case f, ok := <-events:
			if !ok {
				t.Fatal("the stream ended")
			}
			ids := map[string]string{}
			for _, x := range f {
				ids[x["id"]] = x["html"]
			}
			if _, ok := ids["g-banner"]; ok {
				t.Error("g-banner sent again, though it did not change")
			}
			if strings.Contains(htmlText(ids["g-machines"]), "host-m4") {
				return
			}
		case <-ctx.Done():
			t.Fatal("no fragments with m4 after it checked in")
		}
	}
}

// Logging in sets the API's session; a wrong password says so on the login page; logging
// out ends the session.
func TestLoginLogout(t *testing.T) {
	c := consoletest.Start(t, consoletest.Options{})
	b := newBrowser(t, c)
	res, body := b.do(http.MethodPost, "/login", url.Values{"username": {"admin"}, "password": {"nope"}})
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(htmlText(body), "wrong user name or password") {
		t.Fatalf("wrong password: %s\n%s", res.Status, htmlText(body))
	}
	res, _ = b.do(http.MethodPost, "/login", url.Values{"username": {"admin"}, "password": {"admin-password"}, "next": {"https://evil.example/"}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Fatalf("login with a foreign next: %s to %q, want /", res.Status, res.Header.Get("Location"))
	}
	page := b.get("/activity")
	res, _ = b.do(http.MethodPost, "/logout", url.Values{"csrf_token": {csrfOf(t, page)}})
	if res.Header.Get("Location") != "/login" {
		t.Fatalf("logout: %s to %q", res.Status, res.Header.Get("Location"))
	}
	if res, _ := b.do(http.MethodGet, "/activity", nil); res.StatusCode != http.StatusSeeOther {
		t.Errorf("a page after logout: %s, want the login page", res.Status)
	}
}

// An admin adds a user and makes a token on the users page: the token's secret is shown
// once, on the answer itself, and works as a bearer token; a user's password must be long
// enough, as the API says.
func TestAdminForms(t *testing.T) {
	c := consoletest.Start(t, consoletest.Options{})
	b := newBrowser(t, c)
	b.login("admin", "admin-password")
	csrf := csrfOf(t, b.get("/admin"))
	if _, flash := b.post("/admin/users", url.Values{"csrf_token": {csrf}, "username": {"vera"}, "password": {"short"}, "role": {"viewer"}}); !strings.Contains(flash, "error:") {
		t.Errorf("a short password: %q", flash)
	}
	if _, flash := b.post("/admin/users", url.Values{"csrf_token": {csrf}, "username": {"vera"}, "password": {"long enough password"}, "role": {"viewer"}}); flash != "ok: Added vera (viewer)" {
		t.Errorf("adding vera: %q", flash)
	}
	res, body := b.do(http.MethodPost, "/admin/tokens", url.Values{"csrf_token": {csrf}, "name": {"ci"}, "user": {"vera"}, "role": {"viewer"}})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("creating a token: %s", res.Status)
	}
	m := regexp.MustCompile(`<code id="new-secret">([^<]+)</code>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no secret shown:\n%s", htmlText(body))
	}
	req, _ := http.NewRequest(http.MethodGet, c.URL+"/api/v1/session", nil)
	req.Header.Set("Authorization", "Bearer "+m[1])
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusOK {
		t.Errorf("the shown secret as a token: %s", r2.Status)
	}
	if strings.Contains(b.get("/admin"), m[1]) {
		t.Error("the secret is shown again")
	}
	act, _ := c.Store.ActivityLog(context.Background(), store.ActivityFilter{Kind: "token.created"})
	if len(act) != 1 || act[0].Actor != "admin" {
		t.Errorf("audit of the token: %+v", act)
	}
}

// A channel pointed at another package and back to none from the packages page, through the
// API (a package that did not verify is not offered there).
func TestChannelForm(t *testing.T) {
	c := fleet(t)
	b := newBrowser(t, c)
	b.login("admin", "admin-password")
	app := "/apps/" + url.PathEscape(c.App.ProductID)
	page := b.get(app + "/packages")
	csrf := csrfOf(t, page)
	p, err := c.Store.Package(context.Background(), c.App.ID, "2.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if _, flash := b.post(app+"/channels/stable", url.Values{"csrf_token": {csrf}, "package": {""}}); flash != "ok: Channel stable offers nothing now" {
		t.Errorf("unpublishing: %q", flash)
	}
	if ch, _ := c.Store.Channel(context.Background(), c.App.ID, "stable"); ch.PackageID != "" {
		t.Errorf("channel still on %s", ch.Version)
	}
	if _, flash := b.post(app+"/channels/stable", url.Values{"csrf_token": {csrf}, "package": {p.ID}}); flash != "ok: Channel stable now offers 2.0.0" {
		t.Errorf("publishing: %q", flash)
	}
	if ch, _ := c.Store.Channel(context.Background(), c.App.ID, "stable"); ch.Version != "2.0.0" {
		t.Errorf("channel on %q", ch.Version)
	}
	if text := htmlText(b.get(app + "/packages")); !strings.Contains(text, "Offer") || !strings.Contains(text, "Delete") {
		t.Errorf("no channel controls:\n%s", text)
	}
}
