package engine

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/update-engine/api"
	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/omaha/omahatest"
)

// cairnProductID is the application id Cairn's engine sends by default: Nebraska finds an
// application by the product id it was given.
const cairnProductID = "io.github.cairn-os.cairn"

// TestNebraska runs Cairn's engine (its Omaha client and event sequence, on the test
// machine of the other engine tests: files for partitions, a directory for the ESP) against
// a real Nebraska backend on PostgreSQL, under Cairn's own application id and under Flatcar's:
// check → download → installed → reboot → complete, and a rollback recorded as an error
// (44) followed by the same version declined (35). Nebraska listens on every interface, so
// it runs in a network namespace of the test's own.
//
// Nebraska is a peer this project does not build or ship: CAIRN_NEBRASKA names a backend
// binary built from flatcar/nebraska (backend/cmd/nebraska). Without it the test skips, also
// under CI=true, where no such binary exists; the README says how to run it.
func TestNebraska(t *testing.T) {
	testenv.RequireRoot(t)
	bin := os.Getenv("CAIRN_NEBRASKA")
	if bin == "" {
		t.Skip("CAIRN_NEBRASKA does not name a Nebraska backend binary (an interop peer built outside this project)")
	}
	testenv.RequireFile(t, bin)
	pg := postgresBin(t)
	out := testenv.InPrivateHost(t, "TestNebraskaInner", "CAIRN_TEST_NEBRASKA="+bin, "CAIRN_TEST_POSTGRES="+pg)
	for line := range strings.Lines(out) {
		if strings.Contains(line, "nebraska answered") {
			t.Log(strings.TrimSpace(line))
		}
	}
}

// postgresBin is the directory of Debian's PostgreSQL server programs.
func postgresBin(t *testing.T) string {
	t.Helper()
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	testenv.Require(t, len(found) > 0, "needs PostgreSQL's server (Debian's postgresql package)")
	sort.Slice(found, func(i, j int) bool { return pgMajor(found[i]) < pgMajor(found[j]) })
	_, err := user.Lookup("postgres")
	testenv.Require(t, err == nil, "needs the postgres user (Debian's postgresql package)")
	return filepath.Dir(found[len(found)-1])
}

func pgMajor(p string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p)))) // not a number sorts first
	return n
}

