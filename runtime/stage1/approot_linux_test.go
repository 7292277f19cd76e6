package stage1

import "testing"

func TestAppRootHostToPod(t *testing.T) {
	r := &AppRoot{Users: &PrivateUsers{Shift: 5 * UIDRangeSize, Count: UIDRangeSize}}
	for _, tc := range []struct{ host, pod int }{
		{5 * UIDRangeSize, 0},                // the pod's root
		{5*UIDRangeSize + 1000, 1000},        // a user of the pod
		{6*UIDRangeSize - 1, 65535},          // the block's last
		{6 * UIDRangeSize, 6 * UIDRangeSize}, // past it: not the pod's
		{0, 0},                               // an image tree's root
		{1000, 1000},
	} {
		if got := r.HostToPod(tc.host); got != tc.pod {
			t.Errorf("HostToPod(%d) = %d, want %d", tc.host, got, tc.pod)
		}
	}
	if got := (&AppRoot{}).HostToPod(5 * UIDRangeSize); got != 5*UIDRangeSize {
		t.Errorf("without private users: %d", got)
	}
}
