package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/klauspost/compress/gzip"
	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/internal/atomicfile"
	"github.com/cairn-os/cairn/runtime/aci"
	"github.com/cairn-os/cairn/runtime/image"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage0"
	"github.com/cairn-os/cairn/runtime/stage1"
)

func init() {
	register(func(env *Env) *cobra.Command {
		var appName string
		var overwrite bool
		c := &cobra.Command{
			Use:   "export [--app=APPNAME] UUID OUTPUT.aci",
			Short: "Export an app of an exited pod to an ACI file",
			Long: `Writes an app of an exited pod as an ACI (gzip-compressed): its image's manifest, and its
root filesystem as the app left it, with what it changed. A pod of one app needs no --app.`,
			Args: cobra.ExactArgs(2),
			RunE: func(_ *cobra.Command, args []string) error {
				return exportPod(env, args[0], args[1], appName, overwrite)
			},
		}
		c.Flags().StringVar(&appName, "app", "", "name of the app to export within the specified pod")
		c.Flags().BoolVar(&overwrite, "overwrite", false, "overwrite the output ACI if it exists")
		return c
	})
}

func exportPod(env *Env, ref, out, appName string, overwrite bool) error {
	if filepath.Ext(out) != schema.ACIExtension {
		return fmt.Errorf("extension must be %s (given %s)", schema.ACIExtension, out)
	}
	p, err := lockExited(podStore(env), ref)
	if err != nil {
		return err
	}
	defer p.Close()
	m, err := p.Manifest()
	if err != nil {
		return err
	}
	if appName == "" {
		if appName, err = onlyApp(env, m, "export"); err != nil {
			return err
		}
	}
	ra := m.Apps.Get(types.ACName(appName))
	if ra == nil {
		return fmt.Errorf("app %s is not present in pod %s", appName, p.UUID)
	}
	if !overwrite {
		if _, err := os.Lstat(out); err == nil {
			return fmt.Errorf("%s exists (use --overwrite)", out)
		}
	}
	im, err := exportManifest(env, ra)
	if err != nil {
		return err
	}
	root, err := stage1.OpenAppRoot(p.Path(), appName)
	if err != nil {
		return fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	err = atomicfile.Write(out, 0o644, func(w io.Writer) error { return writeACI(env.Ctx, w, im, root) })
	if cerr := root.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("pod %s: app %s: %w", p.UUID, appName, cerr))
	}
	if err != nil {
		return fmt.Errorf("export pod %s app %s: %w", p.UUID, appName, err)
	}
	return nil
}

// lockExited finds an exited pod and takes its lock shared, so that gc neither moves nor
// removes it while it is read; a running pod (whose rkt run holds the lock, or whose apps
// run on without it) is refused.
func lockExited(ps *pod.Store, ref string) (*pod.Pod, error) {
	p, err := ps.Get(ref)
	if err != nil {
		return nil, err
	}
	for try := 0; ; try++ {
		err = p.Lock(false, false)
		if !errors.Is(err, pod.ErrNotFound) || try == 2 {
			break
		}
		// Moved to another phase (gc's mark) between the lookup and the lock.
		if err := p.Refresh(); err != nil {
			return nil, err
		}
	}
	if errors.Is(err, pod.ErrLocked) {
		return nil, fmt.Errorf("pod %s is %s: only exited pods can be exported", p.UUID, p.State())
	}
	if err != nil {
		return nil, err
	}
	if st := p.State(); st != pod.Exited && st != pod.ExitedGarbage {
		p.Close()
		return nil, fmt.Errorf("pod %s is %s: only exited pods can be exported", p.UUID, st)
	}
	return p, nil
}

// exportManifest is the image manifest the exported ACI carries: the app's image's (an OCI
// image's config in appc terms), with no dependencies or path whitelist, since the rootfs
// written is the whole tree. An image no longer in the store is described from the pod's
// manifest: the app as it ran.
func exportManifest(env *Env, ra *schema.RuntimeApp) (*schema.ImageManifest, error) {
	im := schema.BlankImageManifest()
	if ra.Image.Name != nil {
		im.Name = *ra.Image.Name
	}
	im.Labels = ra.Image.Labels
	im.App = ra.App
	id, ok := ra.Annotations.Get(stage1.AnnotationImageID)
	if !ok {
		id = ra.Image.ID.String()
	}
	var img *image.Image
	s, err := openStore(env)
	if err == nil {
		img, err = s.Get(env.Ctx, id)
	}
	if err != nil {
		env.Log.Warn("the app's image is not in the store: the exported image's manifest is made from the pod's", "image", id, "err", err)
		return im, nil
	}
	switch img.Format {
	case image.ACI:
		m := *img.ACIManifest
		m.Dependencies, m.PathWhitelist = nil, nil
		return &m, nil
	case image.OCI:
		if im.App, err = stage0.AppFromImage(img); err != nil {
			return nil, err
		}
	}
	return im, nil
}

// writeACI writes the gzip-compressed ACI of manifest m and the tree of root.
func writeACI(ctx context.Context, w io.Writer, m *schema.ImageManifest, root *stage1.AppRoot) error {
	gz := gzip.NewWriter(w)
	aw, err := aci.NewWriter(gz, m, time.Now())
	if err != nil {
		return err
	}
	if err := aw.AddTree(ctx, root.Dir, root.HostToPod); err != nil {
		return err
	}
	if err := aw.Close(); err != nil {
		return err
	}
	return gz.Close()
}
