package slots

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/cairn-os/cairn/internal/atomicfile"
)

// ESP is the file access slots needs on the EFI system partition. Paths are slash-separated
// and relative to the root of the partition ("EFI/Linux/x.efi").
type ESP interface {
	// List returns the names of the files in dir (empty if dir does not exist).
	List(ctx context.Context, dir string) ([]string, error)
	// Create writes a new file with r's content (replacing one of that name). Callers give
	// it a name the boot loader ignores and Rename it into place afterwards.
	Create(ctx context.Context, name string, r io.Reader) error
	// Open returns the content of a file.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// Rename renames a file within its directory, replacing the target.
	Rename(ctx context.Context, from, to string) error
	// Remove deletes a file; removing a missing file is not an error.
	Remove(ctx context.Context, name string) error
}

// DirESP is an ESP mounted at Root (as on a running Cairn machine: /boot or /efi).
type DirESP struct{ Root string }

func (d DirESP) p(name string) string { return filepath.Join(d.Root, filepath.FromSlash(name)) }

func (d DirESP) List(_ context.Context, dir string) ([]string, error) {
	ents, err := os.ReadDir(d.p(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ESP %s: %w", d.Root, err)
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

func (d DirESP) Create(_ context.Context, name string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(d.p(name)), 0o755); err != nil {
		return fmt.Errorf("ESP %s: %w", d.Root, err)
	}
	return atomicfile.Write(d.p(name), 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	})
}

func (d DirESP) Open(_ context.Context, name string) (io.ReadCloser, error) {
	return os.Open(d.p(name))
}

func (d DirESP) Rename(_ context.Context, from, to string) error {
	if err := os.Rename(d.p(from), d.p(to)); err != nil {
		return fmt.Errorf("ESP %s: %w", d.Root, err)
	}
	return atomicfile.SyncDir(filepath.Dir(d.p(to)))
}

func (d DirESP) Remove(_ context.Context, name string) error {
	if err := os.Remove(d.p(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ESP %s: %w", d.Root, err)
	}
	return atomicfile.SyncDir(filepath.Dir(d.p(name)))
}

// MtoolsESP reaches an unmounted FAT file system (a partition device or an image file) with
// mtools, for hosts that cannot mount vfat and for image building.
type MtoolsESP struct {
	Image  string // block device or file holding the FAT file system
	TmpDir string // where file contents are staged for mcopy; "" for os.TempDir
}

func (m MtoolsESP) run(ctx context.Context, stdout io.Writer, args ...string) error {
	cmd := exec.CommandContext(ctx, args[0], append([]string{"-i", m.Image}, args[1:]...)...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "MTOOLS_NO_VFAT=0")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ESP %s: %s: %w: %s", m.Image, args[0], err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func mpath(name string) string { return "::/" + strings.TrimPrefix(name, "/") }

func (m MtoolsESP) List(ctx context.Context, dir string) ([]string, error) {
	var out bytes.Buffer
	if err := m.run(ctx, &out, "mdir", "-b", mpath(dir)); err != nil {
		if strings.Contains(err.Error(), "not found") {
			return nil, nil
		}
		return nil, err
	}
	var names []string
	prefix := strings.TrimSuffix(mpath(dir), "/") + "/"
	for l := range strings.SplitSeq(out.String(), "\n") {
		l = strings.TrimSpace(l)
		if n, ok := strings.CutPrefix(l, prefix); ok && n != "" && !strings.HasSuffix(n, "/") && n != "." && n != ".." {
			names = append(names, n)
		}
	}
	return names, nil
}

func (m MtoolsESP) mkdirAll(ctx context.Context, dir string) error {
	cur := ""
	for part := range strings.SplitSeq(dir, "/") {
		if part == "" {
			continue
		}
		cur = path.Join(cur, part)
		var out bytes.Buffer
		if err := m.run(ctx, &out, "mdir", "-b", mpath(cur)); err == nil {
			continue
		}
		if err := m.run(ctx, io.Discard, "mmd", mpath(cur)); err != nil {
			return err
		}
	}
	return nil
}

func (m MtoolsESP) Create(ctx context.Context, name string, r io.Reader) error {
	if err := m.mkdirAll(ctx, path.Dir(name)); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(m.TmpDir, ".esp-stage-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return fmt.Errorf("ESP %s: stage %s: %w", m.Image, name, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return m.run(ctx, io.Discard, "mcopy", "-o", tmp.Name(), mpath(name))
}

// Open streams the file out of mcopy, so that a large UKI is never held in memory.
func (m MtoolsESP) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	cmd := exec.CommandContext(ctx, "mcopy", "-i", m.Image, mpath(name), "-")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("ESP %s: mcopy: %w", m.Image, err)
	}
	return &cmdReader{ReadCloser: out, cmd: cmd, stderr: &stderr, what: m.Image}, nil
}

type cmdReader struct {
	io.ReadCloser
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	what   string
	err    error
}

func (c *cmdReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if err == io.EOF {
		// Only a clean exit makes EOF the end of the file.
		if werr := c.cmd.Wait(); werr != nil {
			c.err = fmt.Errorf("ESP %s: mcopy: %w: %s", c.what, werr, strings.TrimSpace(c.stderr.String()))
			return n, c.err
		}
		c.cmd = nil
	}
	return n, err
}

func (c *cmdReader) Close() error {
	c.ReadCloser.Close()
	if c.cmd != nil {
		c.cmd.Process.Kill()
		c.cmd.Wait()
	}
	return c.err
}

func (m MtoolsESP) Rename(ctx context.Context, from, to string) error {
	if path.Dir(from) != path.Dir(to) {
		return fmt.Errorf("ESP %s: rename %s to another directory", m.Image, from)
	}
	return m.run(ctx, io.Discard, "mren", "-D", "o", mpath(from), mpath(to))
}

func (m MtoolsESP) Remove(ctx context.Context, name string) error {
	err := m.run(ctx, io.Discard, "mdel", mpath(name))
	if err != nil && strings.Contains(err.Error(), "not found") {
		return nil
	}
	return err
}
