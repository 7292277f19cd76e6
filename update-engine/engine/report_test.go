package engine

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/update-engine/api"
	"github.com/cairn-os/cairn/update-engine/omaha"
)

// While an update is downloaded and written, the server hears its step and progress at
// most every ProgressInterval: requests with Cairn's report and nothing else, the progress
// never going back within an operation; the events carry the report of their moment.
func TestProgressReports(t *testing.T) {
	m := newMachine(t)
	m.publish("2.0.0", m.priv)
	st, err := os.Stat(filepath.Join(m.srv.Dir, "stable", "2.0.0.cairn"))
	if err != nil {
		t.Fatal(err)
	}
	m.srv.SetRate(st.Size()) // about a second of download
	e := m.engine("1.0.0")
	e.ProgressInterval = 100 * time.Millisecond
	start := time.Now()
	if res, err := e.Update(context.Background(), omaha.InstallSourceScheduler, false); err != nil || res != api.ResultUpdated {
		t.Fatalf("update: %v %v", res, err)
	}
	took := time.Since(start)
	var reports []omaha.Report
	var events []string
	for _, req := range m.sent() {
		a := req.Apps[0]
		if len(a.Events) == 0 && a.Ping == nil && a.UpdateCheck == nil {
			reports = append(reports, a.Report)
			continue
		}
		if a.UpdateCheck != nil {
			if a.Operation != "" {
				t.Errorf("a check says %+v", a.Report)
			}
			continue
		}
		events = append(events, string(a.Events[0].Kind())+" "+a.Operation+" "+a.Step)
	}
	if got, want := strings.Join(events, ", "), "downloading UPDATE_STATUS_DOWNLOADING download, downloaded UPDATE_STATUS_DOWNLOADING download, "+
		"installed UPDATE_STATUS_UPDATED_NEED_REBOOT "; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	if len(reports) == 0 || len(reports) > int(took/e.ProgressInterval)+1 {
		t.Fatalf("%d progress reports in %s, want 1 to one per %s", len(reports), took, e.ProgressInterval)
	}
	last := map[string]omaha.Fraction{}
	for _, r := range reports {
		if r.Pods != nil || r.Step == "" || r.Progress < last[r.Operation] {
			t.Fatalf("report %+v after %v: %+v", r, last[r.Operation], reports)
		}
		last[r.Operation] = r.Progress
	}
	if last[api.OpDownloading] == 0 {
		t.Fatalf("no download progress in %+v", reports)
	}
	t.Logf("%d progress reports in %s", len(reports), took)

	// Negative: none.
	m = newMachine(t)
	m.publish("2.0.0", m.priv)
	m.srv.SetRate(4 * st.Size())
	e = m.engine("1.0.0")
	e.ProgressInterval = -1
	if _, err := e.Update(context.Background(), omaha.InstallSourceScheduler, false); err != nil {
		t.Fatal(err)
	}
	if n := len(m.sent()); n != 4 { // the check and three events
		t.Fatalf("%d requests without progress reports", n)
	}
}

// The check reports the machine's pods; a listing that fails leaves them out of the check,
// which goes on.
func TestPodsReported(t *testing.T) {
	m := newMachine(t)
	e := m.engine("1.0.0")
	e.Pods = func(context.Context) ([]omaha.Pod, error) {
		return []omaha.Pod{{UUID: "b", State: "exited"}, {UUID: "a", State: "running", Apps: []omaha.PodApp{{Name: "web", Image: "img"}}}}, nil
	}
	if _, err := e.Update(context.Background(), omaha.InstallSourceScheduler, false); err != nil {
		t.Fatal(err)
	}
	e.Pods = CommandPods([]string{"false"})
	if _, err := e.Update(context.Background(), omaha.InstallSourceScheduler, false); err != nil {
		t.Fatal(err)
	}
	reqs := m.sent()
	want := &omaha.Pods{Total: 2, Pods: []omaha.Pod{{UUID: "a", State: "running", Apps: []omaha.PodApp{{Name: "web", Image: "img"}}}, {UUID: "b", State: "exited"}}}
	if len(reqs) != 2 || !reflect.DeepEqual(reqs[0].Apps[0].Pods, want) || reqs[1].Apps[0].Pods != nil {
		t.Fatalf("pods sent %+v, then %+v", reqs[0].Apps[0].Pods, reqs[1].Apps[0].Pods)
	}
}

func TestCommandPods(t *testing.T) {
	ctx := context.Background()
	pods, err := CommandPods([]string{"cat", "testdata/rkt-list.json"})(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []omaha.Pod{
		{UUID: "5e0fd2a4-7c43-4d2f-a0a8-2f0c65a0b8a1", State: "running", Apps: []omaha.PodApp{
			{Name: "web", Image: "example.com/web:1.2", State: "running"}, {Name: "sidecar", Image: "sha512-fedcba9876543210", State: "exited"}}},
		{UUID: "0b6bc7a6-1d52-4a39-9f7e-2f5d6c8e9a10", State: "exited", Apps: []omaha.PodApp{{Name: "batch"}}},
	}
	if !reflect.DeepEqual(pods, want) {
		t.Fatalf("pods %+v\nwant %+v", pods, want)
	}
	for _, c := range []struct {
		argv []string
		want string
	}{
		{[]string{"sh", "-c", "echo rkt: no such pod dir >&2; exit 1"}, "exit status 1: rkt: no such pod dir"},
		{[]string{"echo", "not json"}, "rkt list: invalid character"},
		{[]string{"/nonexistent/rkt", "list"}, "no such file"},
		{nil, "no command"},
	} {
		if _, err := CommandPods(c.argv)(ctx); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.argv, err, c.want)
		}
	}
	// A runtime that hangs is killed at the deadline.
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := CommandPods([]string{"sleep", "10"})(tctx); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("hung command: %v after %s", err, time.Since(start))
	}
}

// FuzzParseRktList: whatever the runtime prints, the engine reads it or says why, and what
// it reads bounds to a list within the limits.
func FuzzParseRktList(f *testing.F) {
	b, err := os.ReadFile("testdata/rkt-list.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"name":"x","state":"running","app_names":["a","b"]}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		pods, err := ParseRktList(b)
		if err != nil {
			return
		}
		bound := omaha.BoundPods(pods)
		if len(bound.Pods) > omaha.MaxPods || int(bound.Total) != len(pods) {
			t.Fatalf("%d pods listed of %d", len(bound.Pods), bound.Total)
		}
	})
}
