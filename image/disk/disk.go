// Package disk assembles Cairn's GPT disk image in a plain file, from internal/disklayout and
// one image file per partition: the table is planned as a value (Plan), then written with
// internal/gpt and the partition images copied in sparsely. No loop devices.
package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"

	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/internal/gpt"
)

// ErrTooBig is returned when a partition's content exceeds the partition.
var ErrTooBig = errors.New("content larger than its partition")

const align = disklayout.MiB

// Plan lays disklayout.Partitions out on a disk of size bytes (0: the smallest that fits).
// GUIDs the layout leaves open are derived from seed, so that the same build gives the same
// disk; the installer gives a written disk its own.
func Plan(size int64, seed string) (*gpt.Table, int64, error) {
	if size == 0 {
		size = disklayout.MinDiskSize()
	}
	size = size / align * align
	t := &gpt.Table{DiskGUID: derive(seed, "disk")}
	_, last := t.Usable(size)
	next := uint64(align / 512)
	for _, p := range disklayout.Partitions {
		typ, err := gpt.ParseGUID(p.Type)
		if err != nil {
			return nil, 0, err
		}
		g := derive(seed, p.Label)
		if p.GUID != "" {
			if g, err = gpt.ParseGUID(p.GUID); err != nil {
				return nil, 0, err
			}
		}
		end := next + uint64(p.Size/512) - 1
		if p.Size == 0 {
			end = last/(align/512)*(align/512) - 1
		}
		if end > last || end < next {
			return nil, 0, fmt.Errorf("disk of %d MiB: partition %s: %w", size>>20, p.Label, gpt.ErrLayout)
		}
		t.Partitions = append(t.Partitions, gpt.Partition{Number: p.Number, Type: typ, GUID: g, FirstLBA: next, LastLBA: end, Name: p.Label})
		next = end + 1
	}
	return t, size, t.Validate(size)
}

func derive(seed, what string) gpt.GUID {
	var g gpt.GUID
	d := sha256.Sum256([]byte("cairn disk " + seed + " " + what))
	copy(g[:], d[:16])
	g[7] = g[7]&0x0f | 0x40 // RFC 4122 version 4 layout (mixed-endian field 3)
	g[8] = g[8]&0x3f | 0x80
	return g
}

// Write creates out: the table plus contents (GPT label -> image file).
func Write(out string, t *gpt.Table, size int64, contents map[string]string) error {
	f, err := os.OpenFile(out, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	if err := t.Write(f, size); err != nil {
		return err
	}
	for label, src := range contents {
		p, ok := t.FindName(label)
		if !ok {
			return fmt.Errorf("disk %s: no partition %s for %s", out, label, src)
		}
		if err := copySparse(f, p.Offset(512), p.Size(512), src); err != nil {
			return fmt.Errorf("disk %s: partition %s: %w", out, label, err)
		}
	}
	return f.Sync()
}

func copySparse(w io.WriterAt, off, limit int64, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if fi.Size() > limit {
		return fmt.Errorf("%s is %d MiB, partition %d MiB: %w", src, fi.Size()>>20, limit>>20, ErrTooBig)
	}
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for pos := int64(0); ; {
		n, err := io.ReadFull(in, buf)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, werr := w.WriteAt(buf[:n], off+pos); werr != nil {
				return werr
			}
		}
		pos += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Ext4 makes an ext4 image of size bytes labelled label, filled from dir (if not ""), with
// times, UUID and hash seed fixed so that the same inputs give the same bytes.
func Ext4(ctx context.Context, out string, size int64, label, dir string, epoch int64, seed string) error {
	os.Remove(out)
	u := derive(seed, "ext4 "+label)
	args := []string{"-q", "-F", "-t", "ext4", "-L", label, "-U", u.String(),
		"-E", "hash_seed=" + u.String() + ",lazy_itable_init=0,nodiscard", "-m", "0"}
	if dir != "" {
		args = append(args, "-d", dir)
	}
	args = append(args, out, strconv.FormatInt(size/1024, 10)+"k")
	cmd := exec.CommandContext(ctx, "mkfs.ext4", args...)
	cmd.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME="+strconv.FormatInt(epoch, 10), "SOURCE_DATE_EPOCH="+strconv.FormatInt(epoch, 10))
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4 %s (%s): %w\n%s", label, out, err, b)
	}
	return nil
}
