// Package e2e is Kubernetes' end-to-end suite as Cairn builds it: `go test -c` of this package
// (tools/kube/build.sh e2e.test) links the node conformance specs of k8s.io/kubernetes, at the
// version this module pins, into one e2e.test that kube/conformance runs against a cluster on
// rktlet. The package holds only the test binary's entry; the specs are upstream's.
package e2e
