package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/runtime/network"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// A pod removed while status --wait-ready waits for it ends the wait with an error naming
// the pod.
func TestStatusWaitReadyPodRemoved(t *testing.T) {
	dir := t.TempDir()
	p, err := pod.NewStore(dir).Create() // preparing: locked, in the prepare phase
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	go func() {
		time.Sleep(100 * time.Millisecond)
		os.RemoveAll(p.Path())
	}()
	out, errOut, code := run(t, "--dir", dir, "status", "--wait-ready", p.UUID)
	if code == 0 || !strings.Contains(errOut, p.UUID) {
		t.Fatalf("status --wait-ready on a removed pod: code %d, stdout %q, stderr %q; want a failure naming the pod", code, out, errOut)
	}
}

func TestParseWait(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{"", -1, false}, // --wait alone
		{"true", -1, false},
		{"1", -1, false},
		{"false", 0, false},
		{"0", 0, false}, // a boolean before a duration, as in rkt
		{"10s", 10 * time.Second, false},
		{"1m30s", 90 * time.Second, false},
		{"0s", 0, false},
		{"-1s", -time.Second, false},
		{"soon", 0, true},
		{"10", 0, true},
	} {
		got, err := parseWait(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("parseWait(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestWriteStatus(t *testing.T) {
	pods := docPods()
	running := pods[0]
	running.PID = 16964
	exited := pods[1]
	exited.PID = 16964
	exited.Apps = append(exited.Apps, podApp{Name: "etcd", State: appExited, Exit: &pod.AppExit{ExitCode: 2}},
		podApp{Name: "killed", State: appExited}) // rkt run killed: no exit record
	garbage := exited
	garbage.State = pod.ExitedGarbage
	prepared := podInfo{UUID: exited.UUID, State: pod.Prepared, Created: exited.Created, Apps: []podApp{{Name: "nginx", State: appCreated}}}
	for _, tc := range []struct {
		name string
		pi   podInfo
		want string
	}{
		{"running", running, `state=running
created=2016-01-25 17:42:32.563 +0100 CET
started=2016-01-25 17:44:05.294 +0100 CET
networks=default:ip4=172.16.28.7
pid=16964
exited=false
`},
		{"exited", exited, `state=exited
created=2016-01-25 17:36:40.203 +0100 CET
started=2016-01-25 17:42:15.1 +0100 CET
networks=
pid=16964
exited=true
app-nginx=0
app-etcd=2
`},
		{"exited garbage", garbage, `state=exited garbage
created=2016-01-25 17:36:40.203 +0100 CET
started=2016-01-25 17:42:15.1 +0100 CET
pid=16964
exited=true
app-nginx=0
app-etcd=2
`},
		{"prepared", prepared, `state=prepared
created=2016-01-25 17:36:40.203 +0100 CET
`},
		{"embryo", podInfo{State: pod.Embryo}, "state=embryo\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			writeStatus(&b, &tc.pi, cet)
			if b.String() != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}

func TestPodRef(t *testing.T) {
	f := filepath.Join(t.TempDir(), "uuid")
	if err := os.WriteFile(f, []byte("5bc080ca-9e03-480d-b705-5928af396cc5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		file string
		want string
		bad  bool
	}{
		{[]string{"5bc080ca"}, "", "5bc080ca", false},
		{nil, f, "5bc080ca-9e03-480d-b705-5928af396cc5", false},
		{nil, "", "", true},
		{[]string{"5bc080ca"}, f, "", true},
		{[]string{"a", "b"}, "", "", true},
		{nil, f + ".missing", "", true},
	} {
		got, err := podRef(tc.args, tc.file)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("podRef(%v, %q) = %q, %v", tc.args, tc.file, got, err)
		}
	}
}

// fakePod writes a pod directory as rkt run leaves it, without running anything: manifest,
// times, pid, networks, exit records.
func fakePod(t *testing.T, ps *pod.Store, apps ...string) *pod.Pod {
	t.Helper()
	p, err := ps.Create()
	if err != nil {
		t.Fatal(err)
	}
	m := schema.BlankPodManifest()
	for _, a := range apps {
		name := types.MustACIdentifier("example.com/" + a)
		h, _ := types.NewHash("sha512-" + strings.Repeat("ab", 64))
		m.Apps = append(m.Apps, schema.RuntimeApp{
			Name:  types.ACName(a),
			Image: schema.RuntimeImage{Name: name, ID: *h, Labels: types.Labels{{Name: "version", Value: "1.0"}}},
			App:   &types.App{Exec: types.Exec{"/bin/" + a}, User: "0", Group: "0"},
		})
	}
	if err := p.WriteManifest(m); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteTime(pod.CreatedFile, time.Now().Add(-3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := p.MarkRunning(); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteTime(pod.StartedFile, time.Now().Add(-2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := p.WritePID(424242); err != nil {
		t.Fatal(err)
	}
	st := &network.State{PodID: p.UUID, Nets: []network.Attachment{{Name: "default", IfName: "eth0", IPs: []string{"172.16.28.7/24"}}}}
	if err := st.Save(p.File(stage1.NetStateFile)); err != nil {
		t.Fatal(err)
	}
	return p
}

// rkt list and rkt status on pods made on disk: the columns, one line per app, the UUID
// file, JSON, and --wait with a duration.
func TestListAndStatusCommands(t *testing.T) {
	dir := t.TempDir()
	ps := pod.NewStore(dir)
	two := fakePod(t, ps, "redis", "etcd")
	one := fakePod(t, ps, "nginx")
	if err := one.WriteExit("nginx", pod.AppExit{ExitCode: 3, FinishedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	one.Close() // exited
	defer two.Close()

	out, errOut, code := run(t, "--dir", dir, "list")
	if code != 0 {
		t.Fatalf("list: %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "UUID APP IMAGE NAME STATE CREATED STARTED NETWORKS" {
		t.Fatalf("list:\n%s", out)
	}
	rows := map[string]string{}
	for _, l := range lines[1:] {
		rows[strings.Fields(l)[0]] = strings.Join(strings.Fields(l), " ")
	}
	if got, want := rows[two.UUID[:8]], two.UUID[:8]+" redis example.com/redis:1.0 running 3 minutes ago 2 minutes ago default:ip4=172.16.28.7"; got != want {
		t.Errorf("running pod's line %q, want %q", got, want)
	}
	if got, want := rows["etcd"], "etcd example.com/etcd:1.0"; got != want {
		t.Errorf("second app's line %q, want %q", got, want)
	}
	if got, want := rows[one.UUID[:8]], one.UUID[:8]+" nginx example.com/nginx:1.0 exited 3 minutes ago 2 minutes ago default:ip4=172.16.28.7"; got != want {
		t.Errorf("exited pod's line %q, want %q", got, want)
	}

	out, _, _ = run(t, "--dir", dir, "list", "--full", "--no-legend")
	if !strings.Contains(out, two.UUID) || !strings.Contains(out, "sha512-abababababab\t") || strings.Contains(out, "UUID") {
		t.Errorf("list --full --no-legend:\n%s", out)
	}
	for _, f := range []string{"json", "json-pretty"} {
		out, _, code = run(t, "--dir", dir, "list", "--format="+f)
		var pods []podJSON
		if err := json.Unmarshal([]byte(out), &pods); err != nil || code != 0 || len(pods) != 2 {
			t.Fatalf("list --format=%s: %v %q", f, err, out)
		}
	}

	uf := filepath.Join(t.TempDir(), "uuid")
	if err := os.WriteFile(uf, []byte(one.UUID+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = run(t, "--dir", dir, "status", "--uuid-file="+uf)
	if code != 0 || !strings.Contains(out, "state=exited\n") || !strings.Contains(out, "pid=424242\n") || !strings.Contains(out, "app-nginx=3\n") {
		t.Fatalf("status --uuid-file of an exited pod: %d %q %q; want its state, its pid and its app's status", code, out, errOut)
	}
	out, _, code = run(t, "--dir", dir, "status", "--format=json", one.UUID)
	var pj podJSON
	if err := json.Unmarshal([]byte(out), &pj); err != nil || code != 0 || pj.State != "exited" || pj.ExitCode == nil || *pj.ExitCode != 3 {
		t.Fatalf("status --format=json: %v %q", err, out)
	}

	// --wait with a duration gives up on a pod that runs on, and says so.
	start := time.Now()
	_, errOut, code = run(t, "--dir", dir, "status", "--wait=200ms", two.UUID)
	if code == 0 || !strings.Contains(errOut, "not finished after 200ms") || time.Since(start) > 5*time.Second {
		t.Fatalf("status --wait=200ms of a running pod: %d %q", code, errOut)
	}
	// ... and returns once the pod exits.
	go func() {
		time.Sleep(100 * time.Millisecond)
		two.Close()
	}()
	out, errOut, code = run(t, "--dir", dir, "status", "--wait=10s", two.UUID)
	if code != 0 || !strings.Contains(out, "state=exited\n") {
		t.Fatalf("status --wait=10s: %d %q %q", code, out, errOut)
	}
	for _, bad := range []string{"--wait=soon", "--wait-ready=later"} {
		if _, errOut, code := run(t, "--dir", dir, "status", bad, one.UUID); code == 0 || !strings.Contains(errOut, strings.TrimPrefix(strings.Split(bad, "=")[0], "--")) {
			t.Errorf("status %s: %d %q", bad, code, errOut)
		}
	}
	if _, _, code := run(t, "--dir", dir, "status", "--uuid-file="+uf, one.UUID); code == 0 {
		t.Error("status with both --uuid-file and a UUID succeeded")
	}
	if out, _, code := run(t, "--dir", dir, "cat-manifest", "--uuid-file="+uf); code != 0 || !strings.Contains(out, "example.com/nginx") {
		t.Errorf("cat-manifest --uuid-file: %d %q", code, out)
	}
}
