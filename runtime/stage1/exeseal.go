package stage1

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// libcontainer executes the binary that calls it (rkt, rktlet) again as each container's
// init, through a read-only overlay whose lower layers are the binary's directory and the
// container's state directory, so that a container cannot overwrite the binary. overlayfs
// refuses two layers of which one holds the other (ELOOP), and libcontainer then copies the
// whole binary into memory for every container it starts: about 10 ms for the rkt binary of
// 21 MB on the machine measured (rkt is 15 MB now), a third of a pod's start. That happens when rkt runs from a directory that
// holds its pods (rkt in /tmp with --dir under /tmp, or in /).

var exeCopyWarning sync.Once

// warnExeCopy warns, once per process, when libcontainer will copy this binary for every
// container whose state is under stateRoot.
func warnExeCopy(log *slog.Logger, stateRoot string) {
	exeCopyWarning.Do(func() {
		exe, err := os.Executable()
		if err != nil || log == nil {
			return
		}
		// overlayfs sees the real paths (the state root itself may not exist yet).
		if real, err := filepath.EvalSymlinks(filepath.Dir(stateRoot)); err == nil {
			stateRoot = filepath.Join(real, filepath.Base(stateRoot))
		}
		if dir := filepath.Dir(exe); overlapping(dir, stateRoot) {
			log.Warn("the directory of this binary holds the pods' state: libcontainer cannot seal the binary "+
				"through an overlay, and copies it for every app it starts instead (run it from another directory)",
				"binary", exe, "state", stateRoot)
		}
	})
}

// overlapping says whether one of two clean absolute paths is the other or lies under it.
func overlapping(a, b string) bool { return under(a, b) || under(b, a) }

// under says whether path p is dir or lies under it.
func under(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
