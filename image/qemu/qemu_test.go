package qemu

import (
	"strings"
	"testing"
)

func TestArgs(t *testing.T) {
	a := strings.Join(Machine{Disk: "/d/disk.qcow2", Snapshot: true, VarsDir: "/v"}.Args(), " ")
	for _, want := range []string{"-accel tcg", "-no-reboot", "if=pflash,format=raw,unit=0,readonly=on,file=" + OVMFCode,
		"file=/v/OVMF_VARS.fd", "if=virtio,format=qcow2,file=/d/disk.qcow2", "-snapshot", "-nic user,"} {
		if !strings.Contains(a, want) {
			t.Errorf("args lack %q: %s", want, a)
		}
	}
	p := strings.Join(Machine{Kernel: "/k", Initrd: "/i", Append: "console=ttyS0"}.Args(), " ")
	if !strings.Contains(p, "-kernel /k -initrd /i -append console=ttyS0") || strings.Contains(p, "pflash") {
		t.Errorf("PXE args: %s", p)
	}
	n := strings.Join(Machine{NetBoot: true, TFTPDir: "/t", BootFile: "boot.ipxe"}.Args(), " ")
	if !strings.Contains(n, "-nic user,model=virtio-net-pci,tftp=/t,bootfile=boot.ipxe") || !strings.Contains(n, "-boot n") || strings.Contains(n, "pflash") {
		t.Errorf("netboot args: %s", n)
	}
}
