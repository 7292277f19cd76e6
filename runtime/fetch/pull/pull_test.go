package pull

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, s := range []string{"new", "update", "never"} {
		if p, err := Parse(s); err != nil || string(p) != s {
			t.Errorf("Parse(%q) = %q, %v", s, p, err)
		}
	}
	for _, s := range []string{"", "New", "sometimes", "never "} {
		if _, err := Parse(s); err == nil || !strings.Contains(err.Error(), "--pull-policy") {
			t.Errorf("Parse(%q): %v, want an error naming --pull-policy", s, err)
		}
	}
}
