// Package store benchmarks rkt's image fetch against its peers on one machine: a ~300 MiB
// multi-layer OCI image served by an in-process registry on 127.0.0.1 is fetched into the
// store (download, verify, extract every layer into its tree) by Cairn, by `skopeo copy` +
// `umoci unpack`, and its layers are extracted by plain `tar -xf`. It prints the ratios.
// Run it with `make bench` (go test -bench); `go test` alone does not.
package store

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/fetch"
	"github.com/cairn-os/cairn/runtime/fetch/insecure"
	"github.com/cairn-os/cairn/runtime/store"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

const (
	layers     = 6
	layerBytes = 50 << 20 // uncompressed, per layer: 300 MiB in all
)

// layerTar makes one layer: files of 1 KiB to 2 MiB, half of them text-like (compressing
// about 3:1, like sources and configs), half random (like binaries and compressed assets).
func layerTar(seed int64) []byte {
	rng := rand.New(rand.NewSource(seed))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	words := strings.Fields("the pod image layer store tree blob digest overlay cairn rkt flannel etcd omaha update root usr lib bin share doc")
	total := 0
	for i := 0; total < layerBytes; i++ {
		size := 1 << (10 + rng.Intn(12)) // 1 KiB .. 2 MiB
		size += rng.Intn(size)
		if total+size > layerBytes {
			size = layerBytes - total
		}
		body := make([]byte, size)
		if i%2 == 0 {
			rng.Read(body)
		} else {
			for j := 0; j < size; {
				w := words[rng.Intn(len(words))]
				j += copy(body[j:], w)
				if j < size {
					body[j] = " \n"[rng.Intn(2)]
					j++
				}
			}
		}
		dir := fmt.Sprintf("l%d/d%02d", seed, i%32)
		if i < 32 {
			tw.WriteHeader(&tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755})
		}
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%s/f%05d", dir, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size)})
		tw.Write(body)
		total += size
	}
	tw.Close()
	return buf.Bytes()
}

