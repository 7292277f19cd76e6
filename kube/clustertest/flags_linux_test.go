package clustertest

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
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

func TestKubeconfig(t *testing.T) {
	for _, tc := range []struct{ server, user, token string }{
		{"https://192.168.100.11:6443", "flannel", "abc.def"},
		{"https://10.0.2.2:41234", "locksmithd", `with "quotes" and : colons`},
	} {
		cfg, err := clientcmd.Load([]byte(Kubeconfig(tc.server, []byte("CA PEM"), tc.user, tc.token)))
		if err != nil {
			t.Fatalf("%s: %v", tc.user, err)
		}
		ctx := cfg.Contexts[cfg.CurrentContext]
		if ctx == nil || ctx.AuthInfo != tc.user || cfg.Clusters[ctx.Cluster].Server != tc.server ||
			string(cfg.Clusters[ctx.Cluster].CertificateAuthorityData) != "CA PEM" || cfg.AuthInfos[tc.user].Token != tc.token {
			t.Errorf("%s: the kubeconfig reads back as %+v", tc.user, cfg)
		}
	}
}

func TestKubeProxyExtra(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"0.0.0.0/0"}, "nodePortAddresses: [\"0.0.0.0/0\"]\n"},
		{[]string{"10.0.2.0/24", "primary"}, "nodePortAddresses: [\"10.0.2.0/24\",\"primary\"]\n"},
	} {
		got := InitOptions{NodePortAddresses: tc.in}.kubeProxyExtra()
		if got != tc.want {
			t.Errorf("kubeProxyExtra(%q) = %q; want %q", tc.in, got, tc.want)
		}
		var back struct {
			NodePortAddresses []string `json:"nodePortAddresses"`
		}
		if err := yaml.Unmarshal([]byte(got), &back); err != nil || !slices.Equal(back.NodePortAddresses, tc.in) {
			t.Errorf("kubeProxyExtra(%q) reads back as %q, %v", tc.in, back.NodePortAddresses, err)
		}
	}
}

func TestNodeReady(t *testing.T) {
	cond := func(s corev1.ConditionStatus, msg string) []corev1.NodeCondition {
		return []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse},
			{Type: corev1.NodeReady, Status: s, Message: msg}}
	}
	for _, tc := range []struct {
		name  string
		conds []corev1.NodeCondition
		want  string // "" for Ready
	}{
		{"ready", cond(corev1.ConditionTrue, ""), ""},
		{"not ready", cond(corev1.ConditionFalse, "container runtime network not ready"), "not Ready: container runtime network not ready"},
		{"unknown", cond(corev1.ConditionUnknown, "Kubelet stopped posting node status."), "not Ready: Kubelet stopped posting node status."},
		{"no condition", nil, "no Ready condition yet"},
	} {
		err := NodeReady(&corev1.Node{Status: corev1.NodeStatus{Conditions: tc.conds}})
		if (err == nil) != (tc.want == "") || err != nil && err.Error() != tc.want {
			t.Errorf("%s: %v; want %q", tc.name, err, tc.want)
		}
	}
}