// TestNebraskaInner is TestNebraska inside its network namespace.
func TestNebraskaInner(t *testing.T) {
	bin, pg := os.Getenv("CAIRN_TEST_NEBRASKA"), os.Getenv("CAIRN_TEST_POSTGRES")
	if bin == "" || pg == "" {
		t.Skip("run by TestNebraska, in a network namespace of its own")
	}
	testenv.SetUpPrivateHost(t)
	db := startPostgres(t, pg)
	neb := startNebraska(t, bin, db)

	// Cairn's own application, found by its product id.
	var app struct {
		ID string `json:"id"`
	}
	neb.do("POST", "/api/apps", map[string]any{"name": "Cairn", "product_id": cairnProductID, "description": "Cairn"}, &app)
	for _, c := range []struct {
		name, appID, nebApp, track string
	}{
		{"cairn app id", cairnProductID, app.ID, "stable"},
		// Under Flatcar's id a group of Cairn's own: Flatcar's stable, beta, alpha and edge
		// channels are the syncer's, filled with Flatcar's payloads.
		{"flatcar app id", "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}", "e96281a6-d1af-4bde-9a0a-97b76e56dc57", "cairn-stable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			pub := newMachine(t)
			pub.publish("2.0.0", pub.priv)
			group := neb.offer(t, c.nebApp, c.track, filepath.Join(pub.srv.Dir, "stable", "2.0.0.cairn"), pub.url[:len(pub.url)-len(omahatest.UpdatePath)]+"/payloads/stable/")
			// Downloads of about a second, with a progress report every 100 ms, and pods with
			// every check: Cairn's report (omaha.Namespace), which Nebraska must ignore.
			if st, err := os.Stat(filepath.Join(pub.srv.Dir, "stable", "2.0.0.cairn")); err == nil {
				pub.srv.SetRate(st.Size())
			}
			sent := &recorder{}
			engine := func(m *machine, id, version string) *Engine {
				e := m.engine(version)
				e.Omaha.URL = neb.base + "/v1/update/"
				e.Omaha.HTTP = &http.Client{Transport: sent}
				e.AppID, e.Group, e.MachineID = c.appID, c.track, id
				e.MachineAlias, e.OEM, e.OEMVersion, e.AlephVersion = "alias-"+id, "qemu", "0.3", "0.9.0"
				e.ProgressInterval = 100 * time.Millisecond
				e.Pods = func(context.Context) ([]omaha.Pod, error) {
					return []omaha.Pod{{UUID: "5e0fd2a4-7c43-4d2f-a0a8-2f0c65a0b8a1", State: "running", Apps: []omaha.PodApp{{Name: "web", Image: "example.com/web:1.2", State: "running"}}}}, nil
				}
				return e
			}
			t.Cleanup(func() {
				reports, pods, failed := sent.counts()
				if reports == 0 || pods == 0 || failed != 0 {
					t.Errorf("nebraska answered %d progress reports and %d checks with pods; %d requests failed", reports, pods, failed)
				}
				t.Logf("nebraska answered %d progress reports and %d checks with pods", reports, pods)
			})
			ctx := context.Background()

			t.Run("complete", func(t *testing.T) {
				m := newMachine(t)
				m.keys = pub.keys
				id := "cairn-complete-" + c.track
				if res, err := engine(m, id, "1.0.0").Update(ctx, omaha.InstallSourceScheduler, false); err != nil || res != api.ResultUpdated {
					t.Fatalf("update: %v %v", res, err)
				}
				neb.expect(t, c.nebApp, group, id, "installed", true, "1.0.0")
				m.slots.CountBootAttempt(ctx, disklayout.SlotB)
				m.boot(disklayout.SlotB)
				e := engine(m, id, "2.0.0")
				if err := e.ReportBoot(ctx); !errors.Is(err, ErrOnTrial) {
					t.Fatalf("on trial: %v", err)
				}
				neb.expect(t, c.nebApp, group, id, "installed", true, "1.0.0")
				m.slots.MarkGood(ctx, disklayout.SlotB)
				if err := e.ReportBoot(ctx); err != nil {
					t.Fatal(err)
				}
				if res, err := e.Update(ctx, omaha.InstallSourceScheduler, false); err != nil || res != api.ResultNoUpdate {
					t.Fatalf("check on 2.0.0: %v %v", res, err)
				}
				neb.expect(t, c.nebApp, group, id, "complete", false, "2.0.0")
				neb.expectHistory(t, c.nebApp, group, id, "granted downloading downloaded installed complete")
				neb.expectMachine(t, c.nebApp, group, id, "alias-"+id, "qemu", "0.9.0")
			})

			t.Run("rollback", func(t *testing.T) {
				m := newMachine(t)
				m.keys = pub.keys
				id := "cairn-rollback-" + c.track
				if _, err := engine(m, id, "1.0.0").Update(ctx, omaha.InstallSourceScheduler, false); err != nil {
					t.Fatal(err)
				}
				m.slots.CountBootAttempt(ctx, disklayout.SlotB)
				m.boot(disklayout.SlotB)
				if err := engine(m, id, "2.0.0").ReportBoot(ctx); !errors.Is(err, ErrOnTrial) {
					t.Fatalf("on trial: %v", err)
				}
				for range 2 {
					m.slots.CountBootAttempt(ctx, disklayout.SlotB)
				}
				m.boot(disklayout.SlotA)
				e := engine(m, id, "1.0.0")
				if err := e.ReportBoot(ctx); err != nil {
					t.Fatal(err)
				}
				neb.expect(t, c.nebApp, group, id, "error", false, "1.0.0")
				// Nebraska grants 2.0.0 again; the engine declines it, and Nebraska holds no
				// update in progress for it.
				if res, err := e.Update(ctx, omaha.InstallSourceScheduler, false); err != nil || res != api.ResultNoUpdate {
					t.Fatalf("2.0.0 offered again: %v %v", res, err)
				}
				neb.expect(t, c.nebApp, group, id, "error", false, "1.0.0")
				neb.expectHistory(t, c.nebApp, group, id, "granted downloading downloaded installed error 44 granted error 35")
			})
		})
	}
}

