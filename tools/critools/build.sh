#!/bin/sh
# Builds cri-tools' crictl and critest (a test binary: go test -c) from this module into
# $TOOLS_CACHE/cri-tools-$VERSION/ and prints that directory. The binaries are rebuilt only when
# this module's go.sum differs from the one they were built from (the stamp beside them), so a
# second call costs a hash. Several callers at once (parallel test packages) build once: flock.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
version=$(awk '$1 == "sigs.k8s.io/cri-tools" { print $2 }' "$here/go.mod")
cache=${TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn-tools}
out=$cache/cri-tools-$version
want=$(sha256sum "$here/go.sum" | cut -d' ' -f1)

mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [ -x "$out/crictl" ] && [ -x "$out/critest" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$want" ]; then
	echo "$out"
	exit 0
fi
rm -f "$out/stamp"
cd "$here"
# -mod=readonly: the build uses exactly what go.sum pins.
GOFLAGS=-mod=readonly CGO_ENABLED=0 go build -trimpath -o "$out/crictl.tmp" sigs.k8s.io/cri-tools/cmd/crictl >&2
GOFLAGS=-mod=readonly CGO_ENABLED=0 go test -c -trimpath -o "$out/critest.tmp" sigs.k8s.io/cri-tools/cmd/critest >&2
mv "$out/crictl.tmp" "$out/crictl"
mv "$out/critest.tmp" "$out/critest"
echo "$want" >"$out/stamp"
echo "$out"
