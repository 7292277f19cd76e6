// Package vmtest is the VM tier of the image tests: it boots the end-to-end tests' old release
// (e2e/fleet, built once per set of inputs with Cairn's binaries and cached under
// /var/cache/cairn-image/e2e/<key>) in qemu for what the scenarios there do not cover: a blank
// ROOT made in early boot, the PXE pair through iPXE, a damaged USR refused. Run them with
// `CAIRN_BIN=bin go test ./e2e/vmtest` as root with qemu, OVMF and the image build tools
// installed (tools/deps/apt-packages.txt).
package vmtest
