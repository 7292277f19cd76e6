package stage1

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cairn-os/cairn/internal/mount"
)

func TestMountOverlay(t *testing.T) {
	einval := fmt.Errorf("mount overlay on /pods/run/u/apps/web/rootfs (overlay): %w", syscall.EINVAL)
	eperm := fmt.Errorf("mount overlay on /pods/run/u/apps/web/rootfs (overlay): %w", syscall.EPERM)
	for _, c := range []struct {
		name     string
		refused  bool // before the first root
		volatile error
		durable  error
		// The mounts tried for each of two roots in a row, v for volatile and d for durable.
		tried       [2]string
		wantErr     error
		wantRefused bool
	}{
		{name: "kernel with volatile", tried: [2]string{"v", "v"}},
		{name: "kernel before 5.10", volatile: einval, tried: [2]string{"vd", "d"}, wantRefused: true},
		{name: "known before 5.10", refused: true, volatile: einval, tried: [2]string{"d", "d"}, wantRefused: true},
		{name: "EINVAL from both", volatile: einval, durable: einval, tried: [2]string{"vd", "vd"}, wantErr: syscall.EINVAL},
		{name: "other error", volatile: eperm, durable: eperm, tried: [2]string{"v", "v"}, wantErr: syscall.EPERM},
		{name: "known before 5.10, durable fails", refused: true, durable: eperm, tried: [2]string{"d", "d"}, wantErr: syscall.EPERM, wantRefused: true},
	} {
		var refused atomic.Bool
		refused.Store(c.refused)
		for i, want := range c.tried {
			var tried strings.Builder
			err := mountOverlay([]string{"/cas/tree/top"}, "/pods/run/u", "web", &refused, func(m mount.Mount) error {
				if strings.HasSuffix(m.Data, ",volatile") {
					tried.WriteString("v")
					return c.volatile
				}
				tried.WriteString("d")
				return c.durable
			})
			if tried.String() != want {
				t.Errorf("%s: root %d: tried %q, want %q", c.name, i+1, tried.String(), want)
			}
			if !errors.Is(err, c.wantErr) {
				t.Errorf("%s: root %d: %v, want %v", c.name, i+1, err, c.wantErr)
			}
		}
		if refused.Load() != c.wantRefused {
			t.Errorf("%s: refused %v, want %v", c.name, refused.Load(), c.wantRefused)
		}
	}
}

func TestDurableOverlayMount(t *testing.T) {
	layers := []string{"/cas/tree/base", "/cas/tree/top"}
	d := durableOverlayMount(layers, "/pods/run/u", "web")
	v := OverlayMount(layers, "/pods/run/u", "web")
	if d.Data+",volatile" != v.Data || slices.Contains(strings.Split(d.Data, ","), "volatile") {
		t.Errorf("durable %q against volatile %q", d.Data, v.Data)
	}
}
