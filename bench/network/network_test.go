// Package network benchmarks what a CNI network adds to a pod's start: `rkt run --net=default`
// (ptp veth, host-local address, masquerade) against `rkt run --net=none` of busybox
// /bin/true, interleaved, 30 runs each, medians and the difference printed. It runs inside a
// network and mount namespace of its own, so the host's network is never touched. Run it with
// `make bench`; `go test` alone does not.
package network

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
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
		rkt = filepath.Join(b.TempDir(), "rkt")
		if out, err := exec.Command("go", "build", "-tags", "seccomp", "-o", rkt, "github.com/cairn-os/cairn/runtime/cmd/rkt").CombinedOutput(); err != nil {
			b.Fatalf("build rkt: %v\n%s", err, out)
		}
	}
	for i := 0; i < b.N; i++ {
		out := testenv.InPrivateHost(b, "TestInner", innerEnv+"="+rkt)
		for _, l := range strings.Split(out, "\n") {
			if _, res, ok := strings.Cut(l, "RESULT "); ok {
				fmt.Println(strings.TrimSpace(res))
			}
		}
	}
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
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
	run := func(net string) time.Duration {
		start := time.Now()
		out, err := exec.Command(rkt, "--dir="+dir, "--local-config="+conf, "run", "--net="+net, "example.com/true").CombinedOutput()
		d := time.Since(start)
		if err != nil {
			t.Fatalf("rkt run --net=%s: %v\n%s", net, err, out)
		}
		return d
	}
	run("default") // warm: chains made once, caches filled
	run("none")
	var def, none []time.Duration
	for i := 0; i < runs; i++ {
		def = append(def, run("default"))
		none = append(none, run("none"))
	}
	exec.Command(rkt, "--dir="+dir, "gc", "--grace-period=0s").Run()
	md, mn := median(def), median(none)
	t.Logf("RESULT rkt run --net=default median %v, --net=none median %v: the network adds %v (target <= 60ms), ratio %.2f (%d runs each, interleaved)",
		md.Round(time.Millisecond), mn.Round(time.Millisecond), (md - mn).Round(time.Millisecond), float64(md)/float64(mn), runs)
}
