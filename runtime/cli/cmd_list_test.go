package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/runtime/pod"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

var (
	cet     = time.FixedZone("CET", 3600)
	listNow = time.Date(2016, 1, 25, 17, 44, 46, 0, cet)
)

// The pods of rkt's own list example (Documentation/subcommands/list.md): a running pod of
// two apps, one of them a versioned image, on the default network, and an exited one.
func docPods() []podInfo {
	return []podInfo{
		{
			UUID: "5bc080ca-9e03-480d-b705-5928af396cc5", State: pod.Running,
			Created: time.Date(2016, 1, 25, 17, 42, 32, 563e6, cet), Started: time.Date(2016, 1, 25, 17, 44, 5, 294e6, cet),
			Nets: []podNet{{Name: "default", IfName: "eth0", IP: netip.MustParsePrefix("172.16.28.7/24")}},
			Apps: []podApp{
				{Name: "redis", ImageName: "redis", ImageID: "sha512-91e98d7f1679a4b0bc5d0d3c8e5a2f5a", State: appRunning},
				{Name: "etcd", ImageName: "coreos.com/etcd:v2.0.9", ImageID: "sha512-a03f6bad952b0000", State: appRunning},
			},
		},
		{
			UUID: "3089337c-8021-119b-5ea0-879a7c694de4", State: pod.Exited,
			Created: time.Date(2016, 1, 25, 17, 36, 40, 203e6, cet), Started: time.Date(2016, 1, 25, 17, 42, 15, 1e8, cet),
			Apps: []podApp{{Name: "nginx", ImageName: "nginx", ImageID: "sha512-32ad6892f21a", State: appExited, Exit: &pod.AppExit{ExitCode: 0}}},
		},
	}
}

func TestPodTable(t *testing.T) {
	extra := append(docPods(),
		// An embryo: no manifest, no apps, no times.
		podInfo{UUID: "00000000-0000-4000-8000-000000000000", State: pod.Embryo},
		// Two addresses, created a second ago and not started.
		podInfo{
			UUID: "11111111-0000-4000-8000-000000000000", State: pod.Prepared, Created: listNow.Add(-time.Second),
			Nets: []podNet{
				{Name: "default", IP: netip.MustParsePrefix("172.16.28.9/24")},
				{Name: "v6net", IP: netip.MustParsePrefix("fd00::9/64")},
			},
			Apps: []podApp{{Name: "busybox", ImageName: "example.com/busybox:1.36", ImageID: "sha256:0123456789abcdef0123", State: appCreated}},
		})
	for _, tc := range []struct {
		name string
		pods []podInfo
		f    listFormat
	}{
		{"doc.txt", docPods(), listFormat{}},
		{"doc-full.txt", docPods(), listFormat{Full: true}},
		{"doc-no-legend.txt", docPods(), listFormat{NoLegend: true}},
		{"more.txt", extra, listFormat{}},
		{"more-full.txt", extra, listFormat{Full: true}},
		{"none.txt", nil, listFormat{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.f.Now, tc.f.Loc = listNow, cet
			var b bytes.Buffer
			if err := writePodTable(&b, tc.pods, tc.f); err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("list", tc.name), b.String())
		})
	}
}

// Relative times are humanize's, as rkt's list writes them.
func TestListRelativeTimes(t *testing.T) {
	f := listFormat{Now: listNow, Loc: cet}
	for _, tc := range []struct {
		ago  time.Duration
		want string
	}{
		{0, "now"},
		{time.Second, "1 second ago"},
		{41 * time.Second, "41 seconds ago"},
		{time.Minute, "1 minute ago"},
		{2*time.Minute + 14*time.Second, "2 minutes ago"},
		{time.Hour, "1 hour ago"},
		{3 * 24 * time.Hour, "3 days ago"},
	} {
		if got := f.fmtTime(listNow.Add(-tc.ago)); got != tc.want {
			t.Errorf("%s ago: %q, want %q", tc.ago, got, tc.want)
		}
	}
	if got := f.fmtTime(time.Time{}); got != "" {
		t.Errorf("unknown time: %q", got)
	}
	f.Full = true
	if got := f.fmtTime(time.Date(2016, 1, 25, 16, 42, 15, 1e8, time.UTC)); got != "2016-01-25 17:42:15.1 +0100 CET" {
		t.Errorf("absolute time %q", got)
	}
}

