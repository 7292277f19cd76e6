package insecure

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Options
	}{
		{"", None},
		{"none", None},
		{"image", Image},
		{"image,http", Image | HTTP},
		{" TLS , pubkey ", TLS | PubKey},
		{"all-fetch", Image | TLS | HTTP | PubKey},
		{"all-run", OnDisk | Capabilities | Paths | Seccomp | Run},
		{"all", All},
		{"image,,", Image},
	} {
		got, err := Parse(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseUnknown(t *testing.T) {
	_, err := Parse("image,imgae")
	if err == nil || !strings.Contains(err.Error(), `"imgae"`) || !strings.Contains(err.Error(), "all-fetch") {
		t.Fatalf("Parse: err %v; want it to name the bad value and list the good ones", err)
	}
}

func TestString(t *testing.T) {
	if s := (Image | HTTP).String(); s != "image,http" {
		t.Errorf("String = %q", s)
	}
	if s := None.String(); s != "none" {
		t.Errorf("String = %q", s)
	}
	if All.Has(Image|Seccomp) != true || Image.Has(Image|HTTP) {
		t.Error("Has is wrong")
	}
}
