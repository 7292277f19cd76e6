package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/runtime/image"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
	"github.com/cairn-os/cairn/runtime/store"
)

func init() { register(newImageCommand) }

func newImageCommand(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Operate on image(s) in the local store",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(
		newImageListCommand(env),
		newImageRmCommand(env),
		newImageGCCommand(env),
		newImageExportCommand(env),
		newImageRenderCommand(env, "extract", "Extract a stored image to a directory", false),
		newImageRenderCommand(env, "render", "Render a stored image to a directory with all its dependencies", true),
		newImageCatManifestCommand(env),
		newImageVerifyCommand(env),
	)
	return cmd
}

func openStore(env *Env) (*store.Store, error) {
	s, err := store.Open(env.G.Dir)
	if err != nil {
		return nil, err
	}
	if env.Log != nil {
		s.Log = env.Log
	}
	return s, nil
}

// imageListEntry is one image in `rkt image list --format=json`, with rkt's field names;
// times are Unix nanoseconds, as rkt printed them.
type imageListEntry struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	ImportTime   int64  `json:"import_time"`
	LastUsedTime int64  `json:"last_used_time"`
	Size         int64  `json:"size"`
}

var imageFields = map[string]string{
	"id": "ID", "name": "NAME", "size": "SIZE", "importtime": "IMPORT TIME", "lastused": "LAST USED", "latest": "LATEST",
}

func newImageListCommand(env *Env) *cobra.Command {
	var (
		fields, format, sortBy, order string
		full, noLegend                bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List images in the local store",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fs := strings.Split(fields, ",")
			for _, f := range fs {
				if _, ok := imageFields[f]; !ok {
					return fmt.Errorf("--fields: unknown field %q (known: id,name,size,importtime,lastused,latest)", f)
				}
			}
			if _, ok := imageFields[sortBy]; !ok || sortBy == "latest" {
				return fmt.Errorf("--sort: unknown field %q", sortBy)
			}
			if order != "asc" && order != "desc" {
				return fmt.Errorf("--order: %q is neither asc nor desc", order)
			}
			s, err := openStore(env)
			if err != nil {
				return err
			}
			imgs, err := s.List(env.Ctx)
			if err != nil {
				return err
			}
			sortImages(imgs, sortBy, order == "desc")
			switch format {
			case "json", "json-pretty":
				es := make([]imageListEntry, 0, len(imgs))
				for _, i := range imgs {
					es = append(es, imageListEntry{ID: i.ID, Name: i.NameVersion(), ImportTime: i.ImportTime.UnixNano(), LastUsedTime: i.LastUsed.UnixNano(), Size: i.Size})
				}
				return writeJSON(env.Stdout, es, format == "json-pretty")
			case "", "tabbed":
			default:
				return fmt.Errorf("--format: %q is not one of json, json-pretty", format)
			}
			latest := latestImages(imgs)
			tw := tabwriter.NewWriter(env.Stdout, 0, 8, 1, '\t', 0)
			if !noLegend {
				var hs []string
				for _, f := range fs {
					hs = append(hs, imageFields[f])
				}
				fmt.Fprintln(tw, strings.Join(hs, "\t"))
			}
			now := time.Now()
			for _, i := range imgs {
				var cols []string
				for _, f := range fs {
					cols = append(cols, imageColumn(i, f, full, now, latest[i.ID]))
				}
				fmt.Fprintln(tw, strings.Join(cols, "\t"))
			}
			return tw.Flush()
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&fields, "fields", "id,name,size,importtime,lastused", "comma-separated list of fields to display: id,name,size,importtime,lastused,latest")
	fl.StringVar(&sortBy, "sort", "importtime", "sort the output by field: id,name,size,importtime,lastused")
	fl.StringVar(&order, "order", "asc", "sort order: asc or desc")
	fl.BoolVar(&full, "full", false, "use long output format")
	fl.BoolVar(&noLegend, "no-legend", false, "suppress a legend with the list")
	fl.StringVar(&format, "format", "", "choose the output format: json, json-pretty")
	return cmd
}

