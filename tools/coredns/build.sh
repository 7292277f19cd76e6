#!/bin/sh
# Builds CoreDNS (github.com/coredns/coredns, the cluster DNS kubeadm deploys) from this module
# into $TOOLS_CACHE/coredns-$VERSION/ and prints that directory. The binary carries a stamp of
# this module's go.sum and is rebuilt only when that differs, so a warm call costs a hash. The
# build runs under nice, and several callers at once build once: flock.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
version=$(awk '$1 == "github.com/coredns/coredns" && $2 ~ /^v/ { print $2; exit }' "$here/go.mod")
version=${version:?"github.com/coredns/coredns is not required in $here/go.mod"}
cache=${TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn-tools}
out=$cache/coredns-$version
want=$(sha256sum "$here/go.sum" | cut -d' ' -f1)

mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [ -x "$out/coredns" ] && [ "$(cat "$out/coredns.stamp" 2>/dev/null)" = "$want" ]; then
	echo "$out"
	exit 0
fi
rm -f "$out/coredns.stamp"
start=$(date +%s)
cd "$here"
# -mod=readonly: the build uses exactly what go.sum pins.
GOFLAGS=-mod=readonly CGO_ENABLED=0 nice go build -trimpath -ldflags="-s -w" \
	-o "$out/coredns.tmp" github.com/coredns/coredns >&2
mv "$out/coredns.tmp" "$out/coredns"
echo "$want" >"$out/coredns.stamp"
echo "built coredns in $(($(date +%s) - start))s: $(du -h "$out/coredns" | cut -f1)" >&2
echo "$out"
