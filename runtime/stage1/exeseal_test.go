package stage1

import "testing"

func TestOverlapping(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"/tmp", "/tmp/rkt/pods/run/u/libcontainer", true},
		{"/tmp/rkt/pods/run/u/libcontainer", "/tmp", true},
		{"/", "/var/lib/rkt/pods/run/u/libcontainer", true},
		{"/usr/bin", "/usr/bin", true},
		{"/usr/bin", "/var/lib/rkt/pods/run/u/libcontainer", false},
		{"/tmp/bin", "/tmp/bin2/pods", false},
		{"/tmp/rkt/bin", "/tmp/rkt/pods/run/u/libcontainer", false},
		{"/var/lib/rkt", "/var/lib/..rkt", false},
	} {
		if got := overlapping(c.a, c.b); got != c.want {
			t.Errorf("overlapping(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
