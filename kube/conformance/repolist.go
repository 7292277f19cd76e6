package conformance

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// upstreamRegistries are the registries of e2e.test's images, by the keys of its
// KUBE_TEST_REPO_LIST file (k8s.io/kubernetes/test/utils/image's RegistryList), with their
// defaults.
var upstreamRegistries = map[string]string{
	"promoterE2eRegistry":      "registry.k8s.io/e2e-test-images",
	"buildImageRegistry":       "registry.k8s.io/build-image",
	"invalidRegistry":          "invalid.registry.k8s.io/invalid",
	"gcEtcdRegistry":           "registry.k8s.io",
	"gcRegistry":               "registry.k8s.io",
	"sigStorageRegistry":       "registry.k8s.io/sig-storage",
	"privateRegistry":          "gcr.io/k8s-authenticated-test",
	"dockerLibraryRegistry":    "docker.io/library",
	"cloudProviderGcpRegistry": "registry.k8s.io/cloud-provider-gcp",
}

// Mirror is where a registry's repositories are found in host: the same path without the
// registry's host name, so registry.k8s.io/e2e-test-images/busybox is
// host/e2e-test-images/busybox, as kube/images.Push names what it pushes.
func Mirror(host, registry string) string {
	_, path, ok := strings.Cut(registry, "/")
	if !ok {
		return host
	}
	return host + "/" + path
}

// RepoList is a KUBE_TEST_REPO_LIST file (e2e.test's --kube-test-repo-list) that sends
// every one of the suite's registries to its Mirror in host. The invalid registry's mirror
// holds nothing, so that its pulls still fail, and fail at once.
func RepoList(host string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(upstreamRegistries)) {
		fmt.Fprintf(&b, "%s: %s\n", k, Mirror(host, upstreamRegistries[k]))
	}
	return b.String()
}
