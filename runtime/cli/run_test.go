package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
	"github.com/cairn-os/cairn/runtime/store"
)

// withBusybox imports the busybox ACI (app /bin/sh, users root and app) into e's store.
func withBusybox(t *testing.T, e *rktEnv) {
	t.Helper()
	testenv.RequireFile(t, fixture.BusyboxPath)
	st, err := store.Open(e.dir)
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
	if _, err := st.ImportACI(context.Background(), &buf, store.ImportOptions{Name: fixture.ACIName, Trusted: true}); err != nil {
		t.Fatal(err)
	}
}

// pods lists every pod directory, in any phase.
func (e *rktEnv) pods(t *testing.T) []string {
	t.Helper()
	var all []string
	for _, ph := range pod.Phases {
		ents, err := os.ReadDir(filepath.Join(e.dir, "pods", string(ph)))
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
			_, errOut, code := e.rkt(t, "", args...)
			if code != stage1.ExitFailure || !strings.Contains(errOut, c.want) {
				t.Errorf("rkt %s: code %d, stderr %q; want %d and an error naming %q", strings.Join(args, " "), code, errOut, stage1.ExitFailure, c.want)
			}
			if left := e.pods(t); len(left) > 0 {
				t.Fatalf("rkt %s left pods behind: %v", strings.Join(args, " "), left)
			}
		}
	}
	if out, _, code := e.rkt(t, "", "list", "--no-legend"); code != 0 || strings.TrimSpace(out) != "" {
		t.Errorf("rkt list after the failures: code %d, %q", code, out)
	}
}
