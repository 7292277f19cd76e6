#!/bin/sh
# Builds stock flanneld (github.com/flannel-io/flannel, its main package unmodified) from this
# module into $TOOLS_CACHE/flannel-$VERSION/ and prints that directory. Of flannel's code only
# the tencent-vpc backend's cloud SDK is replaced, by the stubs in stub/ (the module proxy
# refuses the versions flannel requires). The binary carries a stamp of this module's go.mod,
# go.sum and stubs and of the build scripts, and is rebuilt only when that differs, so a warm
# call costs a hash. The build runs under nice, one package at a time, and several callers at
# once build once: flock (tools/lib.sh).
set -eu
. "$(dirname "$0")/../lib.sh"

version=$(module_version github.com/flannel-io/flannel)
open_cache "flannel-$version"
# As flannel's release build for amd64 (its Makefile): cgo on (the udp backend's C proxy),
# linked statically, the version stamped; elsewhere cgo is off as there.
cgo=0
[ "$(go env GOARCH)" = amd64 ] && cgo=1
# The stubs are part of what is built.
cached_build flanneld "$(stamp stub)" github.com/flannel-io/flannel \
	env CGO_ENABLED=$cgo GOFLAGS="-mod=readonly -p=1" nice -n 19 go build \
	-ldflags="-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$version -extldflags -static"
echo "$out"
