package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/image/build"
	"github.com/cairn-os/cairn/internal/testenv"
)

func run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsageAndErrors(t *testing.T) {
	if code, _, e := run(); code != 2 || !strings.Contains(e, "usage") {
		t.Errorf("no args: %d %q", code, e)
	}
	if code, _, e := run("frobnicate"); code != 2 || !strings.Contains(e, `unknown command "frobnicate"`) {
		t.Errorf("unknown: %d %q", code, e)
	}
	if code, _, e := run("build"); code != 2 || !strings.Contains(e, "-o DIR is required") {
		t.Errorf("build without -o: %d %q", code, e)
	}
	bad := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(bad, []byte(`{"verison": "1"}`), 0o644)
	if code, _, e := run("build", "-config", bad, "-o", t.TempDir()); code != 1 || !strings.Contains(e, "verison") {
		t.Errorf("bad config: %d %q", code, e)
	}
}

func TestPackagesAndConfig(t *testing.T) {
	code, out, _ := run("packages")
	if code != 0 || !strings.Contains(out, "systemd") || !strings.Contains(out, "PID 1") {
		t.Errorf("packages: %d %q", code, out)
	}
	code, out, _ = run("config")
	var c build.Config
	if code != 0 || json.Unmarshal([]byte(out), &c) != nil || c.Suite != "bookworm" || len(c.Packages) == 0 {
		t.Errorf("config: %d %q", code, out)
	}
}

func TestSysext(t *testing.T) {
	if code, _, e := run("sysext", "-o", t.TempDir()); code != 2 || !strings.Contains(e, "-bin DIR") {
		t.Errorf("sysext without -bin: %d %q", code, e)
	}
	testenv.RequireCommand(t, "mkfs.erofs")
	testenv.RequireCommand(t, "veritysetup")
	bin := t.TempDir()
	for _, b := range []string{"kubelet", "kubeadm", "kubectl"} {
		os.WriteFile(filepath.Join(bin, b), []byte("#!/bin/sh\n"), 0o755)
	}
	out := t.TempDir()
	code, stdout, stderr := run("sysext", "-bin", bin, "-o", out, "-os-version", "1.2.0", "-format", "json")
	if code != 0 {
		t.Fatalf("sysext: %d\n%s", code, stderr)
	}
	var res struct {
		Name      string `json:"name"`
		OSVersion string `json:"os_version"`
		Path      string `json:"path"`
		RootHash  string `json:"root_hash"`
		Size      int64  `json:"size"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Name != "kubernetes-v1.37.2" || res.OSVersion != "1.2.0" || len(res.RootHash) != 64 ||
		res.Path != filepath.Join(out, "kubernetes-v1.37.2.raw") || res.Size == 0 {
		t.Errorf("result %+v (%v) from %q", res, err, stdout)
	}
	if !strings.Contains(stderr, "sysext kubernetes-v1.37.2: erofs done") {
		t.Errorf("no progress on stderr: %q", stderr)
	}
}
