package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/cli/clitest"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
	"github.com/cairn-os/cairn/runtime/store"
)

// newRktEnv runs rkt in-process, without a Remote, against scratch directories.
func newRktEnv(t *testing.T) *clitest.Env {
	return clitest.New(t, func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		return Run(ctx, args, stdin, stdout, stderr, Options{})
	})
}

// withBusybox imports the busybox ACI (app /bin/sh, users root and app, mount point data)
// into e's store and returns its ID.
func withBusybox(t *testing.T, e *clitest.Env) string {
	t.Helper()
	testenv.RequireFile(t, fixture.BusyboxPath)
	st, err := store.Open(e.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := fixture.WriteACI(&buf, fixture.ACIOptions{
		Name:   fixture.ACIName,
		Labels: map[string]string{"version": fixture.ACIVersion},
		App: &types.App{Exec: types.Exec{"/bin/sh", "-c", "echo hello"}, User: "0", Group: "0",
			MountPoints: []types.MountPoint{{Name: "data", Path: "/data"}}},
		Files: map[string]string{"etc/passwd": "root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n", "etc/group": "root:x:0:\napp:x:1000:\n"},
	}); err != nil {
		t.Fatal(err)
	}
	img, err := st.ImportACI(context.Background(), &buf, store.ImportOptions{Name: fixture.ACIName, Trusted: true})
	if err != nil {
		t.Fatal(err)
	}
	return img.ID
}

// pods lists every pod directory, in any phase.
func pods(t *testing.T, e *clitest.Env) []string {
	t.Helper()
	var all []string
	for _, ph := range pod.Phases {
		ents, err := os.ReadDir(filepath.Join(e.Dir, "pods", string(ph)))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, en := range ents {
			all = append(all, string(ph)+"/"+en.Name())
		}
	}
	return all
}

// Whatever can be checked is checked before the pod directory exists: a mistake fails with
// an error naming it and leaves no pod behind.
func TestRunChecksBeforeThePodExists(t *testing.T) {
	e := newRktEnv(t)
	withBusybox(t, e)
	img := fixture.ACIName
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--cpu=-1", img}, "--cpu=-1"},
		{[]string{img, "--cpu=0"}, "--cpu=0"},
		{[]string{"--memory=-5M", img}, "--memory=-5M"},
		{[]string{img, "--memory=0"}, "--memory=0"},
		{[]string{"--net=nosuchnet", img}, "nosuchnet"},
		{[]string{"--volume=src,kind=host,source=/no/such/source", img}, "/no/such/source"},
		{[]string{"--volume=v,kind=empty", "--volume=v,kind=empty", img}, "--volume v given twice"},
		{[]string{img, "--exec=/bin/no-such-program"}, "/bin/no-such-program"},
		{[]string{img, "--exec=no-such-program"}, "no-such-program"},
		{[]string{img, "--user=nosuchuser"}, "nosuchuser"},
		{[]string{img, "--group=nosuchgroup"}, "nosuchgroup"},
		{[]string{"--uuid-file-save=/no/such/dir/uuid", img}, "/no/such/dir/uuid"},
		{[]string{img, "--caps-retain=CAP_NOPE"}, "CAP_NOPE"},
		{[]string{img, "--caps-remove=CAP_BOGUS"}, "CAP_BOGUS"},
		{[]string{"--caps-retain=CAP_NOPE", img}, "CAP_NOPE"},
		{[]string{img, "--seccomp=mode=remove,@no/such-set"}, "@no/such-set"},
		{[]string{img, "--mount=volume=nope,target=/x"}, "nope"},
	} {
		for _, cmd := range []string{"run", "prepare"} {
			args := append([]string{cmd}, c.args...)
			if !strings.HasPrefix(c.args[0], "--net=") {
				args = append([]string{cmd, "--net=none"}, c.args...)
			}
			_, errOut, code := e.Rkt(t, "", args...)
			if code != stage1.ExitFailure || !strings.Contains(errOut, c.want) {
				t.Errorf("rkt %s: code %d, stderr %q; want %d and an error naming %q", strings.Join(args, " "), code, errOut, stage1.ExitFailure, c.want)
			}
			if left := pods(t, e); len(left) > 0 {
				t.Fatalf("rkt %s left pods behind: %v", strings.Join(args, " "), left)
			}
		}
	}
	if out, _, code := e.Rkt(t, "", "list", "--no-legend"); code != 0 || strings.TrimSpace(out) != "" {
		t.Errorf("rkt list after the failures: code %d, %q", code, out)
	}
}

