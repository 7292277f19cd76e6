package clustertest

import (
	"slices"
	"testing"
)

func TestKubeadmFlags(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want []string
		err  bool
	}{
		{env: "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///run/rktlet/rktlet.sock --node-ip=192.168.100.11\"\n",
			want: []string{"--container-runtime-endpoint=unix:///run/rktlet/rktlet.sock", "--node-ip=192.168.100.11"}},
		{env: "# comment\nKUBELET_KUBEADM_ARGS=\"\"\n", want: nil},
		{env: "OTHER=1\n", err: true},
		{env: "KUBELET_KUBEADM_ARGS=\"unterminated\n", err: true},
	} {
		got, err := kubeadmFlags(tc.env)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("kubeadmFlags(%q) = %q, %v; want %q, error %v", tc.env, got, err, tc.want, tc.err)
		}
	}
}
