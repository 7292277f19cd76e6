// Package usrfs turns a /usr tree into Cairn's read-only /usr image: an erofs filesystem
// (lz4hc) followed, in the same file, by its dm-verity hash tree (veritysetup format, no
// superblock: every parameter travels on the slot's command line, see image/bootparams).
package usrfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"

	"github.com/cairn-os/cairn/image/bootparams"
)

// ErrTooBig is returned when the image with its hash tree exceeds the partition.
var ErrTooBig = errors.New("/usr image does not fit its partition")

// Spec says how to make the image.
type Spec struct {
	Dir             string // the tree that becomes /usr
	Out             string // image file to write
	SourceDateEpoch int64
	// Seed makes the filesystem UUID and the verity salt deterministic (the version string).
	Seed string
	// Limit is the partition size in bytes; 0 means no limit.
	Limit int64
}

// Commands returns the mkfs.erofs command line (the verity step needs the image's size first).
func (s Spec) Commands() []string {
	return []string{"mkfs.erofs", "--quiet", "-zlz4hc", "-T" + strconv.FormatInt(s.SourceDateEpoch, 10),
		"-U" + s.uuid(), "-x-1", s.Out, s.Dir}
}

func (s Spec) digest(what string) [32]byte {
	return sha256.Sum256([]byte("cairn " + what + " " + s.Seed))
}

func (s Spec) uuid() string {
	d := s.digest("usr uuid")
	d[6] = d[6]&0x0f | 0x40 // version 4 layout, deterministic content
	d[8] = d[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", d[0:4], d[4:6], d[6:8], d[8:10], d[10:16])
}

// VerityCommand is the veritysetup command that appends the hash tree after dataBlocks.
func (s Spec) VerityCommand(dataBlocks int64) []string {
	salt := s.digest("verity salt")
	return []string{"veritysetup", "format", "--no-superblock", "--hash=sha256",
		"--data-block-size=4096", "--hash-block-size=4096",
		"--data-blocks=" + strconv.FormatInt(dataBlocks, 10),
		"--hash-offset=" + strconv.FormatInt(dataBlocks*bootparams.BlockSize, 10),
		"--salt=" + hex.EncodeToString(salt[:]), s.Out, s.Out}
}

var rootHashRE = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]{64})\s*$`)

// Make builds the image and returns the verity parameters (without the partition, which is
// the slot's) and the total image size.
func Make(ctx context.Context, s Spec) (bootparams.Params, int64, error) {
	var p bootparams.Params
	if err := os.Remove(s.Out); err != nil && !errors.Is(err, os.ErrNotExist) {
		return p, 0, err
	}
	if err := run(ctx, s.Commands()); err != nil {
		return p, 0, err
	}
	fi, err := os.Stat(s.Out)
	if err != nil {
		return p, 0, err
	}
	if fi.Size()%bootparams.BlockSize != 0 {
		return p, 0, fmt.Errorf("erofs image %s: size %d is not a multiple of 4096", s.Out, fi.Size())
	}
	blocks := fi.Size() / bootparams.BlockSize
	if s.Limit > 0 && fi.Size() > s.Limit {
		return p, 0, fmt.Errorf("%w: erofs alone is %d MiB, partition %d MiB (drop packages or grow the partition in internal/disklayout)", ErrTooBig, fi.Size()>>20, s.Limit>>20)
	}
	cmd := s.VerityCommand(blocks)
	out, err := exec.CommandContext(ctx, cmd[0], cmd[1:]...).CombinedOutput()
	if err != nil {
		return p, 0, fmt.Errorf("%s: %w\n%s", cmd[0], err, out)
	}
	m := rootHashRE.FindSubmatch(out)
	if m == nil {
		return p, 0, fmt.Errorf("veritysetup printed no root hash:\n%s", out)
	}
	fi, err = os.Stat(s.Out)
	if err != nil {
		return p, 0, err
	}
	if s.Limit > 0 && fi.Size() > s.Limit {
		return p, 0, fmt.Errorf("%w: %d MiB with its hash tree, partition %d MiB (drop packages or grow the partition in internal/disklayout)", ErrTooBig, fi.Size()>>20, s.Limit>>20)
	}
	salt := s.digest("verity salt")
	p.RootHash, p.DataBlocks, p.Salt = string(m[1]), blocks, hex.EncodeToString(salt[:])
	return p, fi.Size(), nil
}

// Verify checks an image (or a partition holding one) against p with veritysetup verify.
func Verify(ctx context.Context, path string, p bootparams.Params) error {
	out, err := exec.CommandContext(ctx, "veritysetup", "verify", "--no-superblock", "--hash=sha256",
		"--data-block-size=4096", "--hash-block-size=4096",
		"--data-blocks="+strconv.FormatInt(p.DataBlocks, 10),
		"--hash-offset="+strconv.FormatInt(p.HashOffset(), 10),
		"--salt="+p.Salt, path, path, p.RootHash).CombinedOutput()
	if err != nil {
		return fmt.Errorf("verity check of %s: %w: %s", path, err, out)
	}
	return nil
}

func run(ctx context.Context, argv []string) error {
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", argv[0], err, out)
	}
	return nil
}
