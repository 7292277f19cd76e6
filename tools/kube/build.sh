#!/bin/sh
# Builds Kubernetes' commands (k8s.io/kubernetes/cmd/<name>; agnhost, the e2e tests' program;
# e2e.test, the e2e suite of ./e2e) from this module into $TOOLS_CACHE/kubernetes-$VERSION/ and
# prints that directory. Usage: build.sh [name...]; with no name it builds kube-apiserver and
# kubectl. Each binary carries a stamp of this module's go.mod and go.sum and of the build
# scripts (e2e.test's also of ./e2e) and is rebuilt only when that differs, so a warm call
# costs a hash. The build runs under nice, one command at a time (each links most of
# Kubernetes), and several callers at once build once: flock (tools/lib.sh).
set -eu
. "$(dirname "$0")/../lib.sh"

version=$(module_version k8s.io/kubernetes)
[ $# -gt 0 ] || set -- kube-apiserver kubectl

# The version the binaries report (kubectl version, the apiserver's /version), as Kubernetes'
# own release build stamps it.
minor=$(echo "$version" | cut -d. -f2)
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags="$ldflags -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done

open_cache "kubernetes-$version"
want=$(stamp)
for name in "$@"; do
	build="go build" inputs=$want
	case $name in
	agnhost) pkg=k8s.io/kubernetes/test/images/agnhost ;; # the e2e tests' image's program
	ginkgo) pkg=github.com/onsi/ginkgo/v2/ginkgo ;; # runs e2e.test in parallel processes
	# A test binary: upstream's test/e2e cannot be pinned by go.sum as a tool, ./e2e (which
	# imports it) can.
	e2e.test) pkg=./e2e build="go test -c" inputs=$(stamp e2e) ;;
	*) pkg=k8s.io/kubernetes/cmd/$name ;;
	esac
	cached_build "$name" "$inputs" "$pkg" nice $build -ldflags="$ldflags"
done
echo "$out"
