#!/bin/sh
# Builds runc (github.com/opencontainers/runc, its main package unmodified, a tool of this
# module) at the version Cairn's own go.mod requires, the libcontainer that rkt runs pods on,
# as upstream's release is built (cgo, libseccomp), into $TOOLS_CACHE/runc-$VERSION/runc, and
# prints that directory. Rebuilt only when this module's go.mod or go.sum or the build scripts
# change (tools/lib.sh). For bench/pods: a runc of rkt's libcontainer beside Debian's.
set -eu
. "$(dirname "$0")/../lib.sh"

version=$(module_version github.com/opencontainers/runc)
ours=$(here=$here/../..; module_version github.com/opencontainers/runc)
if [ "$version" != "$ours" ]; then
	echo "tools/runc/go.mod has runc $version and Cairn's go.mod $ours: make them the same (go get -tool github.com/opencontainers/runc@$ours in tools/runc)" >&2
	exit 1
fi
open_cache "runc-$version"
want=$(stamp)
cached_build runc "$want" github.com/opencontainers/runc env CGO_ENABLED=1 go build -tags seccomp
echo "$out"
