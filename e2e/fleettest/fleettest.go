// Package fleettest gives tests the fleet harness's images, gated as the VM tiers are: it is
// imported by tests only, so no binary links package testing through it.
package fleettest

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/e2e/fleet"
	"github.com/cairn-os/cairn/image/qemu"
	"github.com/cairn-os/cairn/internal/testenv"
)

var prepared struct {
	once sync.Once
	im   *fleet.Images
	err  error
}

// Images is fleet.Prepare for a test: it requires what building and booting need (root, qemu,
// OVMF, the image tools, CAIRN_BIN naming Cairn's binaries, which make test sets), takes the
// heavy lock for the rest of the test binary, and prepares the images once per binary.
func Images(t testing.TB) *fleet.Images {
	t.Helper()
	testenv.RequireVM(t)
	for _, c := range []string{"qemu-system-x86_64", "qemu-img", "qemu-io", "mmdebstrap", "mkfs.erofs", "veritysetup", "objcopy", "mkfs.vfat", "mcopy", "mdir"} {
		testenv.RequireCommand(t, c)
	}
	testenv.RequireFile(t, qemu.OVMFCode)
	bin := os.Getenv("CAIRN_BIN")
	testenv.Require(t, bin != "", "CAIRN_BIN must name the directory of Cairn's binaries the image carries (make test sets it)")
	testenv.HeavyLock(t)
	prepared.once.Do(func() {
		src, err := moduleRoot()
		if err != nil {
			prepared.err = err
			return
		}
		start := time.Now()
		prepared.im, prepared.err = fleet.Prepare(context.Background(), fleet.Options{Source: src, BinDir: bin,
			Progress: Log(t)})
		t.Logf("e2e images ready in %v", time.Since(start).Round(time.Second))
	})
	if prepared.err != nil {
		t.Fatalf("e2e images: %v", prepared.err)
	}
	return prepared.im
}

// moduleRoot is the directory above the working directory (a test runs in its package's
// directory) that holds go.mod: the image builder's own files are part of the images' key.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// Log is a writer whose lines go to t's log (the harness's progress).
func Log(t testing.TB) io.Writer { return logWriter{t} }

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
