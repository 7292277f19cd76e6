package stage1

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"

	"github.com/moby/sys/user"
	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// openInRoot opens name inside root as if root were "/": symlinks cannot lead out of it.
func openInRoot(root, name string, flags uint64) (*os.File, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(rfd)
	fd, err := unix.Openat2(rfd, name, &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

func readInRoot(root, name string) io.Reader {
	f, err := openInRoot(root, name, unix.O_RDONLY)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4<<20))
	if err != nil {
		return nil
	}
	return bytes.NewReader(b)
}

// resolveUser turns the app's user and group (numbers or names) into IDs using the image's
// /etc/passwd and /etc/group, as appc says.
func resolveUser(ap *AppPlan) error {
	a := ap.App.App
	spec := a.User
	if spec == "" {
		spec = "0"
	}
	if a.Group != "" {
		spec += ":" + a.Group
	}
	var passwd, group io.Reader
	// Only read the image's databases when a name needs them.
	if _, err := strconv.Atoi(a.User); err != nil || (a.Group != "" && !isNumber(a.Group)) {
		passwd = readInRoot(ap.Rootfs, "/etc/passwd")
		group = readInRoot(ap.Rootfs, "/etc/group")
	}
	eu, err := user.GetExecUser(spec, &user.ExecUser{}, passwd, group)
	if err != nil {
		return fmt.Errorf("user %q group %q: %w", a.User, a.Group, err)
	}
	ap.UID, ap.GID = uint32(eu.Uid), uint32(eu.Gid)
	for _, g := range a.SupplementaryGIDs {
		ap.AdditionalGIDs = append(ap.AdditionalGIDs, uint32(g))
	}
	return nil
}

func isNumber(s string) bool { _, err := strconv.Atoi(s); return err == nil }

// checkExec fails early, with a clear error, when the app's command is not in its root.
func checkExec(ap *AppPlan) error {
	a := ap.App.App
	name := a.Exec[0]
	if strings.Contains(name, "/") {
		if !path.IsAbs(name) {
			name = path.Join(a.WorkingDirectory, name)
		}
		return execIn(ap.Rootfs, name)
	}
	pathEnv := DefaultPath
	for _, ev := range a.Environment {
		if ev.Name == "PATH" {
			pathEnv = ev.Value
		}
	}
	for d := range strings.SplitSeq(pathEnv, ":") {
		if d != "" && execIn(ap.Rootfs, path.Join(d, name)) == nil {
			return nil
		}
	}
	return fmt.Errorf("%q (PATH=%s): %w", name, pathEnv, ErrExecNotFound)
}

func execIn(root, name string) error {
	f, err := openInRoot(root, name, unix.O_PATH)
	if err != nil {
		return fmt.Errorf("%q: %w", name, ErrExecNotFound)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%q is not an executable file: %w", name, ErrExecNotFound)
	}
	return nil
}

// copyLayers fills dir with the image's trees, lowest first (--no-overlay). Overlay whiteouts
// in upper trees remove what lower ones put there.
func copyLayers(layers []string, dir string) error {
	for _, l := range layers {
		cmd := exec.Command("cp", "-a", "--reflink=auto", l+"/.", dir+"/")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("copy %s: %v: %s", l, err, out)
		}
	}
	return nil
}

// startInteractive starts an app on a terminal: libcontainer hands back the pty master over a
// socket, and rkt run copies between it and its own stdin/stdout (terminal_linux.go). The
// caller's terminal is put back, after the app's last output, by r.restore at the end of Run.
func (r *Runner) startInteractive(podDir string, c *libcontainer.Container, proc *libcontainer.Process, a *app) error {
	req, err := requestConsole(proc, r.Stdin, r.Stdout)
	if err != nil {
		return err
	}
	defer req.close()
	err = c.Start(proc)
	req.started()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	a.process = proc
	a.pid, _ = proc.Pid()
	if err := joinNestedUnified(podDir, a.name, a.pid); err != nil {
		return fmt.Errorf("unified cgroup: %w", err)
	}
	if err := c.Exec(); err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	a.execd = true
	master, err := req.receive()
	if err != nil {
		return err
	}
	con, err := attachConsole(master, r.Stdin, r.Stdout)
	if err != nil {
		master.Close()
		return err
	}
	r.restore = con.Close // --interactive allows one app
	return nil
}

var errNotRunning = errors.New("pod is not running")
