package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/ignition/v2/config/v3_4/types"

	"github.com/cairn-os/cairn/e2e/fleet"
	"github.com/cairn-os/cairn/e2e/fleettest"
	"github.com/cairn-os/cairn/image/build"
	"github.com/cairn-os/cairn/image/qemu"
)

// watch stops h when the test ends and shows the end of its console if it failed.
func watch(t *testing.T, h *fleet.Host) {
	h.Notes = fleettest.Log(t)
	t.Cleanup(func() {
		if t.Failed() && h.VM() != nil {
			t.Logf("%s console, boot %d (last 4000 bytes; every boot's is in %s):\n%s", h.Name, h.Boots(), h.Machine.VarsDir, h.Tail(4000))
		}
		h.Stop()
	})
}

func run(t *testing.T, ctx context.Context, h *fleet.Host, cmd string) string {
	t.Helper()
	out, err := h.Run(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// eventually is fleet.Eventually that fails the test.
func eventually(t *testing.T, ctx context.Context, h *fleet.Host, cmd string, check func(string) bool) string {
	t.Helper()
	out, err := fleet.Eventually(ctx, h, cmd, check)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

const helloUnit = `[Unit]
Description=The example pod, under systemd
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/usr/bin/rkt run --insecure-options=image /usr/share/cairn/examples/hello.aci
Delegate=yes
KillMode=mixed

[Install]
WantedBy=multi-user.target
`

// TestInstallFromPXE is scenarios 1 and 2: a machine boots the live PXE image with an empty
// second disk, cairn-install downloads the signed release onto it with a first-boot config,
// and the machine then boots from the disk: the config's user, key, file and units are there,
// and its pod runs under systemd with its output in the unit's journal.
func TestInstallFromPXE(t *testing.T) {
	im := fleettest.Images(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	f, err := fleet.StartFleet(ctx, t.TempDir(), im)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	target := filepath.Join(dir, "target.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", target, "4G").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	live, err := fleet.NewConfig(f.Key).JSON()
	if err != nil {
		t.Fatal(err)
	}
	liveIgn := filepath.Join(dir, "live.ign")
	if err := os.WriteFile(liveIgn, live, 0o644); err != nil {
		t.Fatal(err)
	}
	pxe := &fleet.Host{Name: "live", Key: f.Key, Machine: qemu.Machine{
		Kernel: filepath.Join(im.Old, build.PXEKernel), Initrd: filepath.Join(im.Old, build.PXEInitrd),
		Append: "console=ttyS0,115200n8", MemoryMB: 2048, CPUs: 2, Disk: target, VarsDir: dir,
		FwCfg: map[string]string{"opt/org.cairn/config": liveIgn}}}
	watch(t, pxe)
	start := time.Now()
	if err := pxe.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	if _, took, err := pxe.WaitFor(ctx, fleet.BootMarker(fleet.Old, "pxe")); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("live PXE system up in %v", took.Round(100*time.Millisecond))
	}

	// The config the installed machine boots with: a user with a key and groups, a file, a
	// unit of our own and the example pod under systemd.
	const motd = "installed by cairn-install\n"
	cfg := fleet.NewConfig(f.Key).File("/etc/motd", 0o640, motd).
		Unit("hello.service", helloUnit, true).
		Unit("e2e-firstboot.service", "[Unit]\nDescription=proof the config's units run\n[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo e2e-unit-ran > /run/e2e-unit'\n[Install]\nWantedBy=multi-user.target\n", true)
	cfg.Passwd.Users = append(cfg.Passwd.Users, cfg.Passwd.Users[0])
	cfg.Passwd.Users[1].Name = "core"
	cfg.Passwd.Users[1].Groups = []types.Group{"adm", "systemd-journal"}
	ign, err := cfg.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pxe.RunInput(ctx, "cat > /tmp/config.ign", strings.NewReader(string(ign))); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, pxe, "cairn-install validate /tmp/config.ign")
	installStart := time.Now()
	out := run(t, ctx, pxe, fmt.Sprintf("cairn-install -d /dev/vda -b %s -V %s -i /tmp/config.ign 2>&1", fleet.GuestURL(f.ReleasePort), fleet.Old))
	t.Logf("cairn-install in %v:\n%s", time.Since(installStart).Round(100*time.Millisecond), lastLines(out, 8))
	pxe.Run(ctx, "systemctl poweroff --no-block")
	if err := pxe.WaitExit(ctx); err != nil {
		t.Fatal(err)
	}

	h := &fleet.Host{Name: "installed", Key: f.Key, Machine: qemu.Machine{Disk: target, VarsDir: dir, MemoryMB: 1536, CPUs: 2}}
	watch(t, h)
	if err := h.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	_, took, err := h.WaitFor(ctx, fleet.BootMarker(fleet.Old, "A"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("installed disk booted in %v; install, from the live boot to the disk's first boot: %v", took.Round(100*time.Millisecond), time.Since(start).Round(time.Second))
	if c := h.VM().Console(); !strings.Contains(c, "first-boot config applied") {
		t.Error("the installed disk's first boot did not apply the config from its OEM partition")
	}

	// Scenario 1: what the config asked for.
	core := h.As("core")
	if got := run(t, ctx, core, "id -nG"); !strings.Contains(got, "adm") || !strings.Contains(got, "systemd-journal") {
		t.Errorf("user core's groups: %q", got)
	}
	if got := run(t, ctx, h, "stat -c '%a %U' /etc/motd && cat /etc/motd"); got != "640 root\n"+motd {
		t.Errorf("/etc/motd: %q", got)
	}
	eventually(t, ctx, h, "cat /run/e2e-unit", func(s string) bool { return s == "e2e-unit-ran\n" })

	// Scenario 2: the pod runs under systemd, its output is in the unit's journal, and
	// stopping the unit stops the pod.
	eventually(t, ctx, h, "journalctl -u hello.service --no-pager -o cat", func(s string) bool {
		return strings.Contains(s, "Hello from Cairn! This is pod")
	})
	run(t, ctx, h, "systemctl stop hello.service")
	if got, _ := h.Run(ctx, "systemctl is-active hello.service"); strings.TrimSpace(got) == "active" {
		t.Errorf("hello.service still active after systemctl stop")
	}
	if got, err := h.Run(ctx, "pgrep -x hello"); err == nil {
		t.Errorf("the pod's app still runs after systemctl stop: pid %s", got)
	}
	// Isolators on cgroup v2 (this host is v1 hybrid: only a guest shows them): the pod's
	// cgroup sits in its unit's, with the limit.
	run(t, ctx, h, "systemd-run --unit=memtest -p Delegate=yes -p KillMode=mixed rkt run --insecure-options=image --memory=48Mi /usr/share/cairn/examples/hello.aci")
	eventually(t, ctx, h, "grep -r . /sys/fs/cgroup/system.slice/memtest.service --include=memory.max", func(s string) bool {
		for l := range strings.SplitSeq(s, "\n") {
			if strings.Contains(l, "/rkt-") && strings.HasSuffix(l, "/memory.max:50331648") { // 48Mi
				return true
			}
		}
		return false
	})
	run(t, ctx, h, "systemctl stop memtest.service")
	out = run(t, ctx, h, "rkt list --format=json")
	var pods []struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(out), &pods); err != nil || len(pods) != 2 || pods[0].State == "running" || pods[1].State == "running" {
		t.Errorf("rkt list after systemctl stop (%v): %s", err, out)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
