package testenv

import (
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// RemoveCgroupTree removes the cgroup dir and everything below it, deepest first, waiting
// up to 5 s for each to empty (a cgroup whose last process just died is busy a moment);
// what cannot be removed is a test error (a leak). A dir that does not exist is nothing to do.
func RemoveCgroupTree(t TB, dir string) {
	t.Helper()
	var dirs []string
	if err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	}); err != nil {
		t.Errorf("walk cgroup %s: %v", dir, err)
	}
	for _, d := range slices.Backward(dirs) {
		for try := 0; ; try++ {
			err := unix.Rmdir(d)
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			if busy := errors.Is(err, unix.EBUSY) || errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST); !busy || try == 99 {
				t.Errorf("cgroup left: %s: %v", d, err)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
