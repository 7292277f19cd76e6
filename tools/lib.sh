# What the tools/*/build.sh scripts share; each sources it. A script builds Go programs from
# the module in its directory ($here) into a directory of the tools cache ($out: open_cache),
# rebuilding a binary only when its stamp (the hash of what it is built from) differs from the
# one beside it, and prints that directory, its one line of output. Build output and timings
# go to stderr.

here=$(cd "$(dirname "$0")" && pwd)

# module_version MODULE prints the version of MODULE that $here/go.mod requires, or fails.
module_version() {
	v=$(awk -v m="$1" '
		$1 == "require" && $2 == "(" { block = 1; next }
		block && $1 == ")" { block = 0; next }
		block && $1 == m { print $2; exit }
		$1 == "require" && $2 == m { print $3; exit }
	' "$here/go.mod")
	case $v in
	v*) echo "$v" ;;
	*)
		echo "$1 is not required in $here/go.mod" >&2
		return 1
		;;
	esac
}

# open_cache DIR makes $out, the cache directory DIR ($TOOLS_CACHE, or cairn-tools in the
# user's cache directory, as kube/images has it), and locks it until the script exits:
# callers at once (parallel test packages) build once.
open_cache() {
	out=${TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn-tools}/$1
	mkdir -p "$out"
	exec 9>"$out/.lock"
	flock 9
}

# stamp [FILE...] prints the hash of what a binary is built from: the module's go.mod and
# go.sum, the script and this file (they hold the build's flags), and FILEs (relative to
# $here; directories are taken whole). Paths are hashed as relative ones, so the stamp does not
# depend on where the checkout is.
stamp() {
	sums=$(cd "$here" && find go.mod go.sum "$(basename "$0")" ../lib.sh "$@" -type f -exec sha256sum {} +) || return 1
	printf '%s\n' "$sums" | LC_ALL=C sort | sha256sum | cut -d' ' -f1
}

# cached_build NAME STAMP PKG CMD... builds PKG into $out/NAME unless it is there with STAMP
# beside it (NAME.stamp). CMD is the go command and its flags (go build -ldflags=..., go test
# -c, with nice or env before it as the tool needs): it is run in $here with -trimpath, -o and
# PKG appended, GOFLAGS=-mod=readonly (the build uses exactly what go.sum pins) and
# CGO_ENABLED=0 unless CMD sets them.
cached_build() {
	name=$1 want=$2 pkg=$3
	shift 3
	if [ -x "$out/$name" ] && [ "$(cat "$out/$name.stamp" 2>/dev/null)" = "$want" ]; then
		return 0
	fi
	rm -f "$out/$name.stamp"
	start=$(date +%s)
	(cd "$here" && GOFLAGS=-mod=readonly CGO_ENABLED=0 "$@" -trimpath -o "$out/$name.tmp" "$pkg" >&2)
	mv "$out/$name.tmp" "$out/$name"
	echo "$want" >"$out/$name.stamp"
	echo "built $name in $(($(date +%s) - start))s: $(du -h "$out/$name" | cut -f1)" >&2
}
