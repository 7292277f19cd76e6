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

func TestArgsNetworkAndFwCfg(t *testing.T) {
	m := Machine{Disk: "/d.qcow2", VarsDir: "/v", Forward: []string{"tcp:127.0.0.1:2222-:22"},
		FwCfg: map[string]string{"opt/org.cairn/config": "/c.ign", "opt/a": "/a"},
		Links: []Link{{LocalPort: 4001, RemotePort: 4002, MAC: "52:54:00:12:34:01"}}}
	a := strings.Join(m.Args(), " ")
	for _, want := range []string{
		"-nic user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:2222-:22 ",
		"-netdev dgram,id=link0,local.type=inet,local.host=127.0.0.1,local.port=4001,remote.type=inet,remote.host=127.0.0.1,remote.port=4002",
		"-device virtio-net-pci,netdev=link0,mac=52:54:00:12:34:01",
		"-fw_cfg name=opt/a,file=/a -fw_cfg name=opt/org.cairn/config,file=/c.ign",
	} {
		if !strings.Contains(a, want) {
			t.Errorf("args lack %q: %s", want, a)
		}
	}
}
