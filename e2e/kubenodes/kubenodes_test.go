package kubenodes

import "testing"

func TestJoinDone(t *testing.T) {
	for _, tc := range []struct {
		out    string
		done   bool
		failed string
	}{
		{"", false, ""},
		{"activating\n\ninactive\n", false, ""},
		{"active\n\nactivating\n", false, ""},
		{"active\n\nactive\n", true, ""},
		{"active\n\nfailed\n", true, "kubeadm.service"},
		// The fetch failed: kubeadm's unit ends inactive, a dependency failure.
		{"failed\n\ninactive\n", true, "kubernetes-sysext.service"},
		{"active\n", false, ""},
	} {
		done, failed := joinDone(tc.out)
		if done != tc.done || failed != tc.failed {
			t.Errorf("joinDone(%q) = %v, %q; want %v, %q", tc.out, done, failed, tc.done, tc.failed)
		}
	}
}

func TestAnswersCrossed(t *testing.T) {
	for _, tc := range []struct {
		a    Answers
		want bool
	}{
		{Answers{"cairn-1": {"cairn-1": 3, "cairn-2": 2}, "cairn-2": {"cairn-1": 1, "cairn-2": 4}}, true},
		{Answers{"cairn-1": {"cairn-1": 5}, "cairn-2": {"cairn-1": 1, "cairn-2": 4}}, false},
		{Answers{"cairn-1": {"cairn-2": 5}}, false},
		{Answers{}, false},
	} {
		if got := tc.a.Crossed(); got != tc.want {
			t.Errorf("%v.Crossed() = %v, want %v", tc.a, got, tc.want)
		}
	}
	a := Answers{"cairn-1": {"cairn-1": 3, "cairn-2": 2}}
	if got, want := a.String(), "through cairn-1's NodePort: 3 by the pod on cairn-1, 2 by the pod on cairn-2"; got != want {
		t.Errorf("String: %q, want %q", got, want)
	}
}
