package usrfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-os/cairn/internal/testenv"
)

func tree(t *testing.T) string {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range []string{"hello", "cairn"} {
		if err := os.WriteFile(filepath.Join(dir, "bin", s), make([]byte, 100000*(i+1)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestMakeVerifyAndDetectCorruption(t *testing.T) {
	testenv.RequireCommand(t, "mkfs.erofs")
	testenv.RequireCommand(t, "veritysetup")
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "usr.img")
	s := Spec{Dir: tree(t), Out: out, SourceDateEpoch: 1700000000, Seed: "1.0.0"}
	p, size, err := Make(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if size <= p.HashOffset() || len(p.RootHash) != 64 {
		t.Fatalf("size %d params %+v", size, p)
	}
	if err := Verify(ctx, out, p); err != nil {
		t.Fatal(err)
	}
	// Same inputs, same bytes.
	out2 := filepath.Join(t.TempDir(), "usr.img")
	s.Out = out2
	p2, _, err := Make(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(out2)
	if p2 != p || string(a) != string(b) {
		t.Fatal("two builds from the same inputs differ")
	}
	// One flipped bit in the data is caught.
	a[4096+10] ^= 1
	if err := os.WriteFile(out, a, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Verify(ctx, out, p); err == nil {
		t.Fatal("corrupted image verified")
	}
}

func TestTooBig(t *testing.T) {
	testenv.RequireCommand(t, "mkfs.erofs")
	testenv.RequireCommand(t, "veritysetup")
	out := filepath.Join(t.TempDir(), "usr.img")
	_, _, err := Make(context.Background(), Spec{Dir: tree(t), Out: out, Seed: "x", Limit: 8192})
	if !errors.Is(err, ErrTooBig) {
		t.Fatalf("want ErrTooBig, got %v", err)
	}
}
