#!/bin/sh
# Builds cri-tools' crictl and critest (a test binary: go test -c) from this module into
# $TOOLS_CACHE/cri-tools-$VERSION/ and prints that directory. Each binary is rebuilt only when
# this module's go.mod and go.sum or the build scripts differ from what it was built from (the
# stamp beside it), so a second call costs a hash. Several callers at once (parallel test
# packages) build once: flock (tools/lib.sh).
set -eu
. "$(dirname "$0")/../lib.sh"

version=$(module_version sigs.k8s.io/cri-tools)
open_cache "cri-tools-$version"
want=$(stamp)
cached_build crictl "$want" sigs.k8s.io/cri-tools/cmd/crictl go build
cached_build critest "$want" sigs.k8s.io/cri-tools/cmd/critest go test -c
echo "$out"
