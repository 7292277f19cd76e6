package images

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is every entry's mtime and the images' creation time, so that the same inputs make
// the same digests.
var epoch = time.Unix(0, 0).UTC()

// A file is one entry of an image's layer: a directory, a symlink, or a regular file whose
// content is read from Src when the layer is written.
type file struct {
	Path   string      // in the image, relative: "usr/local/bin/etcd"
	Mode   fs.FileMode // permission bits with fs.ModeDir, fs.ModeSymlink, fs.ModeSetuid, fs.ModeSetgid, fs.ModeSticky
	Link   string      // a symlink's target
	Src    string      // a regular file's content on this machine
	Size   int64       // a regular file's size, as Src had it when the spec was made
	Xattrs map[string]string
}

func dir(p string, perm fs.FileMode) file { return file{Path: p, Mode: fs.ModeDir | perm} }

// regular is the regular file src at p in the image, with mode perm whatever src's own.
func regular(p, src string, perm fs.FileMode) (file, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return file{}, err
	}
	if !fi.Mode().IsRegular() {
		return file{}, fmt.Errorf("%s: not a regular file", src)
	}
	return file{Path: p, Mode: perm, Src: src, Size: fi.Size()}, nil
}

// withParents sorts files by path and adds the directories (0755) that hold them and are not
// listed themselves. A path listed twice must be the same entry both times.
func withParents(files []file) ([]file, error) {
	byPath := map[string]file{}
	for _, f := range files {
		if old, ok := byPath[f.Path]; ok && !sameEntry(old, f) {
			return nil, fmt.Errorf("%s: listed twice, as %v and as %v", f.Path, old.Mode, f.Mode)
		}
		byPath[f.Path] = f
	}
	for _, f := range files {
		for d := path.Dir(f.Path); d != "."; d = path.Dir(d) {
			if _, ok := byPath[d]; !ok {
				byPath[d] = dir(d, 0o755)
			}
		}
	}
	out := make([]file, 0, len(byPath))
	for _, f := range byPath {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b file) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

func sameEntry(a, b file) bool {
	return a.Mode == b.Mode && a.Link == b.Link && a.Src == b.Src && len(a.Xattrs) == 0 && len(b.Xattrs) == 0
}

// writeTar writes files, already in order with their parents, as an uncompressed layer.
func writeTar(w io.Writer, files []file) error {
	tw := tar.NewWriter(w)
	for _, f := range files {
		hdr := &tar.Header{
			Name:    f.Path,
			Mode:    int64(f.Mode.Perm()),
			ModTime: epoch,
			Format:  tar.FormatPAX,
		}
		if f.Mode&fs.ModeSetuid != 0 {
			hdr.Mode |= 0o4000
		}
		if f.Mode&fs.ModeSetgid != 0 {
			hdr.Mode |= 0o2000
		}
		if f.Mode&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		for k, v := range f.Xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		switch {
		case f.Mode.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, f.Path+"/"
		case f.Mode&fs.ModeSymlink != 0:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, f.Link
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, f.Size
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if err := copyFile(tw, f); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

func copyFile(w io.Writer, f file) error {
	r, err := os.Open(f.Src)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	defer r.Close()
	if _, err := io.CopyN(w, r, f.Size); err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%s shrank below %d bytes while the layer was written", f.Src, f.Size)
		}
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	return nil
}

// layer is files as a gzip-compressed OCI layer. The tar is streamed from the files each
// time the layer is read (its digest, then each push), so a 100 MB binary is never held in
// memory.
func layer(files []file) (v1.Layer, error) {
	files, err := withParents(files)
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		r, w := io.Pipe()
		// A reader that stops early closes r: the next write fails and the goroutine ends.
		go func() { w.CloseWithError(writeTar(w, files)) }()
		return r, nil
	}, tarball.WithMediaType(types.OCILayer))
}
