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