func imageColumn(i *image.Image, field string, full bool, now time.Time, latest bool) string {
	switch field {
	case "id":
		if full {
			return i.ID
		}
		return listID(i.ID)
	case "name":
		return i.NameVersion()
	case "size":
		if full {
			return fmt.Sprint(i.Size)
		}
		return strings.ReplaceAll(humanize.IBytes(uint64(i.Size)), " ", "")
	case "importtime":
		return when(i.ImportTime, full, now)
	case "lastused":
		return when(i.LastUsed, full, now)
	case "latest":
		return fmt.Sprint(latest)
	}
	return ""
}

// listID shortens an ID as rkt image list does: the algorithm and 12 hex digits.
func listID(id string) string {
	if len(id) > 7+12 {
		return id[:7+12]
	}
	return id
}

func when(t time.Time, full bool, now time.Time) string {
	if full {
		return t.Local().Format("2006-01-02 15:04:05.999 -0700 MST")
	}
	return humanize.RelTime(t, now, "ago", "from now")
}

// latestImages marks, per name, the most recently imported image.
func latestImages(imgs []*image.Image) map[string]bool {
	newest := map[string]*image.Image{}
	for _, i := range imgs {
		if n := newest[i.Name]; n == nil || i.ImportTime.After(n.ImportTime) {
			newest[i.Name] = i
		}
	}
	m := map[string]bool{}
	for _, i := range newest {
		m[i.ID] = true
	}
	return m
}

func sortImages(imgs []*image.Image, by string, desc bool) {
	less := func(a, b *image.Image) bool {
		switch by {
		case "id":
			return a.ID < b.ID
		case "name":
			return a.NameVersion() < b.NameVersion()
		case "size":
			return a.Size < b.Size
		case "lastused":
			return a.LastUsed.Before(b.LastUsed)
		}
		return a.ImportTime.Before(b.ImportTime)
	}
	sort.SliceStable(imgs, func(i, j int) bool {
		if desc {
			return less(imgs[j], imgs[i])
		}
		return less(imgs[i], imgs[j])
	})
}

func writeJSON(w io.Writer, v any, pretty bool) error {
	var b []byte
	var err error
	if pretty {
		b, err = json.MarshalIndent(v, "", "\t")
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func newImageRmCommand(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "rm IMAGEID...",
		Short: "Remove one or more images with the given IDs or names from the local store",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			s, err := openStore(env)
			if err != nil {
				return err
			}
			done := 0
			var failed error
			for _, ref := range args {
				// rkt named the removed image by its ID, whatever named it on the command line.
				img, err := s.Get(env.Ctx, ref)
				if err == nil {
					err = s.Remove(env.Ctx, img.ID)
				}
				if err != nil {
					fmt.Fprintf(env.Stderr, "rkt: %v\n", err)
					failed = err
					continue
				}
				done++
				fmt.Fprintf(env.Stdout, "successfully removed aci for image: %q\n", img.ID)
			}
			removedCount(env, "rm", done)
			if failed != nil {
				return &ExitError{Code: stage1.ExitFailure, Err: fmt.Errorf("rm: %d image(s) not removed", len(args)-done)}
			}
			return nil
		},
	}
}

// removedCount says on stderr how many images rkt image rm or gc removed, when it removed any,
// as rkt did.
func removedCount(env *Env, cmd string, n int) {
	if n > 0 {
		fmt.Fprintf(env.Stderr, "%s: %d image(s) successfully removed\n", cmd, n)
	}
}

// ImagesInUse names the images that existing pods (in any phase) use; rkt image gc keeps them
// whatever their age. Tests may replace it.
var ImagesInUse = podImages

// podImages reads every pod's manifest for its apps' image IDs (the store ID annotation that
// stage1 writes, else appc's image ID). A pod whose manifest cannot be read yet (an embryo)
// protects nothing.
func podImages(ctx context.Context, env *Env) ([]string, error) {
	pods, err := pod.NewStore(env.G.Dir).List()
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, p := range pods {
		m, err := p.Manifest()
		if err != nil {
			continue
		}
		for _, a := range m.Apps {
			if id, ok := a.Annotations.Get(stage1.AnnotationImageID); ok {
				ids = append(ids, id)
			} else if !a.Image.ID.Empty() {
				ids = append(ids, a.Image.ID.String())
			}
		}
	}
	return ids, nil
}

