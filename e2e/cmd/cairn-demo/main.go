// Command cairn-demo is `make demo`: it builds two releases of Cairn (cached) and the
// Kubernetes system extension for each, starts Kubernetes' control plane (kubeadm init in a
// network namespace of this machine), boots two Cairn hosts in qemu whose first-boot configs
// make them its nodes, shows a pod on one host answering a pod on the other over flannel's
// overlay, `kubectl get nodes`, and a Deployment's pods answering across hosts through a
// Service, then updates both hosts as a rollout of the fleet's console (cairn-console), each
// node drained by locksmithd's kubernetes strategy before it reboots, one at a time, while a
// client counts the Service's answers. The console's pages are
// served on the host's loopback for a browser to watch it; everything it starts stays on the
// loopback.
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
	"github.com/cairn-os/cairn/e2e/kubenodes"
	"github.com/cairn-os/cairn/image/qemu"
	"github.com/cairn-os/cairn/image/sysext"
	"github.com/cairn-os/cairn/internal/testenv"
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

// DemoPolicy is the rollout the demo's update goes through: offered to both hosts at once,
// which download and write it side by side, the group halting itself at the first failure.
// One host at a time is the nodes' own doing: locksmithd's kubernetes strategy takes a
// coordination.k8s.io Lease before it drains a node and releases it once the node is back,
// as Kubernetes' reboot daemons do. (A canary would hold the second host's download until the
// first is back: a minute and a half more under TCG.)
var DemoPolicy = func() rollout.Policy {
	p := rollout.DefaultPolicy()
	p.HaltErrors = 1
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
	fmt.Fprintf(w, "group stable's rollout policy: every host at once, halt after %d failure (the nodes' reboot Lease lets one reboot at a time)\n",
		DemoPolicy.HaltErrors)
	return nil
}

