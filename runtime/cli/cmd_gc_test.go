package cli

import (
	"os"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// rkt gc's flags and messages on pods made on disk: --mark-only marks and removes nothing,
// the grace period keeps a marked pod (said on stderr), --expire-prepared collects a
// prepared pod that never ran.
func TestGCCommand(t *testing.T) {
	dir := t.TempDir()
	ps := pod.NewStore(dir)
	exited := fakePod(t, ps, "nginx")
	if err := os.Remove(exited.File(stage1.NetStateFile)); err != nil { // no network to leave
		t.Fatal(err)
	}
	exited.Close()
	prepared, err := ps.Create()
	if err != nil {
		t.Fatal(err)
	}
	if err := prepared.MarkPrepared(); err != nil {
		t.Fatal(err)
	}
	phase := func(uuid string) pod.Phase {
		p, err := ps.Get(uuid)
		if err != nil {
			return ""
		}
		return p.Phase
	}

	out, errOut, code := run(t, "--dir", dir, "gc", "--mark-only", "--grace-period=0s", "--expire-prepared=0s")
	if code != 0 || out != "Moving pod \""+exited.UUID+"\" to garbage\n" || phase(exited.UUID) != pod.PhaseExitedGarbage || phase(prepared.UUID) != pod.PhasePrepared {
		t.Fatalf("gc --mark-only: %d %q %q; exited pod in %q, prepared in %q", code, out, errOut, phase(exited.UUID), phase(prepared.UUID))
	}
	out, errOut, code = run(t, "--dir", dir, "gc")
	if code != 0 || out != "" || !strings.Contains(errOut, "pod \""+exited.UUID+"\" not removed: still within grace period (30m0s)") || phase(prepared.UUID) != pod.PhasePrepared {
		t.Fatalf("gc within the grace period: %d %q %q", code, out, errOut)
	}
	out, errOut, code = run(t, "--dir", dir, "gc", "--grace-period=0s", "--expire-prepared=0s")
	for _, want := range []string{
		"Moving expired prepared pod \"" + prepared.UUID + "\" to garbage\n",
		"Garbage collecting pod \"" + exited.UUID + "\"\n",
		"Garbage collecting pod \"" + prepared.UUID + "\"\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("gc: stdout %q lacks %q", out, want)
		}
	}
	if code != 0 || phase(exited.UUID) != "" || phase(prepared.UUID) != "" {
		t.Fatalf("gc: %d %q %q; pods left in %q and %q", code, out, errOut, phase(exited.UUID), phase(prepared.UUID))
	}
}
