package apply

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/gpt"
	"github.com/cairn-os/cairn/update-engine/extensions"
	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/payload"
)

type memDisk []byte

func (m memDisk) WriteAt(p []byte, off int64) (int, error) { return copy(m[off:], p), nil }

// extensionImage is a disk whose usr partition carries the UUID of usrHash, as image/sysext
// makes it, served by the fixture and described for a payload.
func (f *fixture) extensionImage(name, usrHash string) ([]byte, payload.Extension) {
	const size = 4 << 20
	d := make(memDisk, size)
	b, _ := hex.DecodeString(usrHash[:32])
	u := strings.ToUpper(hex.EncodeToString(b))
	tab := &gpt.Table{Partitions: []gpt.Partition{{Number: 1, Name: "usr-x86-64",
		Type: gpt.MustParseGUID("8484680C-9521-48C6-9C11-B0720656F69E"),
		GUID: gpt.MustParseGUID(u[:8] + "-" + u[8:12] + "-" + u[12:16] + "-" + u[16:20] + "-" + u[20:]), FirstLBA: 2048, LastLBA: 4095}}}
	if err := tab.Write(d, size); err != nil {
		f.t.Fatal(err)
	}
	req := f.serve(name+"-"+usrHash[:8]+".raw", "", d)
	return d, payload.Extension{Name: name, URL: req.URL, Size: req.Size, SHA256: req.SHA256, USRHash: usrHash}
}

func TestApplyStagesExtensions(t *testing.T) {
	f := newFixture(t)
	root := t.TempDir()
	x := &extensions.Stager{EtcDir: filepath.Join(root, "etc/extensions"), StoreDir: filepath.Join(root, "var/lib/cairn/extensions"), HTTP: f.srv.Client()}
	f.applier.Extensions = x
	const k = "kubernetes-v1.37.2"
	running := sha256.Sum256([]byte("the 1.0.0 image"))
	os.MkdirAll(x.EtcDir, 0o755)
	os.WriteFile(filepath.Join(x.EtcDir, k+".raw"), []byte("the 1.0.0 image"), 0o644)
	hash := strings.Repeat("5a", 32)
	img, ext := f.extensionImage(k, hash)

	req := f.serve("2.0.0.cairn", "2.0.0", f.build("2.0.0", "amd64-usr", "", f.priv, ext))
	if _, err := f.applier.Apply(context.Background(), req, Options{}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(x.StoreDir, "2.0.0", k+".raw"))
	h, _ := os.ReadFile(filepath.Join(x.StoreDir, "2.0.0", k+".usrhash"))
	if !bytes.Equal(got, img) || strings.TrimSpace(string(h)) != hash {
		t.Errorf("2.0.0's extension: %d bytes, usrhash %q", len(got), h)
	}
	// The running version's image moved into its own directory, out of /etc/extensions
	// (which systemd-sysext would prefer over either slot's).
	was, _ := os.ReadFile(filepath.Join(x.StoreDir, "1.0.0", k+".raw"))
	if sha256.Sum256(was) != running {
		t.Error("the running version's extension is not in its store directory")
	}
	if _, err := os.Stat(filepath.Join(x.EtcDir, k+".raw")); err == nil {
		t.Error("the extension is still in /etc/extensions")
	}
}

func TestApplyWithoutAnActivatedExtensionsImage(t *testing.T) {
	f := newFixture(t)
	root := t.TempDir()
	x := &extensions.Stager{EtcDir: filepath.Join(root, "etc/extensions"), StoreDir: filepath.Join(root, "store"), HTTP: f.srv.Client()}
	f.applier.Extensions = x
	os.MkdirAll(x.EtcDir, 0o755)
	os.WriteFile(filepath.Join(x.EtcDir, "kubernetes-v1.37.2.raw"), []byte("image"), 0o644)

	// A payload that names no image of it: the new slot would boot without kubelet.
	req := f.serve("2.0.0.cairn", "2.0.0", f.build("2.0.0", "amd64-usr", "", f.priv))
	_, err := f.applier.Apply(context.Background(), req, Options{})
	var se *StepError
	if !errors.As(err, &se) || se.Step != "stage-extensions" || se.Code != omaha.ErrorCodeError || !errors.Is(err, extensions.ErrMissing) {
		t.Fatalf("got %v", err)
	}
	f.assertSafe()

	// An image that is not what the manifest says.
	_, ext := f.extensionImage("kubernetes-v1.37.2", strings.Repeat("5a", 32))
	ext.SHA256 = strings.Repeat("0", 64)
	req = f.serve("2.0.1.cairn", "2.0.1", f.build("2.0.1", "amd64-usr", "", f.priv, ext))
	_, err = f.applier.Apply(context.Background(), req, Options{})
	if !errors.As(err, &se) || se.Step != "stage-extensions" || se.Code != omaha.ErrorCodePayloadHashMismatch {
		t.Fatalf("got %v", err)
	}
	f.assertSafe()
}
