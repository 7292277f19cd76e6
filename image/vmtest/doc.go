// Package vmtest is the VM tier of the image tests: it builds a real Cairn image once per set
// of inputs (cached under /var/cache/cairn-image/test/<key>) and boots it in qemu under OVMF.
// Everything is in its tests; run them with `go test ./image/vmtest` as root with qemu, OVMF
// and the image build tools installed (tools/deps/apt-packages.txt).
package vmtest
