#!/bin/sh
# Builds CoreDNS (github.com/coredns/coredns, the cluster DNS kubeadm deploys) from this module
# into $TOOLS_CACHE/coredns-$VERSION/ and prints that directory. The binary carries a stamp of
# this module's go.mod and go.sum and of the build scripts, and is rebuilt only when that
# differs, so a warm call costs a hash. The build runs under nice, and several callers at once
# build once: flock (tools/lib.sh).
set -eu
. "$(dirname "$0")/../lib.sh"

version=$(module_version github.com/coredns/coredns)
open_cache "coredns-$version"
cached_build coredns "$(stamp)" github.com/coredns/coredns nice go build -ldflags="-s -w"
echo "$out"
