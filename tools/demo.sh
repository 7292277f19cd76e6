#!/usr/bin/env bash
# make demo: the main job, step by step, in a scratch store under _output/demo (nothing on the
# machine's /var/lib/rkt or /etc/rkt is touched).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin
D=$PWD/_output/demo
rm -rf "$D"
mkdir -p "$D"
rkt() { "$BIN/rkt" --dir="$D/var/lib/rkt" --local-config="$D/etc/rkt" --system-config="$D/usr/lib/rkt" "$@"; }
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "Build busybox images from Debian's busybox-static: a signed ACI, an OCI layout, a docker-archive"
run "$BIN/cairn-mkimage" -o "$D/images"
I=$D/images

step "Fetching the signed ACI without trusting its publisher fails, and says why"
if rkt fetch "$I/busybox.aci"; then echo "demo: fetch of an untrusted image succeeded" >&2; exit 1; fi

step "Trust the publisher's key for the prefix example.com/busybox, then fetch"
run rkt trust --prefix=example.com/busybox --skip-fingerprint-review "$I/signer.pub.asc"
run rkt fetch "$I/busybox.aci"

step "Fetch the OCI image layout and the docker-archive (unsigned formats: --insecure-options=image)"
run rkt fetch --insecure-options=image "$I/busybox-oci"
run rkt fetch --insecure-options=image "$I/busybox-docker.tar"

step "List the store"
run rkt image list
run rkt image list --format=json-pretty --full | head -20

step "Run a pod from the signed ACI; its exit status is the app's"
run rkt run "$I/busybox.aci" --exec /bin/sh -- -c 'echo "hello from pod $(hostname), pid $$ in its own namespaces"; exit 3' || echo "(exit status $?)"

step "Run a two-app pod from the OCI and docker images: the apps share localhost"
run rkt run --insecure-options=image \
	"$I/busybox-oci" --name=server --exec /bin/sh -- -c 'echo pong | nc -l -p 7000 >/dev/null' --- \
	"$I/busybox-docker.tar" --name=client --exec /bin/sh -- -c 'sleep 0.3; echo ping | nc 127.0.0.1 7000 && echo "client got pong over the pod'"'"'s localhost"'

step "Pods on disk, no daemon"
run rkt list
run rkt gc --grace-period=0s
run rkt list --format=json

step "Build the Cairn OS image (Debian packages cached under /var/cache/cairn-image; cold: ~6 min)"
rm -rf "$D/image"
run "$BIN/cairn-image" build -o "$D/image"
run cat "$D/image/version.txt"

step "Boot it in qemu (UEFI, systemd-boot, the slot's UKI, dm-verity /usr, systemd) until it reports ready"
run "$BIN/cairn-image" boot -wait-marker "$D/image"
echo
echo "demo: done (scratch state in $D)"
