package tarx

import (
	"bytes"
	"context"
	"testing"
)

// FuzzExtract feeds arbitrary bytes to the extractor: it must never panic and never touch
// anything outside its root, whatever it accepts or refuses.
func FuzzExtract(f *testing.F) {
	f.Add(mkTar(f, dir("a/"), file("a/b", "b"), symlink("c", "a/b"), hardlink("d", "a/b")))
	f.Add(mkTar(f, symlink("link", "../outside"), file("link/pwned", "x")))
	f.Add(mkTar(f, symlink("link", "/"), dir("link/tmp/")))
	f.Add(mkTar(f, hardlink("h", "../outside/secret")))
	f.Add(mkTar(f, file(".wh.x", ""), file("d/.wh..wh..opq", "")))
	f.Add(mkTar(f, file("../x", "x")))
	f.Fuzz(func(t *testing.T, data []byte) {
		sb := newSandbox(t)
		Extract(context.Background(), bytes.NewReader(data), sb.root, Options{Whiteouts: true})
		sb.untouched(t)
	})
}
