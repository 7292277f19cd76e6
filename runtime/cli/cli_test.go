package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/stage1"
)

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(""), &out, &errb, Options{})
	return out.String(), errb.String(), code
}

func TestVersion(t *testing.T) {
	out, _, code := run(t, "version")
	if code != 0 || !strings.Contains(out, "rkt Version: ") || !strings.Contains(out, "appc Version: 0.8.11") {
		t.Fatalf("version: code %d, out %q", code, out)
	}
}

func TestUnknownCommandFails(t *testing.T) {
	_, errOut, code := run(t, "no-such-command")
	if code == 0 || !strings.Contains(errOut, "no-such-command") {
		t.Fatalf("code %d, stderr %q; want failure naming the command", code, errOut)
	}
}

// rkt's stage1 image flags are refused with the reason, before anything is done, wherever
// they stand on the command line.
func TestStage1ImageFlagsRefused(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		flag string
		args []string
	}{
		{"--stage1-path", []string{"--stage1-path=/tmp/stage1.aci", "run", "coreos.com/etcd:v2.0.0"}},
		{"--stage1-url", []string{"run", "--stage1-url=https://example.com/stage1.aci", "coreos.com/etcd:v2.0.0"}},
		{"--stage1-name", []string{"prepare", "--stage1-name=coreos.com/rkt/stage1-coreos", "coreos.com/etcd:v2.0.0"}},
		{"--stage1-hash", []string{"--stage1-hash=sha512-0123", "list"}},
		{"--stage1-from-dir", []string{"list", "--stage1-from-dir=stage1-fly.aci"}},
	} {
		_, errOut, code := run(t, append([]string{"--dir=" + dir}, c.args...)...)
		if code != 254 || !strings.Contains(errOut, c.flag+": Cairn's stage1 is built in") {
			t.Errorf("rkt %q: code %d, stderr %q; want 254 naming %s", c.args, code, errOut, c.flag)
		}
	}
}

// Without a Remote (and no full binary to execute), what needs one fails and says so; the
// rest of the command line, its help included, is all there.
func TestWithoutRemote(t *testing.T) {
	out, _, code := run(t, "help")
	for _, c := range []string{"fetch", "trust", "config", "run", "app"} {
		if code != 0 || !strings.Contains(out, "\n  "+c+" ") {
			t.Errorf("help: code %d, no %s in %q", code, c, out)
		}
	}
	for _, args := range [][]string{{"fetch", "example.com/app"}, {"trust", "--root", "k.asc"}, {"config"}, {"fetch", "--help"}} {
		if _, errOut, code := run(t, args...); code != stage1.ExitFailure || !strings.Contains(errOut, "rkt "+args[0]+": "+errRemote.Error()) {
			t.Errorf("%v: code %d, stderr %q", args, code, errOut)
		}
	}
	if _, errOut, code := run(t, "help", "fetch"); code != stage1.ExitFailure || !strings.Contains(errOut, "rkt help fetch: "+errRemote.Error()) {
		t.Errorf("help fetch: code %d, stderr %q", code, errOut)
	}
	e := newRktEnv(t)
	if _, errOut, code := e.Rkt(t, "", "prepare", "--net=none", "--pull-policy=new", "example.com/app"); code != stage1.ExitFailure || !strings.Contains(errOut, "image example.com/app: "+errRemote.Error()) {
		t.Errorf("prepare of an image not in the store: code %d, stderr %q", code, errOut)
	}
	// An image that must be fetched is found out before any work on the others: the full rkt,
	// executed in this one's place, would do it again (the warning about the stored image's
	// mount point that no volume satisfies, twice).
	withBusybox(t, e)
	if _, errOut, code := e.Rkt(t, "", "prepare", "--net=none", fixture.ACIName, "example.com/app"); code != stage1.ExitFailure || !strings.Contains(errOut, errRemote.Error()) || strings.Contains(errOut, "WARN") {
		t.Errorf("prepare of a stored image and one to fetch: code %d, stderr %q", code, errOut)
	}
	if _, errOut, code := e.Rkt(t, "", "prepare", "--net=none", "--pull-policy=update", fixture.ACIName); code != stage1.ExitFailure || !strings.Contains(errOut, errRemote.Error()) {
		t.Errorf("prepare --pull-policy=update: code %d, stderr %q", code, errOut)
	}
	// An ID names what is in the store: nothing fetches it, so it fails here.
	missing := "sha512-" + strings.Repeat("0", 64)
	if _, errOut, code := e.Rkt(t, "", "prepare", "--net=none", missing); code != stage1.ExitFailure || strings.Contains(errOut, errRemote.Error()) || !strings.Contains(errOut, missing) {
		t.Errorf("prepare of a missing ID: code %d, stderr %q", code, errOut)
	}
	if ps := pods(t, e); len(ps) != 0 {
		t.Errorf("pods left: %v", ps)
	}
}
