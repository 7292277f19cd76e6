package fleet

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/cairn-os/cairn/image/qemu"
	"github.com/cairn-os/cairn/internal/disklayout"
)

// Marker is the line a Cairn machine prints on its console once it reached multi-user.target.
const Marker = "CAIRN-BOOTED"

// BootMarker is the marker of a boot of version from slot ("A", "B" or "pxe").
func BootMarker(version, slot string) string {
	return fmt.Sprintf("%s version=%s slot=%s ", Marker, version, slot)
}

// Key is the ssh key the harness logs in with; Authorized goes into first-boot configs.
type Key struct {
	Signer     ssh.Signer
	Authorized string
	PEM        []byte // the private key, for `ssh -i`
}

// NewKey makes a throwaway ed25519 key.
func NewKey() (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "cairn-e2e")
	if err != nil {
		return nil, err
	}
	return &Key{Signer: s, PEM: pem.EncodeToMemory(block),
		Authorized: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))) + " cairn-e2e"}, nil
}

// Host is one machine: a qemu VM whose disk and UEFI variables outlive its boots. The guest
// restarting makes qemu exit (-no-reboot): Boot starts the next boot of the same machine.
type Host struct {
	Name    string
	Machine qemu.Machine // Forward gets the ssh port added
	Key     *Key
	User    string    // ssh login; default root
	Console io.Writer // every boot's console is copied here when not nil
	Notes   io.Writer // what the harness does to the machine (a power cycle) is said here when not nil

	mu      sync.Mutex
	vm      *qemu.VM
	sshPort int
	boots   int
	logFile *os.File
}

// Overlay makes a qcow2 disk in dir on top of a built raw disk: the machine writes it, the
// cached image stays as built. grow ("+1G") makes it larger, as a cloud disk is larger than the image.
func Overlay(dir, raw string, grow string) (string, error) {
	p := filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", raw, p).CombinedOutput(); err != nil {
		return "", fmt.Errorf("qemu-img create: %v: %s", err, out)
	}
	if grow != "" {
		if out, err := exec.Command("qemu-img", "resize", "-q", p, grow).CombinedOutput(); err != nil {
			return "", fmt.Errorf("qemu-img resize: %v: %s", err, out)
		}
	}
	return p, nil
}

// SSHCommand is how a person logs in to the machine from the host, with the key written at
// keyFile.
func (h *Host) SSHCommand(keyFile string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprintf("ssh -i %s -p %d -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@127.0.0.1", keyFile, h.sshPort)
}

// FreePort returns a TCP port free on the loopback right now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeUDPPort returns a UDP port free on the loopback right now.
func FreeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// Boot starts the machine's next boot. The console of each boot also goes to
// <VarsDir>/console-<n>.log.
func (h *Host) Boot(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.vm != nil && !h.vm.Exited() {
		return fmt.Errorf("%s: already running", h.Name)
	}
	if h.sshPort == 0 {
		p, err := FreePort()
		if err != nil {
			return err
		}
		h.sshPort = p
		h.Machine.Forward = append(h.Machine.Forward, "tcp:127.0.0.1:"+strconv.Itoa(p)+"-:22")
	}
	h.boots++
	if h.logFile != nil {
		h.logFile.Close()
	}
	w := io.Discard
	if h.Machine.VarsDir != "" {
		f, err := os.Create(filepath.Join(h.Machine.VarsDir, fmt.Sprintf("console-%d.log", h.boots)))
		if err != nil {
			return err
		}
		h.logFile, w = f, f
	}
	if h.Console != nil {
		w = io.MultiWriter(w, h.Console)
	}
	vm, err := qemu.Start(ctx, h.Machine, w)
	if err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	h.vm = vm
	return nil
}

// VM is the current boot's VM.
func (h *Host) VM() *qemu.VM {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.vm
}

// Boots counts the boots so far.
func (h *Host) Boots() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.boots
}

// WaitFor waits for one of patterns on the current boot's console. A boot whose kernel hangs
// before Cairn's initramfs starts (hungBeforeInit) is power-cycled, as a hardware watchdog
// would, and the wait goes on on the next boot: under TCG on a loaded machine the guest
// kernel has been seen to stop for good in its early boot, before any of Cairn's code ran.
func (h *Host) WaitFor(ctx context.Context, patterns ...string) (string, time.Duration, error) {
	for {
		vm := h.VM()
		wctx, cancel := context.WithCancel(ctx)
		hung := make(chan struct{})
		go func() {
			t := time.NewTicker(5 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-wctx.Done():
					return
				case <-t.C:
					if !vm.Exited() && hungBeforeInit(vm.Console(), vm.Quiet()) {
						close(hung)
						cancel()
						return
					}
				}
			}
		}()
		got, took, err := vm.WaitFor(wctx, patterns...)
		cancel()
		select {
		case <-hung:
			if h.Notes != nil {
				fmt.Fprintf(h.Notes, "%s: boot %d hung in the kernel before Cairn's initramfs started (no console output for %v); power-cycling it\n",
					h.Name, h.Boots(), KernelStall)
			}
			h.Stop()
			if err := h.Boot(ctx); err != nil {
				return "", 0, err
			}
			continue
		default:
		}
		if err != nil {
			return got, took, fmt.Errorf("%s (boot %d): %w", h.Name, h.Boots(), err)
		}
		return got, took, nil
	}
}

