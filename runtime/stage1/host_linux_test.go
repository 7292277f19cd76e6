package stage1

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// A process that exited between the listing and the signal is not an error; any other
// failure is, naming the process.
func TestKill(t *testing.T) {
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		pids    []int
		sig     unix.Signal
		wantErr bool
	}{
		{"none", nil, unix.SIGKILL, false},
		{"exited", []int{gone.Process.Pid}, unix.SIGKILL, false},
		{"alive", []int{os.Getpid()}, 0, false},
		{"bad signal", []int{gone.Process.Pid, os.Getpid()}, unix.Signal(1000), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := kill(tc.pids, tc.sig)
			if (err != nil) != tc.wantErr {
				t.Fatalf("kill(%v, %d): %v, want error %t", tc.pids, tc.sig, err, tc.wantErr)
			}
		})
	}
}

// cgroupDirs lists deepest first; a cgroup that is gone lists nothing.
func TestCgroupDirs(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a/b/c", "d"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "a", "cgroup.procs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dirs, err := cgroupDirs(root)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(dirs); i++ {
		if len(dirs[i]) > len(dirs[i-1]) {
			t.Fatalf("not deepest first: %v", dirs)
		}
	}
	slices.Sort(dirs)
	want := []string{root, filepath.Join(root, "a"), filepath.Join(root, "a/b"), filepath.Join(root, "a/b/c"), filepath.Join(root, "d")}
	if !slices.Equal(dirs, want) {
		t.Fatalf("cgroupDirs = %v, want %v", dirs, want)
	}
	dirs, err = cgroupDirs(filepath.Join(root, "gone"))
	if err != nil || len(dirs) != 0 {
		t.Fatalf("cgroupDirs of a missing cgroup: %v, %v; want nothing", dirs, err)
	}
}