// recorder passes requests on and counts what Nebraska answered: progress reports (an <app>
// with Cairn's report alone), checks that carried pods, and answers other than 200.
type recorder struct {
	mu                    sync.Mutex
	reports, pods, failed int
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	res, err := http.DefaultTransport.RoundTrip(req)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || res.StatusCode != http.StatusOK {
		r.failed++
		return res, err
	}
	if or, err := omaha.ParseRequest(bytes.NewReader(body)); err == nil && len(or.Apps) == 1 {
		a := or.Apps[0]
		switch {
		case a.Operation != "" && a.Ping == nil && a.UpdateCheck == nil && len(a.Events) == 0:
			r.reports++
		case a.UpdateCheck != nil && a.Pods != nil:
			r.pods++
		}
	}
	return res, nil
}

func (r *recorder) counts() (reports, pods, failed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reports, r.pods, r.failed
}

// startPostgres runs a PostgreSQL server of the test's own on 127.0.0.1:5432 (the test's
// namespace has its own loopback), as the postgres user, and returns the URL of its database
// "nebraska".
func startPostgres(t *testing.T, bin string) string {
	t.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir := t.TempDir()
	// The postgres user must reach its data directory.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, uid, gid); err != nil {
		t.Fatal(err)
	}
	asPostgres := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = data
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, Pdeathsig: syscall.SIGKILL}
		return cmd
	}
	if out, err := asPostgres("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	var log bytes.Buffer
	srv := asPostgres("postgres", "-D", data, "-k", data, "-h", "127.0.0.1", "-p", "5432", "-F")
	srv.Stdout, srv.Stderr = &log, &log
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { srv.Wait(); close(exited) }()
	t.Cleanup(func() {
		srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			srv.Process.Kill()
			<-exited
		}
	})
	if err := waitTCP("127.0.0.1:5432", exited); err != nil {
		t.Fatalf("postgres: %v\n%s", err, log.String())
	}
	if out, err := asPostgres("createdb", "-h", "127.0.0.1", "-U", "postgres", "nebraska").CombinedOutput(); err != nil {
		t.Fatalf("createdb: %v\n%s", err, out)
	}
	return "postgres://postgres@127.0.0.1:5432/nebraska?sslmode=disable"
}

func waitTCP(addr string, exited <-chan struct{}) error {
	for range 300 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited")
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("not listening after 30 s")
}

// nebraska is a running Nebraska and its HTTP API (authentication off).
type nebraska struct {
	t    *testing.T
	base string
}

