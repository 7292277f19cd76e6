package conformance

import "testing"

func TestMirror(t *testing.T) {
	for _, tc := range []struct{ registry, want string }{
		{"registry.k8s.io", "10.0.0.1:5000"},
		{"registry.k8s.io/e2e-test-images", "10.0.0.1:5000/e2e-test-images"},
		{"registry.k8s.io/cloud-provider-gcp", "10.0.0.1:5000/cloud-provider-gcp"},
		{"docker.io/library", "10.0.0.1:5000/library"},
		{"gcr.io/k8s-authenticated-test", "10.0.0.1:5000/k8s-authenticated-test"},
		{"invalid.registry.k8s.io/invalid", "10.0.0.1:5000/invalid"},
	} {
		if got := Mirror("10.0.0.1:5000", tc.registry); got != tc.want {
			t.Errorf("Mirror(%q) = %q, want %q", tc.registry, got, tc.want)
		}
	}
}

func TestRepoList(t *testing.T) {
	got := RepoList("192.168.100.1:5000")
	want := `buildImageRegistry: 192.168.100.1:5000/build-image
cloudProviderGcpRegistry: 192.168.100.1:5000/cloud-provider-gcp
dockerLibraryRegistry: 192.168.100.1:5000/library
gcEtcdRegistry: 192.168.100.1:5000
gcRegistry: 192.168.100.1:5000
invalidRegistry: 192.168.100.1:5000/invalid
privateRegistry: 192.168.100.1:5000/k8s-authenticated-test
promoterE2eRegistry: 192.168.100.1:5000/e2e-test-images
sigStorageRegistry: 192.168.100.1:5000/sig-storage
`
	if got != want {
		t.Errorf("RepoList:\n%s\nwant:\n%s", got, want)
	}
}
