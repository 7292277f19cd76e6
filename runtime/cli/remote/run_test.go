package remote

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// rkt's pull policies for run and prepare: never (the store), new (fetch what is not
// there), update (ask each time).
func TestPreparePullPolicy(t *testing.T) {
	e := newRktEnv(t)
	testenv.RequireFile(t, fixture.BusyboxPath)
	aci := filepath.Join(t.TempDir(), "hello.aci")
	if _, err := fixture.BuildACI(aci, fixture.HelloACI("example.com/hello", "hi")); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := e.Rkt(t, "", "prepare", "--net=none", "--pull-policy=never", "example.com/hello"); code != stage1.ExitFailure || !strings.Contains(errOut, "example.com/hello") {
		t.Errorf("never, not in the store: code %d stderr %q", code, errOut)
	}
	if _, errOut, code := e.Rkt(t, "", "prepare", "--net=none", "--pull-policy=sometimes", aci); code != stage1.ExitFailure || !strings.Contains(errOut, "sometimes") {
		t.Errorf("unknown policy: code %d stderr %q", code, errOut)
	}
	for _, policy := range []string{"update", "new", "never"} {
		if out, errOut, code := e.Rkt(t, "", "--insecure-options=image", "prepare", "--net=none", "--pull-policy="+policy, aci); code != 0 || len(strings.TrimSpace(out)) != 36 {
			t.Errorf("--pull-policy=%s: code %d stdout %q stderr %q", policy, code, out, errOut)
		}
	}
}