func run(ctx context.Context, out, bin, src string, hold bool) error {
	if os.Geteuid() != 0 {
		return errors.New("the demo builds disk images, boots VMs and runs Kubernetes' control plane in network namespaces: run it as root")
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
	// The control plane's node runs this tree's rktlet and flanneld.
	if err := os.Setenv("CAIRN_BIN", bin); err != nil {
		return err
	}
	d := &demo{start: time.Now(), out: out}

	step("Build Cairn %s and %s (and %s, the tests' bad update) with this tree's binaries (cached in /var/cache/cairn-image; cold: ~7 min)", fleet.Old, fleet.New, fleet.Bad)
	im, err := fleet.Prepare(ctx, fleet.Options{Source: src, BinDir: bin, Progress: os.Stdout})
	if err != nil {
		return err
	}
	d.images = time.Since(d.start)

	step("Start the fleet's services on the host's loopback: etcd, the update console (cairn-console), a release server")
	f, err := fleet.StartFleet(ctx, filepath.Join(out, "fleet"), im)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Printf("etcd %s, console (Omaha at /v1/update/) %s for the hosts\n", f.Etcd.Endpoint, fleet.GuestURL(f.ConsolePort))
	if err := consoleLogin(ctx, f, os.Stdout); err != nil {
		return err
	}
	return testenv.RunScript(ctx, "cairn-demo", os.Stdout, func(t testenv.TB) {
		n := d.kubernetes(t, ctx, f, im)
		if t.Failed() {
			return
		}
		d.report(f, n.Stages)
		if hold {
			fmt.Println("the console, the control plane and the hosts keep running: Ctrl-C stops them")
			<-ctx.Done()
		} else {
			fmt.Println("the console, the control plane and the hosts stop now; cairn-demo -hold keeps them running until Ctrl-C")
		}
	})
}

// demo is the run's output directory and its times.
type demo struct {
	out    string
	start  time.Time
	images time.Duration
}

// helloNetwork is rkt's network for the demo's own pods on the nodes: flannel's, under the
// name of the CNI network kubelet's pods join (cbr0), so that both allocate their addresses
// from one host-local store of the node's flannel subnet.
const helloNetwork = "cbr0"

// demoConfig adds the overlay's example to host n's node config: rkt's network on flannel,
// and on host 1 a pod unit serving on it.
func demoConfig(n int, cfg *fleet.Config) {
	cfg.File("/etc/rkt/net.d/10-"+helloNetwork+".conf", 0o644,
		`{"cniVersion":"1.0.0","name":"`+helloNetwork+`","type":"flannel","delegate":{"hairpinMode":true,"isDefaultGateway":true}}`+"\n")
	if n == 1 {
		cfg.Unit("hello-server.service", fleet.HelloServerUnit(helloNetwork), true)
	}
}

func (d *demo) kubernetes(t testenv.TB, ctx context.Context, f *fleet.Fleet, im *fleet.Images) *kubenodes.Nodes {
	step("Start Kubernetes %s's control plane: kubeadm init on a node in a network namespace of this machine (TCG guests are too slow for it), on rktlet, its images from a local registry; build the Kubernetes system extension for each release", sysext.KubernetesVersion)
	n := kubenodes.Start(t, ctx, f, im, kubenodes.Options{Dir: d.out, Out: os.Stdout, Configure: demoConfig})
	n.VMs.Network = helloNetwork
	fmt.Printf("first-boot configs (Ignition 3.4): %s, %s\n", filepath.Join(d.out, n.Names[0], "config.ign"), filepath.Join(d.out, n.Names[1], "config.ign"))
	fmt.Println("they set root's ssh key, an address on the cluster cable, the Kubernetes extension (fetched, checked")
	fmt.Println("against its sha256 and dm-verity root hash, merged by systemd-sysext), kubeadm join, flanneld")
	fmt.Println("-kube-subnet-mgr, updates from the console with REBOOT_STRATEGY=kubernetes, and on cairn-1 a pod unit")

	step("Boot both hosts in qemu (UEFI, systemd-boot, dm-verity /usr; TCG, so expect ~1.5 min): each merges the extension and joins the cluster")
	n.Join(ctx)
	for _, h := range n.Hosts {
		fmt.Printf("log in: %s\n", h.SSHCommand(f.KeyFile()))
	}

	step("Pods talk across hosts over flannel's VXLAN overlay (rkt, a systemd unit on cairn-1, a pod run on cairn-2)")
	if _, err := n.VMs.Overlay(ctx); err != nil {
		t.Fatal(err)
	}
	n.Stages.Done("pod to pod across hosts over flannel (rkt)")

	step("kubectl get nodes")
	fmt.Print(n.C.MustKubectl("", "get", "nodes", "-o", "wide"))

	step("A Deployment of 2 pods (one per host, a PodDisruptionBudget keeping one up) behind a NodePort Service")
	n.ServeWeb(ctx)
	a, err := n.AcrossHosts(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(a)
	if !a.Crossed() {
		t.Errorf("a NodePort sent no request to the other host's pod")
	}
	fmt.Print(n.C.MustKubectl("", "get", "pods", "-o", "wide"))
	n.Stages.Done("the Service answering across hosts")

	step("Update both hosts to Cairn %s as a rollout of the console: both download it and write slot B; one at a time, each node takes the reboot Lease, is cordoned and drained, reboots, and is uncordoned; a client requests the Service through both hosts all along", fleet.New)
	if u, err := f.GroupURL(ctx); err == nil {
		fmt.Printf("watch it live: %s (the hosts' progress, the versions changing)\n", u)
		fmt.Printf("and the nodes, cordoned in turn: %scluster\n", f.ConsoleURL())
	}
	r := n.Update(ctx)
	for _, c := range r.Cordons {
		fmt.Println(c)
	}
	for _, c := range r.NoEndpoints {
		fmt.Println(c)
	}
	fmt.Printf("the client through the NodePorts: %s\n", r.Client)
	fmt.Printf("failed requests: %d of %d\n", r.Client.Failed, r.Client.Total)
	fmt.Print(n.C.MustKubectl("", "get", "nodes", "-o", "wide"))
	return n
}

// report says how long each stage took, where the state is and where the console is.
func (d *demo) report(f *fleet.Fleet, stages *kubenodes.Stages) {
	step("Done in %v", time.Since(d.start).Round(time.Second))
	fmt.Printf("stages (TCG, %d CPUs), after the images (%v):\n%s\n", runtime.NumCPU(), d.images.Round(time.Second), stages.Report())
	fmt.Printf("state: %s (VM consoles in cairn-*/console-*.log)\n", d.out)
	fmt.Printf("the rollout in the console: %s (its activity log: %sactivity)\n", f.ConsoleURL(), f.ConsoleURL())
}
