#!/bin/sh
# Builds Kubernetes' commands (k8s.io/kubernetes/cmd/<name>; agnhost, the e2e tests' program;
# e2e.test, the e2e suite of ./e2e) from this module into $TOOLS_CACHE/kubernetes-$VERSION/ and
# prints that directory. Usage: build.sh [name...]; with no name it builds kube-apiserver and
# kubectl. Each binary carries a stamp of this module's go.sum and is rebuilt only when that
# differs, so a warm call costs a hash. The build runs under nice, one command at a time (each
# links most of Kubernetes), and several callers at once build once: flock.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
version=$(awk '{ for (i = 1; i < NF; i++) if ($i == "k8s.io/kubernetes" && $(i + 1) ~ /^v/) { print $(i + 1); exit } }' "$here/go.mod")
version=${version:?"k8s.io/kubernetes is not required in $here/go.mod"}
cache=${TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn-tools}
out=$cache/kubernetes-$version
want=$(sha256sum "$here/go.sum" | cut -d' ' -f1)
[ $# -gt 0 ] || set -- kube-apiserver kubectl

# The version the binaries report (kubectl version, the apiserver's /version), as Kubernetes'
# own release build stamps it.
minor=$(echo "$version" | cut -d. -f2)
pkgs="k8s.io/component-base/version k8s.io/client-go/pkg/version"
ldflags="-s -w"
for p in $pkgs; do
	ldflags="$ldflags -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done

mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
cd "$here"
for name in "$@"; do
	if [ -x "$out/$name" ] && [ "$(cat "$out/$name.stamp" 2>/dev/null)" = "$want" ]; then
		continue
	fi
	rm -f "$out/$name.stamp"
	build="go build"
	case $name in
	agnhost) pkg=k8s.io/kubernetes/test/images/agnhost ;; # the e2e tests' image's program
	ginkgo) pkg=github.com/onsi/ginkgo/v2/ginkgo ;; # runs e2e.test in parallel processes
	# A test binary: upstream's test/e2e cannot be pinned by go.sum as a tool, ./e2e (which
	# imports it) can.
	e2e.test) pkg=./e2e build="go test -c" ;;
	*) pkg=k8s.io/kubernetes/cmd/$name ;;
	esac
	start=$(date +%s)
	# -mod=readonly: the build uses exactly what go.sum pins.
	GOFLAGS=-mod=readonly CGO_ENABLED=0 nice $build -trimpath -ldflags="$ldflags" \
		-o "$out/$name.tmp" "$pkg" >&2
	mv "$out/$name.tmp" "$out/$name"
	echo "$want" >"$out/$name.stamp"
	echo "built $name in $(($(date +%s) - start))s: $(du -h "$out/$name" | cut -f1)" >&2
done
echo "$out"
