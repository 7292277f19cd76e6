// Command cairn-demo is `make demo`: it builds two releases of Cairn (cached), boots a
// two-host cluster in qemu with first-boot configs, shows a pod on one host answering a pod on
// the other over flannel's overlay, and updates both hosts from an Omaha server, rebooting them
// one at a time through etcd. Everything it starts stays on the host's loopback.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/cairn-os/cairn/e2e/fleet"
	"github.com/cairn-os/cairn/image/qemu"
	"github.com/cairn-os/cairn/internal/disklayout"
)

func main() {
	out := flag.String("o", "_output/demo", "scratch directory (emptied first)")
	bin := flag.String("bin", "bin", "Cairn's binaries, which the images carry (make build)")
	src := flag.String("source", ".", "the source tree (the image builder's files are part of the cache key)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *out, *bin, *src)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairn-demo:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Printf("\n\033[1m==> %s\033[0m\n", fmt.Sprintf(format, args...))
}

func run(ctx context.Context, out, bin, src string) error {
	if os.Geteuid() != 0 {
		return errors.New("the demo builds disk images and boots VMs: run it as root")
	}
	for _, c := range []string{"qemu-system-x86_64", "qemu-img", "mmdebstrap"} {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("%s is missing (make deps installs it)", c)
		}
	}
	if _, err := os.Stat(qemu.OVMFCode); err != nil {
		return fmt.Errorf("UEFI firmware: %w (make deps installs ovmf)", err)
	}
	var err error
	if out, err = filepath.Abs(out); err != nil {
		return err
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	start := time.Now()

	step("Build Cairn %s and %s (and %s, the tests' bad update) with this tree's binaries (cached in /var/cache/cairn-image; cold: ~7 min)", fleet.Old, fleet.New, fleet.Bad)
	im, err := fleet.Prepare(ctx, fleet.Options{Source: src, BinDir: bin, Progress: os.Stdout})
	if err != nil {
		return err
	}
	built := time.Since(start)

	step("Start the fleet's services on the host's loopback: etcd, the update console (cairn-console), a release server")
	c, err := fleet.NewCluster(ctx, out, im, os.Stdout)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Printf("etcd %s, console (Omaha at /v1/update/) %s, flannel network %s in etcd\n", c.Fleet.Etcd.Endpoint,
		fleet.GuestURL(c.Fleet.ConsolePort), fleet.FlannelNetwork)
	cfg := filepath.Join(out, "cairn-1", "config.ign")
	fmt.Printf("first-boot configs (Ignition 3.4): %s, %s\n", cfg, filepath.Join(out, "cairn-2", "config.ign"))
	fmt.Println("they set root's ssh key, an address on the cluster cable, flanneld against etcd, the flannel")
	fmt.Println("CNI network, updates from the console with REBOOT_STRATEGY=etcd-lock, and on cairn-1 a pod unit")

	step("Boot both hosts in qemu (UEFI, systemd-boot, dm-verity /usr; TCG, so expect ~1 min)")
	bootStart := time.Now()
	if err := c.Boot(ctx, fleet.Old, "A"); err != nil {
		return err
	}
	booted := time.Since(bootStart)
	for _, h := range c.Hosts {
		fmt.Printf("log in: %s\n", h.SSHCommand(c.Fleet.KeyFile()))
	}

	step("Pods talk across hosts over flannel's VXLAN overlay")
	ov, err := c.Overlay(ctx)
	if err != nil {
		return err
	}

	step("Update both hosts to Cairn %s: download, verify, write slot B, reboot one at a time (etcd lock)", fleet.New)
	up, err := c.Update(ctx, im.NewPayload())
	if err != nil {
		return err
	}
	for _, h := range c.Hosts {
		st, err := fleet.WaitGood(ctx, h, disklayout.SlotB)
		if err != nil {
			return err
		}
		fmt.Printf("%s: running %s from slot %s, marked %s (systemd-bless-boot); slot A keeps %s for a rollback\n",
			h.Name, st.Slot(st.Active).Version, st.Active, st.Slot(st.Active).State, st.Slot(disklayout.SlotA).Version)
	}
	for _, rb := range up.Reboots {
		fmt.Printf("%s held the reboot lock from +%v (went down) to +%v (back up, released)\n", rb.Host.Name,
			rb.Down.Sub(up.Offered).Round(time.Second), rb.Released.Sub(up.Offered).Round(time.Second))
	}
	updated := up.Reboots[len(up.Reboots)-1].Up.Sub(up.Offered)

	step("Done in %v", time.Since(start).Round(time.Second))
	fmt.Printf("images %v, boot %v, pod to pod across hosts %v, update of both hosts %v (TCG, %d CPUs)\n",
		built.Round(time.Second), booted.Round(time.Second), ov.Took.Round(time.Second), updated.Round(time.Second), runtime.NumCPU())
	fmt.Printf("state: %s (VM consoles in cairn-*/console-*.log)\n", out)
	return nil
}
