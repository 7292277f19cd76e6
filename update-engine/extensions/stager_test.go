package extensions

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/cairn-os/cairn/internal/gpt"
)

// memDisk is an in-memory disk for gpt.Table.Write.
type memDisk []byte

func (m memDisk) WriteAt(p []byte, off int64) (int, error) { return copy(m[off:], p), nil }

// fakeImage is a disk whose usr partition has the UUID of usrHash, as image/sysext makes it.
func fakeImage(t *testing.T, usrHash string) []byte {
	t.Helper()
	const size = 4 << 20
	d := make(memDisk, size)
	tab := &gpt.Table{Partitions: []gpt.Partition{{Number: 1, Name: "usr-x86-64",
		Type: gpt.MustParseGUID("8484680C-9521-48C6-9C11-B0720656F69E"), GUID: gpt.MustParseGUID(usrPartitionUUID(usrHash)),
		FirstLBA: 2048, LastLBA: 4095}}}
	if err := tab.Write(d, size); err != nil {
		t.Fatal(err)
	}
	return d
}

func describe(name, url string, data []byte, usrHash string) Image {
	sum := sha256.Sum256(data)
	return Image{Name: name, URL: url, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), USRHash: usrHash}
}

func TestStage(t *testing.T) {
	const k = "kubernetes-v1.37.2"
	next := fakeImage(t, hashB)
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		switch r.URL.Path {
		case "/next.raw":
			w.Write(next)
		case "/other.raw":
			w.Write(fakeImage(t, hashA))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	root := t.TempDir()
	s := &Stager{EtcDir: filepath.Join(root, "etc/extensions"), StoreDir: filepath.Join(root, "var/lib/cairn/extensions"), HTTP: srv.Client()}
	if err := os.MkdirAll(s.EtcDir, 0o755); err != nil {
		t.Fatal(err)
	}
	current := fakeImage(t, hashA)
	os.WriteFile(filepath.Join(s.EtcDir, k+".raw"), current, 0o644)
	os.WriteFile(filepath.Join(s.EtcDir, k+".usrhash"), []byte(hashA+"\n"), 0o644)
	// A stale directory of a version no slot holds.
	os.MkdirAll(filepath.Join(s.StoreDir, "0.9.0"), 0o755)
	ctx := context.Background()

	// Refused before anything moves: a description that does not match what is served.
	bad := describe(k, srv.URL+"/other.raw", next, hashB)
	if _, err := s.Stage(ctx, "1.0.0", "1.1.0", []Image{bad}); !errors.Is(err, ErrImage) {
		t.Fatalf("wrong image: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.StoreDir, "1.1.0", k+".usrhash")); err == nil {
		t.Fatal("a refused image was staged")
	}
	// The right bytes under another root hash.
	if _, err := s.Stage(ctx, "1.0.0", "1.1.0", []Image{describe(k, srv.URL+"/next.raw", next, hashA)}); !errors.Is(err, ErrImage) {
		t.Fatalf("image of another root hash: %v", err)
	}
	if _, err := s.Stage(ctx, "1.0.0", "1.1.0", nil); !errors.Is(err, ErrMissing) {
		t.Fatalf("no image for the next version: %v", err)
	}

	good := describe(k, srv.URL+"/next.raw", next, hashB)
	ops, err := s.Stage(ctx, "1.0.0", "1.1.0", []Image{good})
	if err != nil {
		t.Fatal(err)
	}
	// The first refused run adopted the /etc file already: adoption does not depend on the
	// new version's image.
	if len(ops) != 2 || ops[0].Kind != Fetch || ops[1].Kind != Prune {
		t.Errorf("ops %v", ops)
	}
	for path, want := range map[string][]byte{
		"1.0.0/" + k + ".raw":     current,
		"1.0.0/" + k + ".usrhash": []byte(hashA + "\n"),
		"1.1.0/" + k + ".raw":     next,
		"1.1.0/" + k + ".usrhash": []byte(hashB + "\n"),
	} {
		got, err := os.ReadFile(filepath.Join(s.StoreDir, path))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes (%v), want %d", path, len(got), err, len(want))
		}
	}
	if ents, _ := os.ReadDir(s.EtcDir); len(ents) != 0 {
		t.Errorf("%d entries left in /etc/extensions, which would hide the store", len(ents))
	}
	if _, err := os.Stat(filepath.Join(s.StoreDir, "0.9.0")); err == nil {
		t.Error("the stale version's directory is still there")
	}

	// Twice changes nothing and fetches nothing.
	before := gets.Load()
	ops, err = s.Stage(ctx, "1.0.0", "1.1.0", []Image{good})
	if err != nil || len(ops) != 0 || gets.Load() != before {
		t.Errorf("second run: %v %v, %d more fetches", ops, err, gets.Load()-before)
	}
}
