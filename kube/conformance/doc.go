// Package conformance runs Kubernetes' own end-to-end conformance specs for nodes against a
// kubeadm cluster whose kubelets run their pods on rktlet: e2e.test of k8s.io/kubernetes
// (built by tools/kube) focused on sig-node's [Conformance] specs and every [NodeConformance]
// spec, on a two-node cluster of kube/clustertest, pulling stand-ins of the suite's test
// images from the cluster's registry. It reads the suite's JUnit report into passed, failed
// and skipped specs, each with its reason. `make conformance` runs it; `make test` does not
// (it takes the better part of an hour).
package conformance
