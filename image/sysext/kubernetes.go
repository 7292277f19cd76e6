package sysext

import (
	"embed"
	"path/filepath"
)

//go:embed files
var files embed.FS

// KubernetesVersion is the Kubernetes release tools/kube/build.sh builds.
const KubernetesVersion = "v1.37.2"

// KubeletSocket is rktlet's CRI socket, which kubelet's drop-in names.
const KubeletSocket = "unix:///run/rktlet/rktlet.sock"

// Kubernetes is the extension kubernetes-VERSION: kubelet, kubeadm and kubectl from binDir
// (and crictl when crictl is not ""), kubelet's unit enabled, with kubeadm's drop-in, for Cairn
// osVersion. What kubeadm's preflight checks want on the host (mount, losetup, cp) and the CNI
// plugins (containernetworking-plugins and flannel's, in /usr/lib/cni, used by rktlet) are in
// the base image already.
func Kubernetes(version, osVersion, binDir, crictl string, epoch int64) Spec {
	unit := func(name string) []byte {
		b, err := files.ReadFile("files/" + name)
		if err != nil {
			panic(err) // embedded: caught by the tests
		}
		return b
	}
	const sys = "/usr/lib/systemd/system/"
	s := Spec{Name: "kubernetes-" + version, OSID: "cairn", OSVersion: osVersion, SourceDateEpoch: epoch}
	for _, bin := range []string{"kubelet", "kubeadm", "kubectl"} {
		s.Files = append(s.Files, File{Path: "/usr/bin/" + bin, Mode: 0o755, Source: filepath.Join(binDir, bin)})
	}
	if crictl != "" {
		s.Files = append(s.Files, File{Path: "/usr/bin/crictl", Mode: 0o755, Source: crictl})
	}
	s.Files = append(s.Files,
		File{Path: sys + "kubelet.service", Mode: 0o644, Data: unit("kubelet.service")},
		File{Path: sys + "kubelet.service.d/10-kubeadm.conf", Mode: 0o644, Data: unit("10-kubeadm.conf")},
		// Enabled with the extension, as kubeadm's packages enable it: it waits, restarting,
		// until kubeadm init or join has written its configuration.
		File{Path: sys + "multi-user.target.wants/kubelet.service", Link: "../kubelet.service"},
	)
	return s
}
