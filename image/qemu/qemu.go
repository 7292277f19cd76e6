// Package qemu boots a Cairn image in qemu and watches its serial console: the VM tier of
// the image tests, and the harness later end-to-end tests reuse. A Machine is a plain value
// (Args shows the exact qemu command); Start runs it. Guests get user-mode networking only.
package qemu

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Firmware paths of Debian's ovmf package.
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// ErrExited is returned by Wait* when qemu exits before the pattern appears.
var ErrExited = errors.New("qemu exited")

// Machine is one VM.
type Machine struct {
	Disk     string // disk image (raw or qcow2), attached as virtio; booted through OVMF
	Snapshot bool   // discard writes to Disk (qemu -snapshot)
	Kernel   string // direct kernel boot (PXE pair) instead of firmware + disk
	Initrd   string
	Append   string
	MemoryMB int    // default 1024
	CPUs     int    // default 1
	Accel    string // default "tcg" (this machine's KVM is unusable for stock guests)
	// VarsDir holds the writable copy of the UEFI variable store (boot counting needs it).
	VarsDir string
	// NetBoot boots from the network with the firmware's iPXE (SeaBIOS, no disk, no
	// kernel): qemu's built-in DHCP/TFTP hands out TFTPDir/BootFile, typically an iPXE script.
	NetBoot  bool
	TFTPDir  string
	BootFile string
	// Forward are host forwards of the user-mode network, as qemu spells them:
	// "tcp:127.0.0.1:2222-:22" makes the guest's sshd reachable on the host's loopback.
	Forward []string
	// FwCfg are qemu fw_cfg items, name -> host file (opt/org.cairn/config: the first-boot config).
	FwCfg map[string]string
	// Links are extra NICs, each a point-to-point Ethernet cable to another VM: UDP datagrams
	// between two loopback ports (qemu's dgram netdev), so guests talk to each other while
	// nothing leaves the host's loopback.
	Links []Link
	Extra []string
}

// Link is one end of a VM-to-VM cable.
type Link struct {
	LocalPort, RemotePort int
	MAC                   string // e.g. 52:54:00:12:34:01; guests match it in networkd files
}

// Args is the qemu command line.
func (m Machine) Args() []string {
	mem, cpus, accel := m.MemoryMB, m.CPUs, m.Accel
	if mem == 0 {
		mem = 1024
	}
	if cpus == 0 {
		cpus = 1
	}
	if accel == "" {
		accel = "tcg"
	}
	nic := "user,model=virtio-net-pci"
	for _, f := range m.Forward {
		nic += ",hostfwd=" + f
	}
	if m.NetBoot {
		nic += ",tftp=" + m.TFTPDir + ",bootfile=" + m.BootFile
	}
	a := []string{"qemu-system-x86_64", "-machine", "q35", "-accel", accel, "-m", strconv.Itoa(mem),
		"-smp", strconv.Itoa(cpus), "-nographic", "-no-reboot", "-serial", "mon:stdio", "-nic", nic}
	for i, l := range m.Links {
		id := "link" + strconv.Itoa(i)
		a = append(a, "-netdev", fmt.Sprintf("dgram,id=%s,local.type=inet,local.host=127.0.0.1,local.port=%d,remote.type=inet,remote.host=127.0.0.1,remote.port=%d", id, l.LocalPort, l.RemotePort),
			"-device", "virtio-net-pci,netdev="+id+",mac="+l.MAC)
	}
	names := make([]string, 0, len(m.FwCfg))
	for n := range m.FwCfg {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		a = append(a, "-fw_cfg", "name="+n+",file="+m.FwCfg[n])
	}
	if m.NetBoot {
		return append(append(a, "-boot", "n"), m.Extra...)
	}
	if m.Kernel != "" {
		a = append(a, "-kernel", m.Kernel, "-initrd", m.Initrd, "-append", m.Append)
	} else {
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+filepath.Join(m.VarsDir, "OVMF_VARS.fd"))
	}
	if m.Disk != "" {
		format := "raw"
		if strings.HasSuffix(m.Disk, ".qcow2") {
			format = "qcow2"
		}
		a = append(a, "-drive", "if=virtio,format="+format+",file="+m.Disk)
		if m.Snapshot {
			a = append(a, "-snapshot")
		}
	}
	return append(a, m.Extra...)
}

