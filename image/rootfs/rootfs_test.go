package rootfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/testenv"
)

func spec(t *testing.T) Spec {
	src := filepath.Join(t.TempDir(), "debian.sources")
	os.WriteFile(src, []byte("Types: deb\nURIs: file:///nonexistent\nSuites: bookworm\nComponents: main\n"), 0o644)
	return Spec{Suite: "bookworm", Sources: src, Packages: []string{"systemd", "iproute2"}, SourceDateEpoch: 1700000000, DebCache: "/cache/debs"}
}

func TestPlan(t *testing.T) {
	s := spec(t)
	argv := s.Plan("/out")
	line := strings.Join(argv, "\n")
	for _, want := range []string{"mmdebstrap", "--variant=essential", "--include=systemd,iproute2",
		"--setup-hook=sync-in /cache/debs /var/cache/apt/archives/", "--customize-hook=sync-out /var/cache/apt/archives /cache/debs",
		"--skip=essential/unlink", "--dpkgopt=path-exclude=/usr/share/man/*"} {
		if !strings.Contains(line, want) {
			t.Errorf("plan lacks %q", want)
		}
	}
	// The suite, target and the machine's sources file come last, in that order.
	if n := len(argv); argv[n-3] != "bookworm" || argv[n-2] != "/out" || argv[n-1] != s.Sources {
		t.Errorf("tail %q", argv[len(argv)-3:])
	}
}

func TestKey(t *testing.T) {
	s := spec(t)
	k1, err := s.Key()
	if err != nil {
		t.Fatal(err)
	}
	s2 := s
	s2.Packages = []string{"iproute2", "systemd"} // order does not matter
	if k2, _ := s2.Key(); k2 != k1 {
		t.Error("package order changed the key")
	}
	s2.Packages = append(s2.Packages, "strace")
	if k3, _ := s2.Key(); k3 == k1 {
		t.Error("a new package did not change the key")
	}
	os.WriteFile(s.Sources, []byte("Types: deb\nURIs: file:///other\n"), 0o644)
	if k4, _ := s.Key(); k4 == k1 {
		t.Error("other apt sources did not change the key")
	}
	s.Sources = "/nonexistent"
	if _, err := s.Key(); err == nil {
		t.Error("missing sources file accepted")
	}
}

func TestUnknownPackage(t *testing.T) {
	for log, want := range map[string]string{
		"I: running apt-get update...\nE: Unable to locate package nosuchpkg\nE: apt-get failed\n": "nosuchpkg",
		"E: Package 'oldthing' has no installation candidate\n":                                    "oldthing",
	} {
		if got, ok := UnknownPackage(log); !ok || got != want {
			t.Errorf("%q: got %q %v", log, got, ok)
		}
	}
	if _, ok := UnknownPackage("E: something else\n"); ok {
		t.Error("matched an unrelated error")
	}
}

// TestUnknownPackageIsNamed runs mmdebstrap for real (apt update against the machine's
// sources, no package download) with a package that does not exist.
func TestUnknownPackageIsNamed(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "mmdebstrap")
	src := testenv.RequireFile(t, "/etc/apt/sources.list.d/debian.sources")
	cache := t.TempDir()
	s := Spec{Suite: "bookworm", Sources: src, Packages: []string{"cairn-no-such-package"}, SourceDateEpoch: 1700000000}
	_, _, err := Build(context.Background(), s, cache, nil)
	if !errors.Is(err, ErrUnknownPackage) || !strings.Contains(err.Error(), "cairn-no-such-package") {
		t.Fatalf("want ErrUnknownPackage naming the package, got %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(cache, "rootfs")); len(ents) != 0 {
		t.Fatalf("failed build left %v", ents)
	}
}

func FuzzUnknownPackage(f *testing.F) {
	f.Add("E: Unable to locate package x\n")
	f.Add("E: Package 'y' has no installation candidate")
	f.Fuzz(func(t *testing.T, s string) {
		if name, ok := UnknownPackage(s); ok && (name == "" || strings.ContainsAny(name, " \n'")) {
			t.Fatalf("%q -> %q", s, name)
		}
	})
}
