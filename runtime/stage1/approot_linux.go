package stage1

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/internal/mount"
)

// ErrMountsLeft says an app's copied root (--no-overlay) still has mounts beneath it, so its
// tree would show volumes and /proc, not what the app changed.
var ErrMountsLeft = errors.New("mounts remain under the app's root")

// AppRoot is an app's root filesystem as the app left it (rkt export): its image's trees
// with what the app changed on top, mounted read-only while it is open.
type AppRoot struct {
	// Dir is the root.
	Dir string
	// Users is the pod's user namespace (--private-users), nil without one: the files the
	// app wrote are owned by its host IDs, which HostToPod maps back.
	Users   *PrivateUsers
	cleanup func() error
}

// OpenAppRoot gives the root of app in the pod at podDir. An overlay root is mounted again,
// read-only, from the app's upper dir over the image's trees, under the pod directory (so
// that a killed export leaves gc the mount to remove); a copied root is the copy itself.
func OpenAppRoot(podDir, app string) (*AppRoot, error) {
	opts, err := ReadOptions(podDir)
	if err != nil {
		return nil, err
	}
	var img *AppImage
	for i := range opts.Apps {
		if opts.Apps[i].Name == app {
			img = &opts.Apps[i]
		}
	}
	if img == nil {
		return nil, fmt.Errorf("pod has no app %q", app)
	}
	base := filepath.Join(podDir, appsDir, app)
	r := &AppRoot{Users: opts.PrivateUsers, cleanup: func() error { return nil }}
	if opts.NoOverlay {
		r.Dir = filepath.Join(base, "rootfs")
		if _, err := os.Stat(r.Dir); err != nil {
			return nil, fmt.Errorf("app %s: %w", app, err)
		}
		left, err := mount.Beneath(r.Dir)
		if err != nil {
			return nil, err
		}
		if len(left) > 0 {
			return nil, fmt.Errorf("app %s: %w (%d)", app, ErrMountsLeft, len(left))
		}
		return r, nil
	}
	upper := filepath.Join(base, "upper")
	if _, err := os.Stat(upper); err != nil {
		return nil, fmt.Errorf("app %s: what it changed: %w", app, err)
	}
	dir, err := os.MkdirTemp(base, "export-")
	if err != nil {
		return nil, err
	}
	m := ExportMount(img.Layers, upper, dir)
	if err := m.Apply(); err != nil {
		return nil, errors.Join(fmt.Errorf("app %s: %w", app, err), os.Remove(dir))
	}
	r.Dir = dir
	r.cleanup = func() error {
		if err := m.Unmount(unix.MNT_DETACH); err != nil {
			return err
		}
		return os.Remove(dir)
	}
	return r, nil
}

// Close unmounts the root, if OpenAppRoot mounted it.
func (r *AppRoot) Close() error { return r.cleanup() }

// HostToPod maps a host ID of the app's files to the pod's: IDs in the pod's block go back
// to the pod's own, others stay (the image's trees keep the image's IDs).
func (r *AppRoot) HostToPod(id int) int {
	if u := r.Users; u != nil && id >= int(u.Shift) && id < int(u.Shift)+int(u.Count) {
		return id - int(u.Shift)
	}
	return id
}
