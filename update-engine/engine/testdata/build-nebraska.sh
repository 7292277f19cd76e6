#!/bin/sh
# build-nebraska.sh [-path]: builds the backend of Flatcar's Nebraska, at the commit below,
# with Go modules from the module proxy, for TestNebraska; prints the binary's path. The
# binary is cached in $CAIRN_NEBRASKA_CACHE (/var/cache/cairn-nebraska)/<commit>/, so a
# second run builds nothing. -path prints where the binary is, or would be, and builds
# nothing. NEBRASKA_SRC is the git repository to take it from (GitHub's by default; a local
# mirror will do).
set -eu
commit=30a488d8d3008b2f01d299e31431080791001a33
src=${NEBRASKA_SRC:-https://github.com/flatcar/nebraska.git}
cache=${CAIRN_NEBRASKA_CACHE:-/var/cache/cairn-nebraska}
bin=$cache/$commit/nebraska
if [ "${1:-}" = -path ] || [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
git init --quiet "$work/src"
git -C "$work/src" fetch --quiet --depth 1 "$src" "$commit"
git -C "$work/src" checkout --quiet FETCH_HEAD
(cd "$work/src/backend" && CGO_ENABLED=0 go build -trimpath -o "$work/nebraska" ./cmd/nebraska) >&2
mkdir -p "$cache/$commit"
mv "$work/nebraska" "$bin.new"
mv "$bin.new" "$bin"
echo "$bin"
