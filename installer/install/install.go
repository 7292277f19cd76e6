// Package install writes a Cairn disk image to a block device, as flatcar-install does:
// check the disk, stream the image to it while hashing, verify the signature, re-read the
// partition table, and put the first-boot config on the OEM partition. A failure after the
// first byte was written wipes what was written, so a half-installed disk never boots.
package install

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/cairn-os/cairn/installer/imagesig"
)

// ImageName is the disk image's file name in a release directory, as Container Linux's
// flatcar_production_image.bin.
const ImageName = "cairn_production_image.bin"

// ErrDiskInUse is returned for a disk that is mounted or holds a mounted partition.
var ErrDiskInUse = errors.New("disk is in use")

// Options say what to install where.
type Options struct {
	Device   string              // the target block device, e.g. /dev/vdb
	Image    string              // a local image file (.bin, or .bin.zst); its .sig beside it
	BaseURL  string              // or: a release server; the image is BaseURL/Version/ImageName[.zst]
	Version  string              //     with -b: which version
	Keys     []ed25519.PublicKey // keys trusted to sign images
	Ignition []byte              // first-boot config, already validated; nil for none
	OEM      string              // OEM ID written to the OEM partition's oem-release; "" for none
	Force    bool                // install even if the disk is in use
	HTTP     *http.Client
	Progress io.Writer // progress lines; nil for none
	Log      *slog.Logger
	// MountInfo is the mount table read by the in-use check (default: /proc/self/mountinfo).
	MountInfo string
}

// Install runs the installation's steps in order and stops at the first failure.
func Install(ctx context.Context, o Options) (err error) {
	if o.HTTP == nil {
		o.HTTP = http.DefaultClient
	}
	if o.MountInfo == "" {
		o.MountInfo = "/proc/self/mountinfo"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if len(o.Keys) == 0 {
		return errors.New("no image signing keys: give one with -k (the image's key ships in /usr/share/cairn)")
	}
	in := &installation{o: o}
	defer in.close()
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"check disk", in.checkDisk},
		{"get signature", in.getSignature},
		{"open image", in.openImage},
		{"write image", in.writeImage},
		{"verify image", in.verify},
		{"re-read partition table", in.rereadPartitions},
		{"write OEM partition", in.writeOEM},
	}
	for _, s := range steps {
		o.Log.Debug("install step", "step", s.name)
		if err := s.fn(ctx); err != nil {
			err = fmt.Errorf("install to %s: %s: %w", o.Device, s.name, err)
			if in.written > 0 {
				if werr := in.wipe(); werr != nil {
					return fmt.Errorf("%w; and wiping the partly written disk failed: %v", err, werr)
				}
				return fmt.Errorf("%w (the partly written disk was wiped)", err)
			}
			return err
		}
	}
	return nil
}

type installation struct {
	o        Options
	disk     *os.File
	diskSize int64
	signed   imagesig.Statement
	image    io.Reader
	closers  []io.Closer
	written  int64
	received imagesig.Statement
}

func (in *installation) close() {
	for _, v := range slices.Backward(in.closers) {
		v.Close()
	}
	if in.disk != nil {
		in.disk.Close()
	}
}

func (in *installation) checkDisk(ctx context.Context) error {
	fi, err := os.Stat(in.o.Device)
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return fmt.Errorf("%s is not a block device", in.o.Device)
	}
	if used, err := inUse(in.o.Device, in.o.MountInfo); err != nil {
		return err
	} else if used != "" && !in.o.Force {
		return fmt.Errorf("%w: %s (unmount it, or force)", ErrDiskInUse, used)
	}
	f, err := os.OpenFile(in.o.Device, os.O_RDWR|os.O_EXCL, 0)
	if err != nil {
		return err
	}
	in.disk = f
	if in.diskSize, err = f.Seek(0, io.SeekEnd); err != nil {
		return err
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}

// source opens a release file, local or remote.
func (in *installation) source(ctx context.Context, name string) (io.ReadCloser, error) {
	if in.o.Image != "" {
		p := in.o.Image
		if name != ImageName {
			p = strings.TrimSuffix(strings.TrimSuffix(in.o.Image, ".zst"), ".bin") + name[len(ImageName)-len(".bin"):]
		}
		return os.Open(p)
	}
	if in.o.BaseURL == "" || in.o.Version == "" {
		return nil, errors.New("give an image file, or a base URL and a version")
	}
	u := strings.TrimSuffix(in.o.BaseURL, "/") + "/" + in.o.Version + "/" + name
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := in.o.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return resp.Body, nil
}

func (in *installation) getSignature(ctx context.Context) error {
	r, err := in.source(ctx, ImageName+".sig")
	if err != nil {
		return err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, imagesig.MaxSize+1))
	if err != nil {
		return err
	}
	if in.signed, err = imagesig.Verify(in.o.Keys, b); err != nil {
		return err
	}
	if in.signed.Size > in.diskSize {
		return fmt.Errorf("image needs %d bytes, the disk has %d", in.signed.Size, in.diskSize)
	}
	return nil
}

func (in *installation) openImage(ctx context.Context) error {
	name := ImageName
	if strings.HasSuffix(in.o.Image, ".zst") || (in.o.Image == "" && in.o.BaseURL != "") {
		name += ".zst"
	}
	r, err := in.source(ctx, name)
	if err != nil {
		return err
	}
	in.closers = append(in.closers, r)
	if !strings.HasSuffix(name, ".zst") {
		in.image = r
		return nil
	}
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return err
	}
	in.closers = append(in.closers, closerFunc(func() error { zr.Close(); return nil }))
	in.image = zr
	return nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// writeImage streams at most the signed size to the disk, hashing as it goes.
func (in *installation) writeImage(ctx context.Context) error {
	h := imagesig.NewHasher()
	pw := &progress{w: in.o.Progress, total: in.signed.Size}
	buf := make([]byte, 4<<20)
	src := io.LimitReader(in.image, in.signed.Size+1)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := io.ReadFull(src, buf)
		if n > 0 {
			if in.written+int64(n) > in.signed.Size {
				return fmt.Errorf("%w: image is longer than the signed %d bytes", imagesig.ErrBadSignature, in.signed.Size)
			}
			_, _ = h.Write(buf[:n]) // a Hasher writes to a hash, and a hash.Hash never fails a Write
			// Most of a disk image is zeros (the empty slot, free space in filesystems): those
			// runs are zeroed on the device rather than written.
			var err error
			if isZero(buf[:n]) {
				err = zeroRange(in.disk, in.written, int64(n))
			} else {
				_, err = in.disk.WriteAt(buf[:n], in.written)
			}
			if err != nil {
				in.written += int64(n) // some of it may have landed
				return err
			}
			in.written += int64(n)
			pw.update(in.written)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	in.received = h.Statement()
	return in.disk.Sync()
}

func (in *installation) verify(context.Context) error {
	return in.signed.Check(in.received)
}

// zeros is what isZero compares with and what zeroRange writes where the device does not
// zero by itself.
var zeros = make([]byte, 64<<10)

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
