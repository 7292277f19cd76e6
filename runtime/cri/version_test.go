package cri

import "testing"

func TestSemanticVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3":        "1.2.3",
		"1.2.3-rc.1":    "1.2.3-rc.1",
		"94bc063-dirty": "0.0.0-94bc063-dirty",
		"dev":           "0.0.0-dev",
		"a b/c":         "0.0.0-a-b-c",
		"":              "0.0.0-unknown",
		"..":            "0.0.0-unknown",
		"01.2.3":        "0.0.0-unknown", // a numeric pre-release identifier may not lead with 0
	} {
		if got := semanticVersion(in); got != want {
			t.Errorf("semanticVersion(%q) = %q, want %q", in, got, want)
		}
	}
}