// benchImage builds the image (gzip layers, as registries serve them) and writes each
// compressed layer to dir for the tar peer.
func benchImage(b *testing.B, dir string) (v1.Image, []string) {
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64",
		RootFS: v1.RootFS{Type: "layers"}, Config: v1.Config{Cmd: []string{"/bin/sh"}}})
	if err != nil {
		b.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	var paths []string
	for i := range layers {
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
		zw.Write(layerTar(int64(i)))
		zw.Close()
		p := filepath.Join(dir, fmt.Sprintf("layer%d.tar.gz", i))
		if err := os.WriteFile(p, gz.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
		paths = append(paths, p)
		l, err := tarball.LayerFromFile(p, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			b.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			b.Fatal(err)
		}
	}
	return img, paths
}

func timed(b *testing.B, what string, f func() error) time.Duration {
	start := time.Now()
	if err := f(); err != nil {
		b.Fatalf("%s: %v", what, err)
	}
	return time.Since(start)
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func BenchmarkFetchOCI(b *testing.B) {
	testenv.RequireRoot(b) // umoci unpack keeps owners; the store chowns as root
	for _, c := range []string{"skopeo", "umoci", "tar"} {
		testenv.RequireCommand(b, c)
	}
	ctx := context.Background()
	work := b.TempDir()
	img, layerFiles := benchImage(b, work)
	var compressed int64
	for _, p := range layerFiles {
		st, _ := os.Stat(p)
		compressed += st.Size()
	}

	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	b.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	ref, err := name.ParseReference(host+"/bench/image:latest", name.Insecure)
	if err != nil {
		b.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		// Cairn: rkt fetch docker://... into a fresh store, layers extracted into trees.
		st, err := store.Open(filepath.Join(work, fmt.Sprintf("rkt%d", n)))
		if err != nil {
			b.Fatal(err)
		}
		st.Log = slog.New(slog.DiscardHandler)
		// rkt fetch --insecure-options=image,http docker://127.0.0.1:PORT/bench/image:latest:
		// resolve the manifest, pull the blobs, check digests, extract each layer once.
		opts, err := insecure.Parse("image,http")
		if err != nil {
			b.Fatal(err)
		}
		f := &fetch.Fetcher{Store: st, HTTP: &http.Client{}, Insecure: opts, PullPolicy: fetch.PullUpdate,
			Log: slog.New(slog.DiscardHandler)}
		fetchImage := func() (string, error) {
			i, err := f.Fetch(ctx, fetch.Request{Image: "docker://" + ref.String()})
			if err != nil {
				return "", err
			}
			return i.ID, nil
		}
		var id string
		cairn := timed(b, "cairn fetch", func() (err error) {
			id, err = fetchImage()
			return err
		})
		treesBefore, _ := os.ReadDir(filepath.Join(st.Dir(), "tree"))
		again := timed(b, "second fetch", func() error {
			again, err := fetchImage()
			if err == nil && again != id {
				err = fmt.Errorf("second fetch gave %s, first %s", again, id)
			}
			return err
		})
		treesAfter, _ := os.ReadDir(filepath.Join(st.Dir(), "tree"))
		if len(treesAfter) != len(treesBefore) || len(treesBefore) != layers {
			b.Fatalf("second fetch changed the trees: %d -> %d", len(treesBefore), len(treesAfter))
		}

		// Peers: skopeo copy + umoci unpack; plain tar -xf of the same gzip layers.
		ociDir := filepath.Join(work, fmt.Sprintf("skopeo%d", n))
		bundle := filepath.Join(work, fmt.Sprintf("bundle%d", n))
		skopeo := timed(b, "skopeo copy", func() error {
			return run("skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://"+ref.String(), "oci:"+ociDir+":latest")
		})
		umoci := timed(b, "umoci unpack", func() error {
			return run("umoci", "unpack", "--image", ociDir+":latest", bundle)
		})
		tarDir := filepath.Join(work, fmt.Sprintf("tar%d", n))
		os.Mkdir(tarDir, 0o755)
		tarT := timed(b, "tar -xf", func() error {
			for _, p := range layerFiles {
				if err := run("tar", "-xf", p, "-C", tarDir); err != nil {
					return err
				}
			}
			return nil
		})

		mib := float64(layers*layerBytes) / (1 << 20)
		fmt.Printf("\nstore bench: %d layers, %.0f MiB uncompressed, %.0f MiB gzip, registry on %s\n", layers, mib, float64(compressed)/(1<<20), host)
		fmt.Printf("  cairn fetch (download+verify+extract):  %6.2fs  %6.0f MiB/s\n", cairn.Seconds(), mib/cairn.Seconds())
		fmt.Printf("  skopeo copy + umoci unpack:              %6.2fs  (%.2fs + %.2fs)\n", (skopeo + umoci).Seconds(), skopeo.Seconds(), umoci.Seconds())
		fmt.Printf("  tar -xf of the layers (already local):   %6.2fs  %6.0f MiB/s\n", tarT.Seconds(), mib/tarT.Seconds())
		fmt.Printf("  second cairn fetch (no-op):              %6.3fs\n", again.Seconds())
		fmt.Printf("  ratio cairn/tar throughput:              %6.2fx  (target >= 0.8x)\n", tarT.Seconds()/cairn.Seconds())
		fmt.Printf("  ratio cairn/(skopeo+umoci) throughput:   %6.2fx\n", (skopeo+umoci).Seconds()/cairn.Seconds())
		b.ReportMetric(tarT.Seconds()/cairn.Seconds(), "x-tar")
		b.ReportMetric((skopeo+umoci).Seconds()/cairn.Seconds(), "x-skopeo+umoci")
		b.ReportMetric(again.Seconds()*1000, "ms-second-fetch")

		for _, d := range []string{st.Dir(), ociDir, bundle, tarDir} {
			os.RemoveAll(d)
		}
	}
}
