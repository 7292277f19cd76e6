package pods

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/fixture"
)

// appRuns is how many times each is timed in BenchmarkAppStart.
const appRuns = 30

// BenchmarkAppStart times adding and starting busybox /bin/true in a sandbox that runs
// already (`rkt app add` then `rkt app start`: the image resolved and checked, the root
// mounted, the container created and exec'd; no namespace or network left to make) against
// `rkt run --net=none` of the same image and `runc run` of the same tree (each runc), interleaved,
// 30 runs each, spaced and back to back (see the package comment), and prints the medians and ratios.
func BenchmarkAppStart(b *testing.B) {
	testenv.RequireRoot(b)
	testenv.RequireFile(b, fixture.BusyboxPath)
	rkt := rktBinary(b)
	dir, where := workDir(b)
	data := trueImage(b, dir)
	rktCmd := func(args ...string) *exec.Cmd {
		return exec.Command(rkt, append([]string{"--dir=" + data}, args...)...)
	}

	uf := filepath.Join(dir, "uuid")
	sb := rktCmd("app", "sandbox", "--net=none", "--uuid-file-save="+uf)
	if err := sb.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		sb.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { sb.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			sb.Process.Kill()
			<-done
		}
		rktCmd("gc", "--grace-period=0s").Run()
	})
	var uuid string
	for deadline := time.Now().Add(20 * time.Second); uuid == ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the sandbox did not start")
		}
		u, _ := os.ReadFile(uf)
		uuid = strings.TrimSpace(string(u))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, rkt, "--dir="+data, "status", "--wait-ready=20s", uuid).CombinedOutput(); err != nil {
		b.Fatalf("sandbox not ready: %v %s", err, out)
	}

	var added int
	var adds, starts []time.Duration // the two verbs apart (CRI's create and start), warm-up left out
	peers := []peer{
		{"app add + app start", func(i int) time.Duration {
			added++ // app rm leaves nothing behind, but each app gets a name of its own
			name := fmt.Sprintf("true-%d", added)
			a := timed(b, "app add", rktCmd("app", "add", uuid, fixture.ACIName, "--name="+name))
			s := timed(b, "app start", rktCmd("app", "start", uuid, "--app="+name))
			if i >= 0 {
				adds, starts = append(adds, a), append(starts, s)
			}
			// Not timed: the app is taken out again, so the pod stays the same size.
			if out, err := rktCmd("app", "rm", uuid, "--app="+name).CombinedOutput(); err != nil {
				b.Fatalf("app rm: %v %s", err, out)
			}
			return a + s
		}},
		{"rkt run", func(int) time.Duration {
			return timed(b, "rkt run", rktCmd("run", "--net=none", "--pull-policy=never", fixture.ACIName))
		}},
	}
	rs, _ := runcPeers(b, dir)
	peers = append(peers, rs...)
	gc := func(i int) {
		if i%10 == 9 {
			rktCmd("gc", "--grace-period=0s").Run()
		}
	}
	measure(b, "app start in a running sandbox vs pod start, busybox /bin/true, on "+where, "app", peers, appRuns, gc)
	// measure runs the spaced rounds, then as many back to back.
	n := len(adds) / 2
	fmt.Printf("of which app add, app start: medians %s and %s spaced, %s and %s back to back\n",
		ms(median(adds[:n])), ms(median(starts[:n])), ms(median(adds[n:])), ms(median(starts[n:])))
}