// KernelStall is how long a boot's console may stay silent before Cairn's initramfs has
// printed anything: TCG boots print every few seconds up to there.
const KernelStall = 3 * time.Minute

// initramfsLine starts each line Cairn's initramfs (cairn-init) prints.
const initramfsLine = "cairn-init:"

// hungBeforeInit tells whether a boot whose console shows console, and has printed nothing for
// quiet, hung before Cairn's initramfs started.
func hungBeforeInit(console string, quiet time.Duration) bool {
	return quiet >= KernelStall && !strings.Contains(console, initramfsLine)
}

// WaitExit waits until qemu exits: the guest rebooted or powered off.
func (h *Host) WaitExit(ctx context.Context) error {
	vm := h.VM()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for !vm.Exited() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for the machine to restart: %w", h.Name, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Stop kills the machine's qemu, if it runs.
func (h *Host) Stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.vm != nil {
		h.vm.Stop()
	}
	if h.logFile != nil {
		h.logFile.Close()
		h.logFile = nil
	}
}

// Tail is the end of the current boot's console, for failure reports.
func (h *Host) Tail(n int) string {
	vm := h.VM()
	if vm == nil {
		return ""
	}
	c := vm.Console()
	if len(c) > n {
		c = c[len(c)-n:]
	}
	return c
}

// As is a handle on the running machine that logs in as user.
func (h *Host) As(user string) *Host {
	h.mu.Lock()
	defer h.mu.Unlock()
	return &Host{Name: h.Name + " (as " + user + ")", Key: h.Key, User: user, sshPort: h.sshPort}
}

// ErrCommand is a command that ran and exited non-zero.
var ErrCommand = errors.New("command failed")

// Run runs cmd as root over ssh and returns its output (stdout and stderr). It dials until
// sshd answers or ctx ends.
func (h *Host) Run(ctx context.Context, cmd string) (string, error) {
	return h.RunInput(ctx, cmd, nil)
}

// RunInput is Run with stdin.
func (h *Host) RunInput(ctx context.Context, cmd string, stdin io.Reader) (string, error) {
	c, err := h.dial(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return "", fmt.Errorf("%s: ssh session: %w", h.Name, err)
	}
	defer s.Close()
	out := &lockedBuffer{}
	s.Stdout, s.Stderr = out, out
	if stdin != nil {
		s.Stdin = stdin
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		c.Close()
		return out.String(), fmt.Errorf("%s: %q: %w", h.Name, cmd, ctx.Err())
	}
	if exit, ok := errors.AsType[*ssh.ExitError](err); ok {
		return out.String(), fmt.Errorf("%s: %q exited %d: %w\n%s", h.Name, cmd, exit.ExitStatus(), ErrCommand, out.String())
	}
	if err != nil {
		return out.String(), fmt.Errorf("%s: %q: %w", h.Name, cmd, err)
	}
	return out.String(), nil
}

// lockedBuffer takes the session's stdout and stderr, written from two goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (h *Host) dial(ctx context.Context) (*ssh.Client, error) {
	h.mu.Lock()
	port := h.sshPort
	h.mu.Unlock()
	user := h.User
	if user == "" {
		user = "root"
	}
	cfg := &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(h.Key.Signer)},
		// Host keys are made on each machine's first boot: nothing to pin them against.
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 20 * time.Second}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for {
		c, err := ssh.Dial("tcp", addr, cfg)
		if err == nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: ssh %s: %v: %w", h.Name, addr, err, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// ESPEntries lists the boot entries (the slots' UKIs, with their boot counters) on the
// machine's EFI system partition. Call it while the machine is down: it reads the disk.
func (h *Host) ESPEntries() ([]string, error) {
	h.mu.Lock()
	disk, dir := h.Machine.Disk, h.Machine.VarsDir
	h.mu.Unlock()
	esp, err := disklayout.ByLabel("EFI-SYSTEM")
	if err != nil {
		return nil, err
	}
	img := filepath.Join(dir, "esp.img")
	defer os.Remove(img)
	// The first partition starts at 1 MiB (image/disk aligns partitions to 1 MiB).
	if out, err := exec.Command("qemu-img", "dd", "-O", "raw", "bs=1M", "skip=1",
		fmt.Sprintf("count=%d", esp.Size/disklayout.MiB), "if="+disk, "of="+img).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s: read the ESP: %v: %s", h.Name, err, out)
	}
	out, err := exec.Command("mdir", "-b", "-i", img, "::/EFI/Linux").Output()
	if err != nil {
		return nil, fmt.Errorf("%s: list the ESP: %w", h.Name, err)
	}
	var names []string
	for l := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			names = append(names, filepath.Base(l))
		}
	}
	return names, nil
}
