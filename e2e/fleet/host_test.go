package fleet

import (
	"testing"
	"time"
)

func TestHungBeforeInit(t *testing.T) {
	kernel := "[    1.016468] clocksource: Switched to clocksource hpet\n"
	booted := kernel + "cairn-init: mount API filesystems: ok (3ms)\n"
	for _, tc := range []struct {
		name    string
		console string
		quiet   time.Duration
		want    bool
	}{
		{"kernel silent past the limit", kernel, KernelStall, true},
		{"firmware silent past the limit", "", KernelStall + time.Second, true},
		{"kernel printing", kernel, KernelStall - time.Second, false},
		{"initramfs started, then silent", booted, time.Hour, false},
		{"a system up and quiet", booted + "CAIRN-BOOTED version=1.0.0 slot=A\n", time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hungBeforeInit(tc.console, tc.quiet); got != tc.want {
				t.Errorf("hungBeforeInit(%q, %v) = %v, want %v", tc.console, tc.quiet, got, tc.want)
			}
		})
	}
}