// The JSON is rkt's api/v1 Pod: the keys, the units (seconds for the pod, nanoseconds for
// its apps), networks as netinfo objects.
func TestPodJSON(t *testing.T) {
	pi := docPods()[0]
	pi.PID = 4242
	pi.Apps[0].Mounts = []mountJSON{{Name: "data", ContainerPath: "/data", HostPath: "/srv/data", ReadOnly: true}}
	pi.UserLabels = map[string]string{"tier": "db"}
	b, err := json.Marshal(pi.json())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	check := func(what string, v, want any) {
		t.Helper()
		if v != want {
			t.Errorf("%s = %#v, want %#v (json %s)", what, v, want, b)
		}
	}
	check("name", got["name"], pi.UUID)
	check("state", got["state"], "running")
	check("created_at", got["created_at"], float64(pi.Created.Unix()))
	check("started_at", got["started_at"], float64(pi.Started.Unix()))
	check("pid", got["pid"], float64(4242))
	check("user_labels.tier", got["user_labels"].(map[string]any)["tier"], "db")
	if _, ok := got["exit_code"]; ok {
		t.Errorf("a running pod has an exit_code: %s", b)
	}
	names := got["app_names"].([]any)
	check("app_names", len(names), 2)
	n := got["networks"].([]any)[0].(map[string]any)
	for k, want := range map[string]string{"netName": "default", "ifName": "eth0", "ip": "172.16.28.7", "mask": "255.255.255.0", "netConf": "", "pluginPath": "", "args": ""} {
		check("networks[0]."+k, n[k], want)
	}
	a := got["apps"].([]any)[0].(map[string]any)
	check("apps[0].name", a["name"], "redis")
	check("apps[0].state", a["state"], "running")
	check("apps[0].image_id", a["image_id"], "sha512-91e98d7f1679a4b0bc5d0d3c8e5a2f5a")
	check("apps[0].created_at", a["created_at"], float64(pi.Created.UnixNano()))
	check("apps[0].started_at", a["started_at"], float64(pi.Started.UnixNano()))
	m := a["mounts"].([]any)[0].(map[string]any)
	check("mounts[0].container_path", m["container_path"], "/data")
	check("mounts[0].host_path", m["host_path"], "/srv/data")
	check("mounts[0].read_only", m["read_only"], true)

	// An exited pod: the first app's exit code on the pod too; apps exited with theirs.
	ex := docPods()[1]
	ex.Apps[0].Exit = &pod.AppExit{ExitCode: 137, Signal: "SIGKILL", FinishedAt: listNow}
	b, _ = json.Marshal(ex.json())
	got = nil
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	check("exit_code", got["exit_code"], float64(137))
	if _, ok := got["networks"]; ok {
		t.Errorf("a pod without networks has the key: %s", b)
	}
	a = got["apps"].([]any)[0].(map[string]any)
	check("apps[0].exit_code", a["exit_code"], float64(137))
	check("apps[0].signal", a["signal"], "SIGKILL")
	check("apps[0].finished_at", a["finished_at"], float64(listNow.UnixNano()))
}

func TestFmtNets(t *testing.T) {
	for _, tc := range []struct {
		nets []podNet
		want string
	}{
		{nil, ""},
		{[]podNet{{Name: "default", IP: netip.MustParsePrefix("172.16.28.7/24")}}, "default:ip4=172.16.28.7"},
		{[]podNet{{Name: "default", IP: netip.MustParsePrefix("172.16.28.7/24")}, {Name: "mynet", IP: netip.MustParsePrefix("fd00::7/64")}},
			"default:ip4=172.16.28.7, mynet:ip6=fd00::7"},
	} {
		if got := fmtNets(tc.nets); got != tc.want {
			t.Errorf("fmtNets(%v) = %q, want %q", tc.nets, got, tc.want)
		}
	}
}

func TestCheckFormat(t *testing.T) {
	for _, f := range []string{"", "json", "json-pretty"} {
		if err := checkFormat(f); err != nil {
			t.Errorf("%q: %v", f, err)
		}
	}
	for _, f := range []string{"tab", "yaml", "JSON"} {
		if err := checkFormat(f); err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("%q accepted or not named: %v", f, err)
		}
	}
}
