package store

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/fixture/fixturetest"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// The store tests re-run the test binary as a child that imports an image (or collects
// garbage) in a store, so that a parent can kill it or race several against each other.
const (
	helperEnv      = "CAIRN_STORE_HELPER" // "import" or "gc"
	helperDirEnv   = "CAIRN_STORE_HELPER_DIR"
	helperSrcEnv   = "CAIRN_STORE_HELPER_SRC"
	helperCrashEnv = "CAIRN_STORE_HELPER_CRASH" // a crash point: the child SIGKILLs itself there
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode))
	}
	os.Exit(m.Run())
}

func helperMain(mode string) int {
	s, err := Open(os.Getenv(helperDirEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s.Log = slog.New(slog.DiscardHandler)
	if point := os.Getenv(helperCrashEnv); point != "" {
		s.hook = func(p string) {
			if p == point {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				time.Sleep(time.Minute)
			}
		}
	}
	ctx := context.Background()
	switch mode {
	case "import":
		if _, err := s.ImportFile(ctx, os.Getenv(helperSrcEnv), ImportOptions{}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	case "gc":
		for range 20 {
			if _, err := s.GC(ctx, -1); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
	}
	return 0
}

func helper(t *testing.T, mode, dir, src, crash string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperDirEnv+"="+dir, helperSrcEnv+"="+src, helperCrashEnv+"="+crash)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

// bigImage writes a multi-layer OCI layout of many files (about layers*files*size bytes) and
// returns its path and, per layer, the files it must hold.
func bigImage(t *testing.T, layers, files, size int) (string, []map[string]int) {
	t.Helper()
	rng := rand.New(rand.NewSource(1))
	words := []string{"cairn ", "rkt ", "overlay ", "layer ", "store ", "tree ", "blob ", "digest "}
	var tars [][]byte
	var want []map[string]int
	for l := range layers {
		var es []fixture.Entry
		w := map[string]int{}
		for f := range files {
			var b strings.Builder
			for b.Len() < size {
				b.WriteString(words[rng.Intn(len(words))])
				fmt.Fprintf(&b, "%d\n", rng.Int63())
			}
			name := fmt.Sprintf("l%d/d%02d/f%04d", l, f%16, f)
			es = append(es, fixture.Entry{Header: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}, Body: b.String()})
			w[name] = b.Len()
		}
		tb, err := fixture.LayerTar(es)
		if err != nil {
			t.Fatal(err)
		}
		tars = append(tars, tb)
		want = append(want, w)
	}
	img, err := fixture.OCIImage([]string{"/bin/true"}, tars...)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "big")
	if err := fixture.WriteOCILayout(dir, img, "example.com/big:1"); err != nil {
		t.Fatal(err)
	}
	return dir, want
}

// checkStore opens the store (which must clear temp files) and checks that every image it
// shows is complete: no partial image is ever visible. It returns how many images it holds.
func checkStore(t *testing.T, dir string, want []map[string]int) int {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Log = slog.New(slog.DiscardHandler)
	if _, _, _, tmp := contents(t, s); len(tmp) != 0 {
		t.Fatalf("temp files survive Open: %v", tmp)
	}
	imgs, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs {
		if len(img.Layers) != len(want) {
			t.Fatalf("image %s has %d layers; want %d", img.ID, len(img.Layers), len(want))
		}
		for i, w := range want {
			for name, size := range w {
				st, err := os.Stat(filepath.Join(img.Layers[i], name))
				if err != nil || st.Size() != int64(size) {
					t.Fatalf("visible image %s: layer %d: %s: %v (size want %d)", img.ID, i, name, err, size)
				}
			}
		}
	}
	return len(imgs)
}

// TestKilledImport kills an import with SIGKILL at fixed points of its commit and at timed
// points throughout, then checks that the next Open clears the leftovers, that no partial
// image is visible, and that a retry succeeds.
func TestKilledImport(t *testing.T) {
	testenv.SkipShort(t, "spawns and kills importing processes")
	src, want := bigImage(t, 4, 400, 16<<10) // ~25 MiB in 1600 files
	// A full import, timed, as the scale for the timed kills.
	start := time.Now()
	full := t.TempDir()
	if err := helper(t, "import", full, src, "").Wait(); err != nil {
		t.Fatalf("uninterrupted import: %v", err)
	}
	took := time.Since(start)
	if n := checkStore(t, full, want); n != 1 {
		t.Fatalf("uninterrupted import left %d images", n)
	}
	type kill struct {
		point string
		after time.Duration
	}
	var kills []kill
	for _, p := range []string{"staged", "commit-layer", "record"} {
		kills = append(kills, kill{point: p})
	}
	for _, f := range []float64{0.1, 0.3, 0.5, 0.7, 0.9} {
		kills = append(kills, kill{after: time.Duration(f * float64(took))})
	}
	for _, k := range kills {
		name := k.point
		if name == "" {
			name = k.after.Round(time.Millisecond).String()
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cmd := helper(t, "import", dir, src, k.point)
			if k.point == "" {
				time.Sleep(k.after)
				cmd.Process.Signal(syscall.SIGKILL)
			}
			err := cmd.Wait()
			var ee *exec.ExitError
			if k.point != "" && !(errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL) {
				t.Fatalf("child was to die at %s: %v", k.point, err)
			}
			n := checkStore(t, dir, want)
			if k.point != "" && n != 0 {
				t.Fatalf("image visible after a kill at %s", k.point)
			}
			// Retry: succeeds, and the image is complete.
			if err := helper(t, "import", dir, src, "").Wait(); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if n := checkStore(t, dir, want); n != 1 {
				t.Fatalf("retry left %d images", n)
			}
		})
	}
}

// TestConcurrentProcesses races several processes importing the same image and another one
// into one store while another process collects garbage in a loop.
func TestConcurrentProcesses(t *testing.T) {
	testenv.SkipShort(t, "spawns processes")
	src, want := bigImage(t, 3, 100, 8<<10)
	dir := t.TempDir()
	other := filepath.Join(t.TempDir(), "other")
	img := ociT(t, layerT(t, map[string]string{"other": "x"}))
	if err := fixture.WriteOCILayout(other, img, "example.com/other:1"); err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	for range 3 {
		cmds = append(cmds, helper(t, "import", dir, src, ""))
	}
	cmds = append(cmds, helper(t, "import", dir, other, ""), helper(t, "gc", dir, "", ""))
	var wg sync.WaitGroup
	errs := make([]error, len(cmds))
	for i, c := range cmds {
		wg.Go(func() { errs[i] = c.Wait() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("process %d: %v: %s", i, err, cmds[i].Stderr.(*bytes.Buffer))
		}
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := s.List(context.Background())
	if err != nil || len(imgs) != 2 {
		t.Fatalf("%d images, %v; want 2", len(imgs), err)
	}
	big, err := s.Get(context.Background(), "example.com/big:1")
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		for name := range w {
			if _, err := os.Stat(filepath.Join(big.Layers[i], name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	trees, _, _, tmp := contents(t, s)
	if len(trees) != 4 || len(tmp) != 0 {
		t.Fatalf("trees %v, tmp %v; want 4 trees and no temp files", trees, tmp)
	}
	if _, err := layout.FromPath(src); err != nil {
		t.Fatal(err)
	}
}

// TestKilledACIImport kills an ACI import after extraction and after its blob and tree are in
// place but before its metadata: neither shows an image, and a retry succeeds.
func TestKilledACIImport(t *testing.T) {
	testenv.SkipShort(t, "spawns and kills importing processes")
	im := fixturetest.Build(t)
	for _, point := range []string{"aci-staged", "aci-committed"} {
		t.Run(point, func(t *testing.T) {
			dir := t.TempDir()
			err := helper(t, "import", dir, im.ACI, point).Wait()
			var ee *exec.ExitError
			if !(errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL) {
				t.Fatalf("child was to die at %s: %v", point, err)
			}
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			_, _, records, tmp := contents(t, s)
			if len(records)+len(tmp) != 0 {
				t.Fatalf("after a kill at %s: records %v, tmp %v", point, records, tmp)
			}
			if err := helper(t, "import", dir, im.ACI, "").Wait(); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if err := s.Verify(context.Background(), im.ACIID); err != nil {
				t.Fatalf("retried image: %v", err)
			}
		})
	}
}
