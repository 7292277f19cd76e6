package cgprime

import (
	"os"
	"testing"

	"github.com/cairn-os/cairn/internal/testenv"
)

// The move leaves the process where it was, in every hierarchy, and a second Start starts
// nothing more.
func TestStart(t *testing.T) {
	testenv.RequireRoot(t)
	before, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	Start()
	moved.Lock()
	first := moved.done
	moved.Unlock()
	Start()
	moved.Lock()
	second := moved.done
	moved.Unlock()
	if first == nil || first != second {
		t.Fatalf("the second Start started another move (or the first none): %v, %v", first, second)
	}
	Wait()
	select {
	case <-first:
	default:
		t.Fatal("Wait returned before the move was over")
	}
	after, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Errorf("the process moved:\n%s\nnow:\n%s", before, after)
	}
}
