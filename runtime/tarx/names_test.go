package tarx

import (
	"errors"
	"testing"
)

func TestCleanName(t *testing.T) {
	for _, c := range []struct {
		name, want string
		unsafe     bool
	}{
		{name: "a/b", want: "a/b"},
		{name: "./a//b/", want: "a/b"},
		{name: "./", want: "."},
		{name: ".", want: "."},
		{name: "/", want: "."},
		{name: "//", want: "."},
		{name: "/.", want: "."},
		{name: "/etc/passwd", unsafe: true},
		{name: "/..", unsafe: true},
		{name: "a/../../b", unsafe: true},
		{name: "..", unsafe: true},
		{name: "", unsafe: true},
		{name: "a\x00b", unsafe: true},
	} {
		got, err := CleanName(c.name)
		if c.unsafe {
			if !errors.Is(err, ErrUnsafe) {
				t.Errorf("CleanName(%q) = %q, %v; want ErrUnsafe", c.name, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("CleanName(%q) = %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}
