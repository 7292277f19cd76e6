package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/image/qemu"
	"github.com/cairn-os/cairn/internal/testenv"
)

var forTests struct {
	once sync.Once
	im   *Images
	err  error
}

// ImagesForTest is Prepare for the tests of a package two levels below the module's root (this
// one, image/vmtest): it requires what building and booting need (root, qemu, OVMF, the image
// tools, CAIRN_BIN naming Cairn's binaries, which make test sets), takes the heavy lock for the
// rest of the test binary, and prepares the images once per binary.
func ImagesForTest(t testing.TB) *Images {
	t.Helper()
	if testing.Short() {
		t.Skip("VM tiers: not with -short")
	}
	testenv.RequireRoot(t)
	for _, c := range []string{"qemu-system-x86_64", "qemu-img", "qemu-io", "mmdebstrap", "mkfs.erofs", "veritysetup", "objcopy", "mkfs.vfat", "mcopy", "mdir"} {
		testenv.RequireCommand(t, c)
	}
	testenv.RequireFile(t, qemu.OVMFCode)
	bin := os.Getenv("CAIRN_BIN")
	testenv.Require(t, bin != "", "CAIRN_BIN must name the directory of Cairn's binaries the image carries (make test sets it)")
	testenv.HeavyLock(t)
	forTests.once.Do(func() {
		wd, err := os.Getwd()
		if err != nil {
			forTests.err = err
			return
		}
		start := time.Now()
		forTests.im, forTests.err = Prepare(context.Background(), Options{Source: filepath.Join(wd, "../.."), BinDir: bin,
			Progress: logWriter{t}})
		t.Logf("e2e images ready in %v", time.Since(start).Round(time.Second))
	})
	if forTests.err != nil {
		t.Fatalf("e2e images: %v", forTests.err)
	}
	return forTests.im
}

// logWriter sends progress lines to the test's log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
