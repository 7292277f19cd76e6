package tarx

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// FuzzExtract feeds arbitrary bytes to the extractor: it must never panic, never touch
// anything outside its root, and never write a name or a byte of file content beneath it
// that its Limit was not charged for first, whatever it accepts or refuses.
func FuzzExtract(f *testing.F) {
	f.Add(mkTar(f, dir("a/"), file("a/b", "b"), symlink("c", "a/b"), hardlink("d", "a/b")))
	f.Add(mkTar(f, symlink("link", "../outside"), file("link/pwned", "x")))
	f.Add(mkTar(f, symlink("link", "/"), dir("link/tmp/")))
	f.Add(mkTar(f, hardlink("h", "../outside/secret")))
	f.Add(mkTar(f, file(".wh.x", ""), file("d/.wh..wh..opq", "")))
	f.Add(mkTar(f, file("../x", "x")))
	f.Add(mkTar(f, file("a/b/c/d/e/f/g/h", strings.Repeat("x", 5000)), file("big", strings.Repeat("y", 70000))))
	f.Fuzz(func(t *testing.T, data []byte) {
		sb := newSandbox(t)
		l := &countLimit{maxBytes: 64 << 10, maxEntries: 64}
		Extract(context.Background(), bytes.NewReader(data), sb.root, Options{Whiteouts: true, Limit: l})
		sb.untouched(t)
		names, n := written(t, sb.root)
		if allowed := min(l.entries, l.maxEntries); names > allowed || n > l.maxBytes {
			t.Fatalf("%d names and %d bytes of content beneath the root; %d names and %d bytes were allowed", names, n, allowed, l.maxBytes)
		}
	})
}