// --pod-manifest: a manifest is checked like flags before any pod exists, and a good one
// makes the pod it describes.
func TestPodManifest(t *testing.T) {
	e := newRktEnv(t)
	id := withBusybox(t, e)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	app := `{"name":"web","image":{"id":"` + id + `"},"app":{"exec":["/bin/sh","-c","echo from the manifest"],"user":"0","group":"0"}}`
	plain := `{"name":"plain","image":{"id":"` + id + `"}}` // the image's app, with its mount point
	good := write("good.json", `{"acKind":"PodManifest","acVersion":"0.8.11","apps":[`+app+`,`+plain+`],"userLabels":{"tier":"1"}}`)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--pod-manifest=" + good, fixture.ACIName}, "conflict"},
		{[]string{"--pod-manifest=" + good, "--volume=v,kind=empty"}, "--volume and --pod-manifest conflict"},
		{[]string{"--pod-manifest=" + good, "--set-env=A=1"}, "--set-env and --pod-manifest conflict"},
		{[]string{"--pod-manifest=" + filepath.Join(dir, "missing.json")}, "missing.json"},
		{[]string{"--pod-manifest=" + write("bad.json", `{"acKind":"PodManifest","acVersion":"0.8.11","apps":[`)}, "bad.json"},
		{[]string{"--pod-manifest=" + write("none.json", `{"acKind":"PodManifest","acVersion":"0.8.11","apps":[]}`)}, "no apps"},
		{[]string{"--pod-manifest=" + write("unknown.json", `{"acKind":"PodManifest","acVersion":"0.8.11","apps":[{"name":"a","image":{"id":"sha512-`+strings.Repeat("c", 128)+`"}}]}`)}, "sha512-ccc"},
		{[]string{"--pod-manifest=" + write("exec.json", strings.Replace(`{"acKind":"PodManifest","acVersion":"0.8.11","apps":[`+app+`]}`, "/bin/sh", "/bin/nope", 1))}, "/bin/nope"},
		{[]string{"--pod-manifest=" + write("caps.json", strings.Replace(`{"acKind":"PodManifest","acVersion":"0.8.11","apps":[`+app+`]}`,
			`"user":"0"`, `"isolators":[{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_NOPE"]}}],"user":"0"`, 1))}, "CAP_NOPE"},
		{[]string{"--interactive", "--pod-manifest=" + write("two.json", `{"acKind":"PodManifest","acVersion":"0.8.11","apps":[`+app+`,`+strings.Replace(app, `"web"`, `"web2"`, 1)+`]}`)}, "--interactive"},
	} {
		args := append([]string{"run", "--net=none"}, c.args...)
		_, errOut, code := e.Rkt(t, "", args...)
		if code != stage1.ExitFailure || !strings.Contains(errOut, c.want) {
			t.Errorf("rkt %s: code %d, stderr %q; want an error naming %q", strings.Join(args, " "), code, errOut, c.want)
		}
		if left := pods(t, e); len(left) > 0 {
			t.Fatalf("rkt %s left pods behind: %v", strings.Join(args, " "), left)
		}
	}
	out, errOut, code := e.Rkt(t, "", "prepare", "--quiet", "--net=none", "--pod-manifest="+good)
	uuid := strings.TrimSpace(out)
	if code != 0 || len(uuid) != 36 {
		t.Fatalf("prepare --pod-manifest: code %d out %q err %q", code, out, errOut)
	}
	m, _, _ := e.Rkt(t, "", "cat-manifest", uuid)
	for _, want := range []string{`"echo from the manifest"`, `"tier": "1"`, `"name": "plain-data"`, `"echo hello"`, `"cairn-os.org/image-id"`} {
		if !strings.Contains(m, want) {
			t.Errorf("prepared pod's manifest has no %s:\n%s", want, m)
		}
	}
}

// rkt run-prepared's network flags are checked before the pod runs; a refused one leaves the
// pod prepared, to run with better flags.
func TestRunPreparedRefusedChange(t *testing.T) {
	e := newRktEnv(t)
	withBusybox(t, e)
	out, errOut, code := e.Rkt(t, "", "prepare", "--quiet", "--net=none", fixture.ACIName)
	uuid := strings.TrimSpace(out)
	if code != 0 || len(uuid) != 36 {
		t.Fatalf("prepare --quiet: code %d stdout %q stderr %q", code, out, errOut)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--net=nosuchnet"}, "nosuchnet"},
		{[]string{"--hosts-entry=not-an-entry"}, "not-an-entry"},
		{[]string{"--dns=host", "--dns-search=example.com"}, "--dns=host"},
		{[]string{"--hostname=two words"}, "two words"},
	} {
		args := c.args
		_, errOut, code := e.Rkt(t, "", append(append([]string{"run-prepared"}, args...), uuid)...)
		if code != stage1.ExitFailure || !strings.Contains(errOut, c.want) {
			t.Errorf("run-prepared %q: code %d, stderr %q, want an error naming %q", args, code, errOut, c.want)
		}
		if left := pods(t, e); len(left) != 1 || left[0] != "prepared/"+uuid {
			t.Fatalf("run-prepared %q: pods %v, want the pod still prepared", args, left)
		}
	}
}

// The image's use is recorded in the background, and recorded before rkt returns.
func TestPrepareRecordsImageUse(t *testing.T) {
	e := newRktEnv(t)
	withBusybox(t, e)
	st, err := store.Open(e.Dir)
	if err != nil {
		t.Fatal(err)
	}
	before, err := st.Get(context.Background(), fixture.ACIName)
	if err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := e.Rkt(t, "", "prepare", "--net=none", fixture.ACIName); code != 0 {
		t.Fatalf("prepare: code %d stdout %q stderr %q", code, out, errOut)
	}
	after, err := st.Get(context.Background(), fixture.ACIName)
	if err != nil {
		t.Fatal(err)
	}
	if !after.LastUsed.After(before.LastUsed) {
		t.Errorf("last used %v, imported and last used before %v", after.LastUsed, before.LastUsed)
	}
}
