#!/bin/sh
# Builds stock flanneld (github.com/flannel-io/flannel, its main package unmodified) from this
# module into $TOOLS_CACHE/flannel-$VERSION/ and prints that directory. Of flannel's code only
# the tencent-vpc backend's cloud SDK is replaced, by the stubs in stub/ (the module proxy
# refuses the versions flannel requires). The binary carries a stamp of this module's go.sum
# and the stubs and is rebuilt only when that differs, so a warm call costs a hash. The build
# runs under nice, one package at a time, and several callers at once build once: flock.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
version=$(awk '$1 == "github.com/flannel-io/flannel" && $2 ~ /^v/ { print $2; exit }' "$here/go.mod")
version=${version:?"github.com/flannel-io/flannel is not required in $here/go.mod"}
cache=${TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn-tools}
out=$cache/flannel-$version
# The stamp covers the stubs too: they are part of what is built.
want=$(cd "$here" && find go.sum stub -type f | sort | xargs cat | sha256sum | cut -d' ' -f1)

mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [ -x "$out/flanneld" ] && [ "$(cat "$out/flanneld.stamp" 2>/dev/null)" = "$want" ]; then
	echo "$out"
	exit 0
fi
rm -f "$out/flanneld.stamp"
start=$(date +%s)
cd "$here"
# As flannel's release build for amd64 (its Makefile): cgo on (the udp backend's C proxy),
# linked statically, the version stamped; elsewhere cgo is off as there.
cgo=0
[ "$(go env GOARCH)" = amd64 ] && cgo=1
# -mod=readonly: the build uses exactly what go.sum pins.
GOFLAGS="-mod=readonly -p=1" CGO_ENABLED=$cgo nice -n 19 go build -trimpath \
	-ldflags="-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$version -extldflags -static" \
	-o "$out/flanneld.tmp" github.com/flannel-io/flannel >&2
mv "$out/flanneld.tmp" "$out/flanneld"
echo "$want" >"$out/flanneld.stamp"
echo "built flanneld in $(($(date +%s) - start))s: $(du -h "$out/flanneld" | cut -f1)" >&2
echo "$out"
