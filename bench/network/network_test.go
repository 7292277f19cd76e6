// Package network benchmarks what a CNI network adds to a pod's start: `rkt run --net=default`
// (ptp veth, host-local address, masquerade) against `rkt run --net=none` of a busybox app that
// prints one line and exits, interleaved, 30 runs each. It prints the medians of the start
// latency (from the exec of `rkt run` to the app's first byte on its stdout: namespaces,
// networks, container, exec) and of the whole run (with the teardown, until `rkt run` exits),
// and what the network adds to each. It runs inside a network and mount namespace of its own,
// so the host's network is never touched. Run it with `make bench`; `go test` alone does not.
package network

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/store"
)

const (
	runs     = 30
	innerEnv = "CAIRN_BENCH_NETWORK_INNER"
)

func BenchmarkPodStartNetDefaultVsNone(b *testing.B) {
	testenv.RequireRoot(b)
	testenv.RequireFile(b, "/usr/lib/cni/ptp")
	rkt := filepath.Join(os.Getenv("CAIRN_BIN"), "rkt")
	if os.Getenv("CAIRN_BIN") == "" {
		dir := b.TempDir()
		rkt = filepath.Join(dir, "rkt")
		if out, err := exec.Command("go", "build", "-tags", "seccomp", "-o", dir+"/", "github.com/cairn-os/cairn/runtime/cmd/rkt", "github.com/cairn-os/cairn/runtime/cmd/rkt-fetch").CombinedOutput(); err != nil {
			b.Fatalf("build rkt: %v\n%s", err, out)
		}
	}
	for i := 0; i < b.N; i++ {
		out := testenv.InPrivateHost(b, "TestInner", innerEnv+"="+rkt)
		for l := range strings.SplitSeq(out, "\n") {
			if _, res, ok := strings.Cut(l, "RESULT "); ok {
				fmt.Println(strings.TrimSpace(res))
			}
		}
	}
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestInner measures inside the private namespaces the benchmark made.
func TestInner(t *testing.T) {
	rkt := os.Getenv(innerEnv)
	if rkt == "" {
		t.Skip("runs only inside BenchmarkPodStartNetDefaultVsNone's namespaces")
	}
	testenv.SetUpPrivateHost(t, "/var/lib/cni")
	dir := t.TempDir()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := fixture.WriteACI(&buf, fixture.ACIOptions{Name: "example.com/true", Labels: map[string]string{"version": "1"},
		App: &types.App{Exec: types.Exec{"/bin/true"}, User: "0", Group: "0"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ImportACI(context.Background(), &buf, store.ImportOptions{Name: "example.com/true", Trusted: true}); err != nil {
		t.Fatal(err)
	}
	conf := t.TempDir()
	// run returns the start latency (to the app's first byte) and the whole run's time.
	run := func(net string) (start, whole time.Duration) {
		cmd := exec.Command(rkt, "--dir="+dir, "--local-config="+conf, "run", "--net="+net, "example.com/true", "--exec=/bin/echo", "--", "started")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		first := make([]byte, 1)
		if _, err := io.ReadFull(out, first); err != nil {
			cmd.Wait()
			t.Fatalf("rkt run --net=%s: no output from the app: %v\n%s", net, err, stderr.String())
		}
		start = time.Since(t0)
		rest, _ := io.ReadAll(out)
		if err := cmd.Wait(); err != nil || string(first)+string(rest) != "started\n" {
			t.Fatalf("rkt run --net=%s: %v, output %q\n%s", net, err, string(first)+string(rest), stderr.String())
		}
		return start, time.Since(t0)
	}
	run("default") // warm: chains made once, caches filled
	run("none")
	var defStart, defWhole, noneStart, noneWhole []time.Duration
	for range runs {
		s, w := run("default")
		defStart, defWhole = append(defStart, s), append(defWhole, w)
		s, w = run("none")
		noneStart, noneWhole = append(noneStart, s), append(noneWhole, w)
	}
	exec.Command(rkt, "--dir="+dir, "gc", "--grace-period=0s").Run()
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	ds, ns, dw, nw := median(defStart), median(noneStart), median(defWhole), median(noneWhole)
	t.Logf("RESULT start latency (to the app's first byte): --net=default median %v, --net=none median %v: the network adds %v (target <= 60ms)",
		ms(ds), ms(ns), ms(ds-ns))
	t.Logf("RESULT whole run (teardown included): --net=default median %v, --net=none median %v: the network adds %v (%d runs each, interleaved)",
		ms(dw), ms(nw), ms(dw-nw), runs)
}
