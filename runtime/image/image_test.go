package image

import (
	"strings"
	"testing"
)

func TestShortIDAndNameVersion(t *testing.T) {
	aci := &Image{ID: "sha512-" + strings.Repeat("a", 128), Format: ACI, Name: "example.com/app", Labels: map[string]string{"version": "1.2"}}
	oci := &Image{ID: "sha256:" + strings.Repeat("b", 64), Format: OCI, Name: "docker.io/library/busybox:1.36", Labels: map[string]string{"version": "1.36"}}
	for _, tc := range []struct{ got, want string }{
		{aci.ShortID(), "sha512-" + strings.Repeat("a", 32)},
		{oci.ShortID(), "sha256:" + strings.Repeat("b", 12)},
		{(&Image{ID: "odd"}).ShortID(), "odd"},
		{aci.NameVersion(), "example.com/app:1.2"},
		{oci.NameVersion(), "docker.io/library/busybox:1.36"},
		{(&Image{Format: ACI, Name: "example.com/x"}).NameVersion(), "example.com/x"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
