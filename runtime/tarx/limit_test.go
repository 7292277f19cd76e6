package tarx

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cairn-os/cairn/runtime/fixture"
)

var errOver = errors.New("over the limit")

// countLimit refuses the entry that takes its totals past maxBytes or maxEntries.
type countLimit struct {
	maxBytes, maxEntries int64
	bytes, entries       int64
	charged              []string
}

func (l *countLimit) Charge(name string, size int64) error {
	l.bytes += size
	l.entries++
	l.charged = append(l.charged, name)
	if l.bytes > l.maxBytes || l.entries > l.maxEntries {
		return fmt.Errorf("%w at %s", errOver, name)
	}
	return nil
}

// written counts the names beneath root and the bytes of its regular files (each inode once).
func written(t testing.TB, root string) (names, bytes int64) {
	t.Helper()
	seen := map[uint64]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrPermission) {
			return nil // a directory the archive made unreadable: its own name is counted
		}
		if err != nil || p == root {
			return err
		}
		names++
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			if ino := info.Sys().(*syscall.Stat_t).Ino; !seen[ino] {
				seen[ino] = true
				bytes += info.Size()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names, bytes
}

func TestLimit(t *testing.T) {
	sparse, err := fixture.SparseTar([]fixture.Entry{{Header: tar.Header{Name: "var/log/", Typeflag: tar.TypeDir, Mode: 0o755}}},
		"var/log/lastlog", 1<<40, "x")
	if err != nil {
		t.Fatal(err)
	}
	var many []ent
	for i := range 100 {
		many = append(many, file(fmt.Sprintf("f%03d", i), ""))
	}
	for _, tc := range []struct {
		name          string
		tar           []byte
		limit         countLimit
		wantErr       string
		names, bytes  int64 // at most this much may be written
		chargedBefore string
	}{
		{"sparse file of a TiB, refused before a byte is written", sparse, countLimit{maxBytes: 1 << 30, maxEntries: 100},
			"at var/log/lastlog", 2, 0, "var/"},
		{"file content past the limit", mkTar(t, file("a", strings.Repeat("a", 600)), file("b", strings.Repeat("b", 600))),
			countLimit{maxBytes: 1000, maxEntries: 100}, "at b", 1, 600, "a"},
		{"many tiny entries", mkTar(t, many...), countLimit{maxBytes: 1 << 20, maxEntries: 10}, "at f010", 10, 0, "f009"},
		{"implied directories count", mkTar(t, file("a/b/c/d/e/f/g/h/i/j/k/l", "x")), countLimit{maxBytes: 1 << 20, maxEntries: 5},
			"at a/b/c/d/e/", 4, 0, "a/b/c/d/"},
		{"within the limit", mkTar(t, dir("d/"), file("d/f", "hello")), countLimit{maxBytes: 5, maxEntries: 2}, "", 2, 5, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb := newSandbox(t)
			l := tc.limit
			_, err := Extract(context.Background(), bytes.NewReader(tc.tar), sb.root, Options{Limit: &l})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else if !errors.Is(err, errOver) || !strings.HasSuffix(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v; want the limit's own error, %q", err, tc.wantErr)
			}
			names, n := written(t, sb.root)
			if names > tc.names || n > tc.bytes {
				t.Fatalf("%d names and %d bytes written; want at most %d and %d", names, n, tc.names, tc.bytes)
			}
			if tc.chargedBefore != "" && (len(l.charged) < 2 || l.charged[len(l.charged)-2] != tc.chargedBefore) {
				t.Fatalf("charged %v; want %s just before the refused entry", l.charged, tc.chargedBefore)
			}
			sb.untouched(t)
		})
	}
}

// The sparse file, with room for it, extracts to its full size: the limit counted right.
func TestLimitSparseAccepted(t *testing.T) {
	b, err := fixture.SparseTar(nil, "s", 3<<20, "head")
	if err != nil {
		t.Fatal(err)
	}
	sb := newSandbox(t)
	l := countLimit{maxBytes: 3 << 20, maxEntries: 1}
	if _, err := Extract(context.Background(), bytes.NewReader(b), sb.root, Options{Limit: &l}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(sb.root, "s"))
	if err != nil || st.Size() != 3<<20 || l.bytes != 3<<20 {
		t.Fatalf("s: %v %v, charged %d; want 3 MiB", st, err, l.bytes)
	}
}
