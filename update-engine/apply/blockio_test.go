package apply

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// The device writer and the read-back, with O_DIRECT (where the test's file system allows
// it) and without, for sizes that fill buffers exactly, partly, and end off the alignment.
func TestDeviceWriteAndReadBack(t *testing.T) {
	pool, err := newBufPool()
	if err != nil {
		t.Fatal(err)
	}
	defer pool.release()
	for _, direct := range []bool{true, false} {
		for _, size := range []int{0, ioAlign, 3 * ioBufSize, 2*ioBufSize + 5, ioBufs*ioBufSize + ioAlign + 1} {
			directIO = direct
			t.Cleanup(func() { directIO = true })
			path := filepath.Join(t.TempDir(), "part")
			os.WriteFile(path, bytes.Repeat([]byte("x"), size+3*ioAlign), 0o644)
			want := make([]byte, size)
			rand.New(rand.NewSource(int64(size))).Read(want)

			f, gotDirect, err := openDevice(path, os.O_WRONLY)
			if err != nil {
				t.Fatal(err)
			}
			if direct != gotDirect {
				t.Logf("O_DIRECT %v asked, %v got (file system)", direct, gotDirect)
			}
			var reported int64
			w := newDeviceWriter(context.Background(), f, gotDirect, pool, func(n int64) { reported = n })
			rng := rand.New(rand.NewSource(1))
			for p := want; len(p) > 0; {
				n := min(len(p), 1+rng.Intn(300<<10)) // the decoder's blocks are up to 128 KiB
				if _, err := w.Write(p[:n]); err != nil {
					t.Fatal(err)
				}
				p = p[n:]
			}
			if err := w.Close(); err != nil {
				t.Fatalf("direct %v size %d: %v", gotDirect, size, err)
			}
			f.Close()
			if reported != int64(size) {
				t.Fatalf("progress %d of %d", reported, size)
			}
			got, _ := os.ReadFile(path)
			if !bytes.Equal(got[:size], want) || !bytes.Equal(got[size:], bytes.Repeat([]byte("x"), 3*ioAlign)) {
				t.Fatalf("direct %v size %d: the file is not the bytes written, followed by the old ones", gotDirect, size)
			}

			r, gotDirect, err := openDevice(path, os.O_RDONLY)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			n, err := hashDevice(context.Background(), r, int64(size), h, pool, nil)
			r.Close()
			if sum := sha256.Sum256(want); err != nil || n != int64(size) || !bytes.Equal(h.Sum(nil), sum[:]) {
				t.Fatalf("direct %v size %d: read back %d bytes, %v, hash equal %v", gotDirect, size, n, err, bytes.Equal(h.Sum(nil), sum[:]))
			}
		}
	}
}

// A device shorter than the image reads back short, and the caller sees it.
func TestReadBackShort(t *testing.T) {
	pool, err := newBufPool()
	if err != nil {
		t.Fatal(err)
	}
	defer pool.release()
	path := filepath.Join(t.TempDir(), "part")
	os.WriteFile(path, bytes.Repeat([]byte("x"), ioBufSize+100), 0o644)
	f, _, err := openDevice(path, os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := hashDevice(context.Background(), f, 3*ioBufSize, sha256.New(), pool, nil)
	if err != nil || n != ioBufSize+100 {
		t.Fatalf("read %d bytes, %v; want %d and no error", n, err, ioBufSize+100)
	}
}

// A failing device stops the writer without a hang, and the error comes out.
func TestDeviceWriterError(t *testing.T) {
	pool, err := newBufPool()
	if err != nil {
		t.Fatal(err)
	}
	defer pool.release()
	path := filepath.Join(t.TempDir(), "part")
	os.WriteFile(path, nil, 0o644)
	f, err := os.Open(path) // read-only: every write fails
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := newDeviceWriter(context.Background(), f, false, pool, nil)
	chunk := make([]byte, 1<<20)
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		_, werr = w.Write(chunk)
	}
	if cerr := w.Close(); cerr == nil || werr == nil {
		t.Fatalf("write error lost: Write %v, Close %v", werr, cerr)
	}

	// A cancelled context stops the writer too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w = newDeviceWriter(ctx, f, false, pool, nil)
	if _, err := w.Write(chunk); err == nil {
		t.Fatal("write after cancel")
	}
	w.Close()
}
