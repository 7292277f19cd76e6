package omahaserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/payload"
)

const appID = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}"

func writePayload(t *testing.T, dir, group, version string) []byte {
	t.Helper()
	privPEM, _, _ := payload.GenerateKey()
	priv, _ := payload.ParsePrivateKey(privPEM)
	src := func(name string, b []byte) payload.Source {
		return payload.Source{Name: name, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
	}
	var buf bytes.Buffer
	if _, err := payload.Build(&buf, payload.BuildOptions{Version: version, Board: "amd64-usr",
		USR: src("usr", bytes.Repeat([]byte{7}, 4096)), UKI: src("uki", []byte("uki")), TempDir: t.TempDir()}, priv); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, group), 0o755)
	if err := os.WriteFile(filepath.Join(dir, group, version+".cairn"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func check(t *testing.T, c *omaha.Client, id, version, track string, events ...*omaha.EventRequest) *omaha.AppResponse {
	t.Helper()
	app := &omaha.AppRequest{ID: id, Version: version, Track: track, MachineID: "m1"}
	if len(events) == 0 {
		app.UpdateCheck = &omaha.UpdateCheck{}
	}
	app.Events = events
	resp, err := c.Do(context.Background(), &omaha.Request{Protocol: omaha.Protocol, Apps: []*omaha.AppRequest{app}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Apps[0]
}

func TestServer(t *testing.T) {
	dir := t.TempDir()
	writePayload(t, dir, "stable", "1.0.0")
	newest := writePayload(t, dir, "stable", "1.10.0")
	writePayload(t, dir, "stable", "1.9.0")
	writePayload(t, dir, "beta", "2.0.0")
	srv := &Server{Dir: dir, AppID: appID, EventLog: filepath.Join(dir, "events.json")}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	c := &omaha.Client{URL: hs.URL + UpdatePath, HTTP: hs.Client()}

	u, err := check(t, c, appID, "1.0.0", "stable").FindUpdate()
	if err != nil || u == nil || u.Version != "1.10.0" {
		t.Fatalf("update check from 1.0.0: %+v %v", u, err)
	}
	sum := sha256.Sum256(newest)
	if u.SHA256 != hex.EncodeToString(sum[:]) || u.Size != int64(len(newest)) {
		t.Fatalf("package %+v", u)
	}
	if u, err := check(t, c, appID, "1.10.0", "stable").FindUpdate(); u != nil || err != nil {
		t.Fatalf("up-to-date machine offered %+v %v", u, err)
	}
	if u, _ := check(t, c, appID, "1.10.0", "no-such-group").FindUpdate(); u != nil {
		t.Fatal("unknown group offered an update")
	}
	if a := check(t, c, "{other}", "1", "stable"); a.Status != omaha.StatusUnknownApplication {
		t.Fatalf("unknown app: %s", a.Status)
	}

	// Download it, and the second half again with Range.
	res, err := hs.Client().Get(u.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !bytes.Equal(body, newest) {
		t.Fatal("downloaded payload differs")
	}
	req, _ := http.NewRequest("GET", u.URL, nil)
	req.Header.Set("Range", "bytes=100-")
	res, err = hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusPartialContent || !bytes.Equal(body, newest[100:]) {
		t.Fatalf("range: %d, %d bytes", res.StatusCode, len(body))
	}
	for _, bad := range []string{"/payloads/../../etc/passwd", "/payloads/stable/../beta/2.0.0.cairn.x", "/payloads/stable/events.json"} {
		res, err := hs.Client().Get(hs.URL + bad)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				t.Errorf("%s served", bad)
			}
		}
	}

	// Events are acknowledged, kept, and logged.
	a := check(t, c, appID, "1.0.0", "stable", &omaha.EventRequest{Type: omaha.EventTypeUpdateDownloadStarted, Result: omaha.EventResultSuccess},
		&omaha.EventRequest{Type: omaha.EventTypeUpdateComplete, Result: omaha.EventResultError, ErrorCode: omaha.ErrorCodeRollback, PreviousVersion: "1.10.0"})
	if len(a.Events) != 2 || a.Events[0].Status != "ok" {
		t.Fatalf("events not acknowledged: %+v", a.Events)
	}
	evs := srv.Events()
	if len(evs) != 2 || evs[1].ErrorCode != omaha.ErrorCodeRollback || evs[1].PreviousVersion != "1.10.0" || evs[0].MachineID != "m1" {
		t.Fatalf("events %+v", evs)
	}
	logged, _ := os.ReadFile(srv.EventLog)
	if n := bytes.Count(logged, []byte("\n")); n != 2 {
		t.Fatalf("event log has %d lines", n)
	}
	res, _ = hs.Client().Get(hs.URL + EventsPath)
	var got []Event
	json.NewDecoder(res.Body).Decode(&got)
	res.Body.Close()
	if len(got) != 2 {
		t.Fatalf("GET /events: %+v", got)
	}
	// m1 rolled back from 1.10.0: its scheduled checks are offered the next newest instead;
	// other machines are not affected, and a restarted server with the same log remembers.
	offered := func(srv *Server, machine string, source ...string) string {
		t.Helper()
		hs := httptest.NewServer(srv.Handler())
		defer hs.Close()
		c := &omaha.Client{URL: hs.URL + UpdatePath, HTTP: hs.Client()}
		app := &omaha.AppRequest{ID: appID, Version: "1.0.0", Track: "stable", MachineID: machine, UpdateCheck: &omaha.UpdateCheck{}}
		req := &omaha.Request{Protocol: omaha.Protocol, InstallSource: omaha.InstallSourceScheduler, Apps: []*omaha.AppRequest{app}}
		if len(source) > 0 {
			req.InstallSource = source[0]
		}
		resp, err := c.Do(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		u, err := resp.Apps[0].FindUpdate()
		if err != nil || u == nil {
			t.Fatalf("%s: no update: %v", machine, err)
		}
		return u.Version
	}
	if v := offered(srv, "m1"); v != "1.9.0" {
		t.Errorf("m1 rolled back from 1.10.0 and is offered %s", v)
	}
	if v := offered(srv, "m2"); v != "1.10.0" {
		t.Errorf("m2 is offered %s", v)
	}
	// An operator's own check on m1 still sees it (the engine there refuses it unless forced).
	if v := offered(srv, "m1", omaha.InstallSourceOnDemand); v != "1.10.0" {
		t.Errorf("m1's on-demand check is offered %s", v)
	}
	restarted := &Server{Dir: dir, AppID: appID, EventLog: srv.EventLog}
	if err := restarted.LoadEvents(); err != nil {
		t.Fatal(err)
	}
	if v := offered(restarted, "m1"); v != "1.9.0" {
		t.Errorf("after a restart, m1 is offered %s", v)
	}
	if evs := restarted.Events(); len(evs) != 2 || evs[1].PreviousVersion != "1.10.0" {
		t.Errorf("restarted server's events: %+v", evs)
	}
	os.WriteFile(srv.EventLog, append(logged, "\n{\"time\": 3}\n"...), 0o644)
	if err := (&Server{EventLog: srv.EventLog}).LoadEvents(); err == nil || !strings.Contains(err.Error(), "line 4") {
		t.Errorf("a damaged event log: %v", err)
	}

	// A broken request is a 400, not a crash.
	res, _ = hs.Client().Post(hs.URL+UpdatePath, "text/xml", bytes.NewReader([]byte("<request")))
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("garbage request: %d", res.StatusCode)
	}
}

// The app id is matched as Nebraska matches it; events are recorded with what the machine
// says of itself and read as Nebraska reads them; the daystart is a number of seconds.
func TestServerAppsAndEventKinds(t *testing.T) {
	dir := t.TempDir()
	writePayload(t, dir, "stable", "2.0.0")
	noon := time.Date(2026, 11, 27, 12, 0, 5, 0, time.UTC)
	srv := &Server{Dir: dir, AppID: appID, Now: func() time.Time { return noon }}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	c := &omaha.Client{URL: hs.URL + UpdatePath, HTTP: hs.Client()}
	resp, err := c.Do(context.Background(), &omaha.Request{Protocol: omaha.Protocol, Apps: []*omaha.AppRequest{{
		ID: strings.ToUpper(strings.Trim(appID, "{}")), Version: "1.0.0", Track: "stable", MachineID: "m1", UpdateCheck: &omaha.UpdateCheck{}}}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.DayStart == nil || resp.DayStart.ElapsedSeconds != "43205" {
		t.Fatalf("daystart %+v", resp.DayStart)
	}
	if u, err := resp.Apps[0].FindUpdate(); err != nil || u == nil || u.Version != "2.0.0" {
		t.Fatalf("app id without braces, in capitals: %+v %v", u, err)
	}
	events := []*omaha.EventRequest{omaha.DownloadStarted(), omaha.DownloadFinished(), omaha.Installed(), omaha.Complete("1.0.0"),
		omaha.RolledBack("2.0.0"), {Type: omaha.EventTypeUpdateComplete, Result: omaha.EventResultSuccessReboot, PreviousVersion: "0.0.0.0"}}
	if _, err := c.Do(context.Background(), &omaha.Request{Protocol: omaha.Protocol, Apps: []*omaha.AppRequest{{
		ID: appID, Version: "1.0.0", Track: "stable", MachineID: "m1", MachineAlias: "node-1", OEM: "qemu", OEMVersion: "0.3", AlephVersion: "0.9.0",
		Events: events}}}); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range srv.Events() {
		kinds = append(kinds, string(e.Kind()))
		if e.MachineAlias != "node-1" || e.OEM != "qemu" || e.OEMVersion != "0.3" || e.AlephVersion != "0.9.0" {
			t.Fatalf("event %+v", e)
		}
	}
	if got, want := strings.Join(kinds, " "), "downloading downloaded installed complete error "; got != want {
		t.Fatalf("kinds %q, want %q", got, want)
	}
}
