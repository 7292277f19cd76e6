package testenv

import (
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// HeavyLockPath serializes the machine's heavy jobs (qemu boots, image builds, benchmarks):
// on 2 cores, two of them at once make both slow enough to time out.
const HeavyLockPath = "/tmp/cairn-heavy.lock"

var heavy struct {
	sync.Once
	f   *os.File
	err error
}

// HeavyLock takes HeavyLockPath once and holds it until the test binary exits: the VM tests
// of one package are one heavy job. CAIRN_HEAVY_LOCK_HELD=1 says a parent process holds it.
func HeavyLock(t TB) {
	heavy.Do(func() {
		if os.Getenv("CAIRN_HEAVY_LOCK_HELD") != "" {
			return
		}
		f, err := os.OpenFile(HeavyLockPath, os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			heavy.err = err
			return
		}
		start := time.Now()
		if heavy.err = unix.Flock(int(f.Fd()), unix.LOCK_EX); heavy.err == nil {
			heavy.f = f // kept open: closing it would release the lock
		}
		if d := time.Since(start); d > time.Second {
			t.Logf("waited %v for %s", d.Round(time.Second), HeavyLockPath)
		}
	})
	if heavy.err != nil {
		t.Fatalf("%s: %v", HeavyLockPath, heavy.err)
	}
}