// VM is a running machine.
type VM struct {
	cmd     *exec.Cmd
	mu      sync.Mutex
	console bytes.Buffer
	changed chan struct{}
	done    chan struct{}
	err     error
	started time.Time
	output  time.Time // when the console last printed
}

// Start boots m. Console output is kept (Console) and copied to log when not nil, until a
// write to log fails.
func Start(ctx context.Context, m Machine, log io.Writer) (*VM, error) {
	if m.Kernel == "" && !m.NetBoot {
		if m.VarsDir == "" {
			return nil, errors.New("qemu: firmware boot needs VarsDir for the UEFI variables")
		}
		if err := copyIfMissing(OVMFVars, filepath.Join(m.VarsDir, "OVMF_VARS.fd")); err != nil {
			return nil, err
		}
	}
	argv := m.Args()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = nil
	// The VM dies with the process that started it, even when that one is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	now := time.Now()
	vm := &VM{cmd: cmd, changed: make(chan struct{}, 1), done: make(chan struct{}), started: now, output: now}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	go func() {
		r := bufio.NewReader(pr)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				vm.mu.Lock()
				vm.console.Write(buf[:n])
				vm.output = time.Now()
				vm.mu.Unlock()
				if log != nil {
					if _, err := log.Write(buf[:n]); err != nil {
						// Console keeps everything; a copy that failed (a full disk, say)
						// is given up rather than failed again at every chunk.
						log = nil
					}
				}
				select {
				case vm.changed <- struct{}{}:
				default:
				}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		vm.err = cmd.Wait()
		pw.Close()
		close(vm.done)
	}()
	return vm, nil
}

// Console returns everything the guest printed so far.
func (vm *VM) Console() string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.console.String()
}

// WaitFor waits until the console shows one of the patterns and returns which one and when
// (since Start). It fails when qemu exits first or ctx ends.
func (vm *VM) WaitFor(ctx context.Context, patterns ...string) (string, time.Duration, error) {
	for {
		c := vm.Console()
		for _, p := range patterns {
			if strings.Contains(c, p) {
				return p, time.Since(vm.started), nil
			}
		}
		select {
		case <-vm.changed:
		case <-vm.done:
			c := vm.Console()
			for _, p := range patterns {
				if strings.Contains(c, p) {
					return p, time.Since(vm.started), nil
				}
			}
			return "", time.Since(vm.started), fmt.Errorf("%w (%v) before showing %q", ErrExited, vm.err, patterns)
		case <-ctx.Done():
			return "", time.Since(vm.started), fmt.Errorf("waiting for %q: %w", patterns, ctx.Err())
		}
	}
}

// Quiet is how long the console has printed nothing (since Start when it never has).
func (vm *VM) Quiet() time.Duration {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return time.Since(vm.output)
}

// Exited reports whether qemu has exited (the guest powered off or rebooted: -no-reboot).
func (vm *VM) Exited() bool {
	select {
	case <-vm.done:
		return true
	default:
		return false
	}
}

// Stop kills qemu and waits for it.
func (vm *VM) Stop() {
	if vm.cmd.Process != nil {
		vm.cmd.Process.Kill()
	}
	<-vm.done
}

// Run boots m attached to this process's terminal until qemu exits (interactive use).
func Run(ctx context.Context, m Machine, varsDir string) error {
	if m.Kernel == "" {
		m.VarsDir = varsDir
		if err := copyIfMissing(OVMFVars, filepath.Join(varsDir, "OVMF_VARS.fd")); err != nil {
			return err
		}
	}
	argv := m.Args()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return cmd.Run()
}

func copyIfMissing(src, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("UEFI variable template: %w", err)
	}
	return os.WriteFile(dst, b, 0o644)
}
