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

func TestProgressLine(t *testing.T) {
	for _, tc := range []struct{ op, prog, want string }{
		{"UPDATE_STATUS_IDLE", "0.000000", "IDLE"},
		{"UPDATE_STATUS_DOWNLOADING", "0.049441", "DOWNLOADING 0%"},
		{"UPDATE_STATUS_DOWNLOADING", "0.274228", "DOWNLOADING 25%"},
		{"UPDATE_STATUS_FINALIZING", "0.960000", "FINALIZING 75%"},
		{"UPDATE_STATUS_UPDATED_NEED_REBOOT", "1.000000", "UPDATED_NEED_REBOOT 100%"},
		{"UPDATE_STATUS_VERIFYING", "", "VERIFYING"},
	} {
		if got := progressLine(tc.op, tc.prog); got != tc.want {
			t.Errorf("progressLine(%q, %q) = %q, want %q", tc.op, tc.prog, got, tc.want)
		}
	}
}
