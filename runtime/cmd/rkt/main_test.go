package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/fixture"
)

// rkt links none of what needs the network or OpenPGP: that is what makes it start as fast
// as it does.
func TestLean(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", "seccomp", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		"github.com/cairn-os/cairn/runtime/cli/remote", "github.com/cairn-os/cairn/runtime/fetch",
		"github.com/cairn-os/cairn/runtime/trust", "github.com/ProtonMail/go-crypto/openpgp",
		"github.com/appc/spec/discovery", "github.com/google/go-containerregistry/pkg/v1/remote",
	} {
		if strings.Contains("\n"+string(out), "\n"+p+"\n") {
			t.Errorf("rkt links %s", p)
		}
	}
}

// binaries are rkt and rkt-fetch side by side: $CAIRN_BIN's, or built for the test.
func binaries(t *testing.T) (rkt string) {
	t.Helper()
	if d := os.Getenv("CAIRN_BIN"); d != "" {
		return filepath.Join(d, "rkt")
	}
	d := t.TempDir()
	if out, err := exec.Command("go", "build", "-tags", "seccomp", "-o", d+"/", ".", "../rkt-fetch").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(d, "rkt")
}

// What needs fetching or key trust runs rkt-fetch in rkt's place, with the same arguments;
// without rkt-fetch it fails and names it; the rest works alone.
func TestFull(t *testing.T) {
	testenv.RequireFile(t, fixture.BusyboxPath)
	rkt := binaries(t)
	aci := filepath.Join(t.TempDir(), "hello.aci")
	id, err := fixture.BuildACI(aci, fixture.HelloACI("example.com/hello", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	run := func(bin string, args ...string) (string, string, int) {
		t.Helper()
		var out, errb bytes.Buffer
		c := exec.Command(bin, args...)
		c.Stdout, c.Stderr = &out, &errb
		if err := c.Run(); c.ProcessState == nil {
			t.Fatal(err) // not started
		}
		return out.String(), errb.String(), c.ProcessState.ExitCode()
	}
	data := filepath.Join(t.TempDir(), "rkt")
	if out, errOut, code := run(rkt, "--dir="+data, "--insecure-options=image", "fetch", "--full", aci); code != 0 || strings.TrimSpace(out) != id {
		t.Errorf("fetch: code %d, stdout %q (want %s), stderr %q", code, out, id, errOut)
	}
	if out, errOut, code := run(rkt, "--dir="+data, "image", "list", "--format=json"); code != 0 || !strings.Contains(out, "example.com/hello") {
		t.Errorf("image list after fetch: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if out, _, code := run(rkt, "fetch", "--help"); code != 0 || !strings.Contains(out, "--pull-policy") {
		t.Errorf("fetch --help: code %d, stdout %q", code, out)
	}
	if out, _, code := run(rkt, "help", "trust"); code != 0 || !strings.Contains(out, "--skip-fingerprint-review") {
		t.Errorf("help trust: code %d, stdout %q", code, out)
	}

	alone := filepath.Join(t.TempDir(), "rkt")
	bin, err := os.ReadFile(rkt)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(alone, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := run(alone, "version"); code != 0 || !strings.Contains(out, "rkt Version") {
		t.Errorf("version alone: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	missing := filepath.Join(filepath.Dir(alone), "rkt-fetch")
	if _, errOut, code := run(alone, "--dir="+data, "--insecure-options=image", "fetch", aci); code != 254 || !strings.Contains(errOut, missing) {
		t.Errorf("fetch without rkt-fetch: code %d, stderr %q (want it named)", code, errOut)
	}
	if _, errOut, code := run(alone, "help", "fetch"); code != 254 || !strings.Contains(errOut, missing) {
		t.Errorf("help fetch without rkt-fetch: code %d, stderr %q", code, errOut)
	}
	// A rkt-fetch that is rkt itself (a packaging mistake) fails once, not in a loop.
	if err := os.WriteFile(missing, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := run(alone, "--dir="+data, "--insecure-options=image", "fetch", aci); code != 254 || !strings.Contains(errOut, missing+", executed as the rkt binary that has them, lacks them too") {
		t.Errorf("fetch with rkt as rkt-fetch: code %d, stderr %q", code, errOut)
	}
}

// A pod of an image that must be fetched (a path) runs: rkt-fetch fetches it and runs the pod.
func TestRunThroughFull(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireFile(t, fixture.BusyboxPath)
	rkt := binaries(t)
	aci := filepath.Join(t.TempDir(), "hello.aci")
	if _, err := fixture.BuildACI(aci, fixture.HelloACI("example.com/hello", "hello through rkt-fetch")); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "rkt")
	t.Cleanup(func() {
		for range 2 {
			exec.Command(rkt, "--dir="+data, "gc", "--grace-period=0s").Run()
		}
	})
	out, err := exec.Command(rkt, "--dir="+data, "--insecure-options=image", "run", "--net=none", aci).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "hello through rkt-fetch") {
		t.Errorf("rkt run of a path: %v\n%s", err, out)
	}
}
