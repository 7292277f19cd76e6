// Command cairn-demo is `make demo`: it builds two releases of Cairn (cached), boots a
// two-host cluster in qemu with first-boot configs, shows a pod on one host answering a pod on
// the other over flannel's overlay, and updates both hosts as a rollout of the fleet's
// console (cairn-console: a canary first, one host at a time), rebooting them one at a time
// through etcd. The console's pages are served on the host's loopback for a browser to watch
// it; everything it starts stays on the loopback.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/e2e/fleet"
	"github.com/cairn-os/cairn/image/qemu"
	"github.com/cairn-os/cairn/internal/disklayout"
)

func main() {
	out := flag.String("o", "_output/demo", "scratch directory (emptied first)")
	bin := flag.String("bin", "bin", "Cairn's binaries, which the images carry (make build)")
	src := flag.String("source", ".", "the source tree (the image builder's files are part of the cache key)")
	hold := flag.Bool("hold", false, "keep the console and the hosts running at the end, until interrupted")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *out, *bin, *src, *hold)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairn-demo:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Printf("\n\033[1m==> %s\033[0m\n", fmt.Sprintf(format, args...))
}

// DemoPolicy is the rollout the demo's update goes through: a canary that must complete (run
// the new version, blessed good) before the other host is offered it, one host updating at a
// time, and a group that halts itself at the first failure.
var DemoPolicy = func() rollout.Policy {
	p := rollout.DefaultPolicy()
	p.Canaries, p.MaxInFlight, p.HaltErrors = 1, 1, 1
	return p
}()

// consoleLogin makes the console's admin and sets the demo's rollout policy, and says where
// to look: what a person needs before the update starts.
func consoleLogin(ctx context.Context, f *fleet.Fleet, w io.Writer) error {
	pw, err := f.AddOperator(ctx, "admin")
	if err != nil {
		return err
	}
	if err := f.SetRollout(ctx, DemoPolicy); err != nil {
		return err
	}
	fmt.Fprintf(w, "Open %s — user admin, password %s\n", f.ConsoleURL(), pw)
	fmt.Fprintf(w, "(the fleet's update service and console; from another machine: ssh -L %d:127.0.0.1:%d to this one)\n", f.ConsolePort, f.ConsolePort)
	fmt.Fprintf(w, "group stable's rollout policy: %d canary, at most %d updating at a time, halt after %d failure\n",
		DemoPolicy.Canaries, DemoPolicy.MaxInFlight, DemoPolicy.HaltErrors)
	return nil
}

func run(ctx context.Context, out, bin, src string, hold bool) error {
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
	fmt.Printf("etcd %s, console (Omaha at /v1/update/) %s for the hosts, flannel network %s in etcd\n", c.Fleet.Etcd.Endpoint,
		fleet.GuestURL(c.Fleet.ConsolePort), fleet.FlannelNetwork)
	if err := consoleLogin(ctx, c.Fleet, os.Stdout); err != nil {
		return err
	}
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

	step("Update both hosts to Cairn %s as a rollout: a canary first, then the other host; each downloads, verifies, writes slot B and reboots (etcd lock)", fleet.New)
	if u, err := c.Fleet.GroupURL(ctx); err == nil {
		fmt.Printf("watch it live: %s (the canary's progress, the other host held back \"waiting for canaries\", the versions changing)\n", u)
		fmt.Printf("the hosts' flannel leases and the reboot lock: %scluster\n", c.Fleet.ConsoleURL())
	}
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
	fmt.Printf("the rollout in the console: %s (its activity log: %sactivity)\n", c.Fleet.ConsoleURL(), c.Fleet.ConsoleURL())
	if !hold {
		fmt.Println("the console and the hosts stop now; cairn-demo -hold keeps them running until Ctrl-C")
		return nil
	}
	fmt.Println("the console and the hosts keep running: Ctrl-C stops them")
	<-ctx.Done()
	return nil
}