func startNebraska(t *testing.T, bin, db string) *nebraska {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "static"), 0o755); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command(bin, "-auth-mode", "noop", "-port", "8000", "-http-static-dir", filepath.Join(dir, "static"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NEBRASKA_DB_URL="+db)
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("nebraska's log:\n%s", log.String())
		}
	})
	n := &nebraska{t: t, base: "http://127.0.0.1:8000"}
	for range 300 {
		if res, err := http.Get(n.base + "/api/apps"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return n
			}
		}
		select {
		case <-exited:
			t.Fatalf("nebraska exited:\n%s", log.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("nebraska did not answer in 30 s:\n%s", log.String())
	return nil
}

func (n *nebraska) do(method, path string, in, out any) {
	n.t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			n.t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, n.base+path, body)
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		n.t.Fatalf("%s %s: %s\n%s", method, path, res.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			n.t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
}

// offer makes a group with track that offers the payload at path, served under base, and
// returns the group's id. The package is of Nebraska's type Flatcar, the type that carries a
// SHA-256 (on the postinstall action); without one the engine refuses it.
func (n *nebraska) offer(t *testing.T, app, track, path, base string) string {
	n.t = t
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s1, s256 := sha1.Sum(b), sha256.Sum256(b)
	var pkg, channel, group struct {
		ID string `json:"id"`
	}
	n.do("POST", "/api/apps/"+app+"/packages", map[string]any{
		"application_id": app, "arch": 1, "channels_blacklist": []string{}, "description": "Cairn 2.0.0",
		"filename": filepath.Base(path), "hash": base64.StdEncoding.EncodeToString(s1[:]), "size": strconv.Itoa(len(b)),
		"type": 1, "url": base, "version": "2.0.0", "flatcar_action": map[string]any{"sha256": base64.StdEncoding.EncodeToString(s256[:])},
	}, &pkg)
	n.do("POST", "/api/apps/"+app+"/channels", map[string]any{
		"application_id": app, "arch": 1, "color": "#777777", "name": track, "package_id": pkg.ID,
	}, &channel)
	n.do("POST", "/api/apps/"+app+"/groups", map[string]any{
		"name": "Cairn " + track, "channel_id": channel.ID, "track": track, "policy_updates_enabled": true,
		"policy_safe_mode": false, "policy_office_hours": false, "policy_timezone": "UTC", "policy_period_interval": "1 minutes",
		"policy_max_updates_per_period": 999999, "policy_update_timeout": "60 minutes",
	}, &group)
	return group.ID
}

// Nebraska's instance statuses (backend/pkg/api/internal/types/instance.go).
var nebraskaStatus = map[int]string{1: "undefined", 2: "granted", 3: "error", 4: "complete", 5: "installed", 6: "downloaded", 7: "downloading", 8: "onhold"}

// expect checks the instance's status, whether Nebraska has an update in progress for it,
// and its version.
func (n *nebraska) expect(t *testing.T, app, group, id, status string, inProgress bool, version string) {
	t.Helper()
	n.t = t
	var inst struct {
		Application struct {
			Status           int    `json:"status"`
			Version          string `json:"version"`
			UpdateInProgress bool   `json:"update_in_progress"`
		} `json:"application"`
	}
	n.do("GET", fmt.Sprintf("/api/apps/%s/groups/%s/instances/%s", app, group, id), nil, &inst)
	a := inst.Application
	if got := nebraskaStatus[a.Status]; got != status || a.UpdateInProgress != inProgress || a.Version != version {
		t.Fatalf("instance %s: status %s, update in progress %v, version %s; want %s, %v, %s", id, got, a.UpdateInProgress, a.Version, status, inProgress, version)
	}
}

// expectMachine checks what Nebraska shows of the machine itself.
func (n *nebraska) expectMachine(t *testing.T, app, group, id, alias, oem, aleph string) {
	t.Helper()
	n.t = t
	var inst struct {
		Alias        string `json:"alias"`
		OEM          string `json:"oem"`
		AlephVersion string `json:"aleph_version"`
	}
	n.do("GET", fmt.Sprintf("/api/apps/%s/groups/%s/instances/%s", app, group, id), nil, &inst)
	if inst.Alias != alias || inst.OEM != oem || inst.AlephVersion != aleph {
		t.Fatalf("instance %s: alias %q, oem %q, aleph version %q; want %q, %q, %q", id, inst.Alias, inst.OEM, inst.AlephVersion, alias, oem, aleph)
	}
}

// expectHistory checks the instance's status history, oldest first, an error with its code.
func (n *nebraska) expectHistory(t *testing.T, app, group, id, want string) {
	t.Helper()
	n.t = t
	type entry struct {
		Status    int       `json:"status"`
		CreatedTs time.Time `json:"created_ts"`
		ErrorCode string    `json:"error_code"`
	}
	var hist []entry
	n.do("GET", fmt.Sprintf("/api/apps/%s/groups/%s/instances/%s/status_history", app, group, id), nil, &hist)
	slices.SortStableFunc(hist, func(a, b entry) int { return a.CreatedTs.Compare(b.CreatedTs) })
	var got []string
	for _, h := range hist {
		s := nebraskaStatus[h.Status]
		if h.ErrorCode != "" {
			s += " " + h.ErrorCode
		}
		got = append(got, s)
	}
	if strings.Join(got, " ") != want {
		t.Fatalf("instance %s: status history %q, want %q", id, strings.Join(got, " "), want)
	}
}
