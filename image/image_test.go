package image

import "testing"

func TestDefaultPackages(t *testing.T) {
	p := DefaultPackages()
	if len(p) < 10 || p[0].Name != "linux-image-cloud-amd64" {
		t.Fatalf("packages %v", p)
	}
}

func TestParsePackagesRefuses(t *testing.T) {
	for _, bad := range []string{
		"systemd\n",                  // no reason
		"systemd # a\nsystemd # b\n", // twice
		"Systemd # upper case\n",
		"sys temd # space\n",
		"a,b # list\n",
		"-x # leading dash\n",
	} {
		if _, err := ParsePackages(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	p, err := ParsePackages("# c\n\nlibstdc++6 # why\n")
	if err != nil || len(p) != 1 || p[0].Name != "libstdc++6" || p[0].Reason != "why" {
		t.Fatalf("%v %v", p, err)
	}
}
