package testenv

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestToolDir(t *testing.T) {
	for _, tc := range []struct {
		out, want string
		ok        bool
	}{
		{"/cache/kubernetes-v1.37.2\n", "/cache/kubernetes-v1.37.2", true},
		{"go: downloading x\n/cache/coredns-v1.14.6\n\n", "/cache/coredns-v1.14.6", true},
		{"/first\n/second\n", "/second", true},
		{"", "", false},
		{"cache/relative\n", "", false},
		{"/cache/dir\nbuilt\n", "", false},
	} {
		got, err := toolDir([]byte(tc.out))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("toolDir(%q) = %q, %v; want %q, ok %v", tc.out, got, err, tc.want, tc.ok)
		}
	}
}

// runTool finds the script in a directory above the test's, passes the arguments, and
// returns the directory printed; the script's stderr goes where it is told, and a script
// that fails or prints no directory is an error naming it.
func TestRunTool(t *testing.T) {
	root := t.TempDir()
	from := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(from, 0o755); err != nil {
		t.Fatal(err)
	}
	script := func(name, body string) {
		p := filepath.Join(root, "tools", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script("ok/build.sh", `echo "building $*" >&2; echo "/cache/x-$1"`)
	script("fails/build.sh", "echo broken >&2; exit 3")
	script("relative/build.sh", "echo cache/x")

	var stderr Buffer
	dir, err := runTool(t.Context(), from, "ok/build.sh", []string{"v1", "v2"}, &stderr)
	if err != nil || dir != "/cache/x-v1" {
		t.Errorf("ok/build.sh: %q, %v; want /cache/x-v1", dir, err)
	}
	if stderr.String() != "building v1 v2\n" {
		t.Errorf("ok/build.sh's stderr: %q", stderr.String())
	}
	for _, tc := range []struct{ script, want string }{
		{"fails/build.sh", "tools/fails/build.sh a: exit status 3"},
		{"relative/build.sh", `tools/relative/build.sh a: printed "cache/x"`},
		{"missing/build.sh", "tools/missing/build.sh a: not found"},
	} {
		_, err := runTool(t.Context(), from, tc.script, []string{"a"}, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error with %q", tc.script, err, tc.want)
		}
	}
	if _, err := runTool(t.Context(), from, "missing/build.sh", nil, &stderr); !errors.Is(err, errNoTool) {
		t.Errorf("missing/build.sh: %v; want errNoTool", err)
	}
}