func newImageGCCommand(env *Env) *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "gc [--grace-period=DURATION]",
		Short: "Garbage collect local store",
		Long: `Removes images not used by a pod for longer than --grace-period, then every blob and
extracted tree that no image references, and whatever interrupted fetches left behind.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			s, err := openStore(env)
			if err != nil {
				return err
			}
			if ImagesInUse != nil {
				s.InUse = func(ctx context.Context) ([]string, error) { return ImagesInUse(ctx, env) }
			}
			removed, err := s.GC(env.Ctx, grace)
			for _, id := range removed {
				fmt.Fprintf(env.Stdout, "successfully removed aci for image: %q\n", id)
			}
			if err != nil {
				return err
			}
			removedCount(env, "gc", len(removed))
			return nil
		},
	}
	cmd.Flags().DurationVar(&grace, "grace-period", 24*time.Hour, "duration to wait since an image was last used before removing it")
	return cmd
}

func newImageExportCommand(env *Env) *cobra.Command {
	var overwrite bool
	cmd := &cobra.Command{
		Use:   "export IMAGE OUTPUT_FILE",
		Short: "Export a stored image to a file (an ACI as imported; an OCI image as an OCI archive)",
		Args:  cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			s, err := openStore(env)
			if err != nil {
				return err
			}
			if _, err := s.Get(env.Ctx, args[0]); err != nil && !errors.Is(err, store.ErrDependency) {
				return err
			}
			flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
			if overwrite {
				flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			}
			f, err := os.OpenFile(args[1], flags, 0o644)
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("export: %s exists (use --overwrite)", args[1])
			}
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			if err := s.Export(env.Ctx, args[0], f); err != nil {
				f.Close()
				os.Remove(args[1])
				return err
			}
			return f.Close()
		},
	}
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "overwrite output file")
	return cmd
}

func newImageRenderCommand(env *Env, use, short string, deps bool) *cobra.Command {
	var opts store.RenderOptions
	cmd := &cobra.Command{
		Use:   use + " IMAGE OUTPUT_DIR",
		Short: short,
		Args:  cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			s, err := openStore(env)
			if err != nil {
				return err
			}
			opts.Dependencies = deps
			return s.Render(env.Ctx, args[0], args[1], opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Overwrite, "overwrite", false, "overwrite output directory")
	cmd.Flags().BoolVar(&opts.RootfsOnly, "rootfs-only", false, "write only the root filesystem, without the manifest")
	return cmd
}

func newImageCatManifestCommand(env *Env) *cobra.Command {
	var pretty bool
	cmd := &cobra.Command{
		Use:   "cat-manifest IMAGE",
		Short: "Inspect and print the image manifest",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			s, err := openStore(env)
			if err != nil {
				return err
			}
			m, err := s.CatManifest(env.Ctx, args[0])
			if err != nil {
				return err
			}
			var out bytes.Buffer
			if pretty {
				err = json.Indent(&out, m, "", "\t")
			} else {
				err = json.Compact(&out, m)
			}
			if err != nil {
				return fmt.Errorf("cat-manifest: %w", err)
			}
			out.WriteByte('\n')
			_, err = env.Stdout.Write(out.Bytes())
			return err
		},
	}
	cmd.Flags().BoolVar(&pretty, "pretty-print", true, "apply indent to format the output")
	return cmd
}

func newImageVerifyCommand(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "verify IMAGE...",
		Short: "Check stored images' blobs against their digests and their trees against their blobs",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			s, err := openStore(env)
			if err != nil {
				return err
			}
			bad := 0
			for _, ref := range args {
				img, err := s.Get(env.Ctx, ref)
				if err == nil {
					err = s.Verify(env.Ctx, img.ID)
				}
				if err != nil {
					fmt.Fprintf(env.Stderr, "rkt: verification failed for image %s: %v\n", ref, err)
					bad++
					continue
				}
				fmt.Fprintf(env.Stdout, "successfully verified checksum for image: %q (%q)\n", ref, img.ID)
			}
			if bad > 0 {
				return &ExitError{Code: stage1.ExitFailure, Err: fmt.Errorf("verify: %d of %d image(s) damaged (rkt image rm them and fetch again)", bad, len(args))}
			}
			return nil
		},
	}
}
