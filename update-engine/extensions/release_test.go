package extensions

import (
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
)

func TestParseRelease(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Release
		wantErr  bool
	}{
		{"image/sysext's", "ID=cairn\nVERSION_ID=1.2.0\n", Release{"ID": "cairn", "VERSION_ID": "1.2.0"}, false},
		{"image/build's os-release", `NAME="Cairn"
ID=cairn
VERSION_ID=4116.0.0
PRETTY_NAME="Cairn 4116.0.0"
`, Release{"NAME": "Cairn", "ID": "cairn", "VERSION_ID": "4116.0.0", "PRETTY_NAME": "Cairn 4116.0.0"}, false},
		{"comments, blanks, CRLF-free spaces", "# a comment\n\n  ID = debian \n;x\n", Release{"ID": "debian"}, false},
		{"single quotes are literal", `A='a "b" \n'`, Release{"A": `a "b" \n`}, false},
		{"double quotes escape", `A="x\"y\\z\$"`, Release{"A": `x"y\z$`}, false},
		{"double quotes keep other backslashes", `A="a\nb"`, Release{"A": `a\nb`}, false},
		{"unquoted backslash", `A=a\ b`, Release{"A": "a b"}, false},
		{"adjacent parts", `A='x'"y"z`, Release{"A": "xyz"}, false},
		{"empty value", "A=\nB=''", Release{"A": "", "B": ""}, false},
		{"later wins", "ID=a\nID=b", Release{"ID": "b"}, false},
		{"lines that are no assignment are skipped", "garbage\n1X=2\nID=cairn\n=x", Release{"ID": "cairn"}, false},
		{"unterminated single quote", "ID='cairn", nil, true},
		{"unterminated double quote", `ID="cairn\"`, nil, true},
		{"too large", strings.Repeat("#\n", maxRelease), nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRelease([]byte(tc.in))
			if tc.wantErr {
				if !errors.Is(err, ErrRelease) {
					t.Fatalf("got %v, %v; want ErrRelease", got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestFormatRoundTrip(t *testing.T) {
	r := Release{"ID": "cairn", "Q": `it's "quoted" \ $x`, "E": ""}
	got, err := ParseRelease([]byte(r.Format()))
	if err != nil || !maps.Equal(got, r) {
		t.Fatalf("%q -> %q, %v", r.Format(), got, err)
	}
}

func TestMisfit(t *testing.T) {
	cairn := Release{"ID": "cairn", "VERSION_ID": "4116.0.0"}
	leveled := Release{"ID": "cairn", "VERSION_ID": "4116.0.0", "SYSEXT_LEVEL": "2"}
	rolling := Release{"ID": "arch"}
	for _, tc := range []struct {
		name      string
		host, ext Release
		want      string
		fits      string // Fits(ext)
		host_     string // Describe(host, "x86-64", ext)
	}{
		{"same ID and version", cairn, Release{"ID": "cairn", "VERSION_ID": "4116.0.0"}, "",
			"cairn 4116.0.0", "cairn 4116.0.0"},
		{"another version", cairn, Release{"ID": "cairn", "VERSION_ID": "4081.2.0"}, "another OS version",
			"cairn 4081.2.0", "cairn 4116.0.0"},
		{"another OS", cairn, Release{"ID": "debian", "VERSION_ID": "4116.0.0"}, "another OS",
			"debian 4116.0.0", "cairn 4116.0.0"},
		{"no version where the host has one", cairn, Release{"ID": "cairn"}, "another OS version",
			"cairn of any version", "cairn 4116.0.0"},
		{"no ID", cairn, Release{"VERSION_ID": "4116.0.0"}, "its extension-release has no ID",
			"no OS", "cairn 4116.0.0"},
		{"empty", cairn, Release{}, "its extension-release is empty", "no OS", "cairn 4116.0.0"},
		{"_any OS fits any version", cairn, Release{"ID": "_any", "VERSION_ID": "1"}, "", "any OS", "cairn 4116.0.0"},
		{"_any OS, another architecture", cairn, Release{"ID": "_any", "ARCHITECTURE": "arm64"}, "another architecture",
			"any OS on arm64", "cairn 4116.0.0 on x86-64"},
		{"same architecture", cairn, Release{"ID": "cairn", "VERSION_ID": "4116.0.0", "ARCHITECTURE": "x86-64"}, "",
			"cairn 4116.0.0 on x86-64", "cairn 4116.0.0 on x86-64"},
		{"_any architecture", cairn, Release{"ID": "cairn", "VERSION_ID": "4116.0.0", "ARCHITECTURE": "_any"}, "",
			"cairn 4116.0.0", "cairn 4116.0.0"},
		{"level on both, equal: the version does not count", leveled, Release{"ID": "cairn", "VERSION_ID": "1", "SYSEXT_LEVEL": "2"}, "",
			"cairn sysext level 2", "cairn sysext level 2"},
		{"level on both, different", leveled, Release{"ID": "cairn", "VERSION_ID": "4116.0.0", "SYSEXT_LEVEL": "3"}, "another sysext level",
			"cairn sysext level 3", "cairn sysext level 2"},
		{"level on the host only: the version counts", leveled, Release{"ID": "cairn", "VERSION_ID": "4081.2.0"}, "another OS version",
			"cairn 4081.2.0", "cairn 4116.0.0"},
		{"level on the extension only: the version counts", cairn, Release{"ID": "cairn", "VERSION_ID": "4081.2.0", "SYSEXT_LEVEL": "2"}, "another OS version",
			"cairn sysext level 2", "cairn 4116.0.0"},
		{"level on the host, none on the extension, same version", leveled, Release{"ID": "cairn", "VERSION_ID": "4116.0.0"}, "",
			"cairn 4116.0.0", "cairn 4116.0.0"},
		{"host level without version, extension without level", Release{"ID": "cairn", "SYSEXT_LEVEL": "2"}, Release{"ID": "cairn", "VERSION_ID": "9"}, "",
			"cairn 9", "cairn"},
		{"rolling host takes any version", rolling, Release{"ID": "arch", "VERSION_ID": "9"}, "", "arch 9", "arch"},
		{"scope without system", cairn, Release{"ID": "cairn", "VERSION_ID": "4116.0.0", "SYSEXT_SCOPE": "initrd portable"}, "another scope",
			`cairn 4116.0.0 in scope "initrd portable"`, `cairn 4116.0.0 in scope "system"`},
		{"scope with system", cairn, Release{"ID": "cairn", "VERSION_ID": "4116.0.0", "SYSEXT_SCOPE": "portable system"}, "",
			`cairn 4116.0.0 in scope "portable system"`, `cairn 4116.0.0 in scope "system"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Misfit(tc.host, "x86-64", tc.ext); got != tc.want {
				t.Errorf("Misfit = %q, want %q", got, tc.want)
			}
			if got := Fits(tc.ext); got != tc.fits {
				t.Errorf("Fits = %q, want %q", got, tc.fits)
			}
			if got := Describe(tc.host, "x86-64", tc.ext); got != tc.host_ {
				t.Errorf("Describe = %q, want %q", got, tc.host_)
			}
		})
	}
}

// FuzzParseRelease: whatever parses has only valid keys and reads back the same through
// Format.
func FuzzParseRelease(f *testing.F) {
	f.Add([]byte("ID=cairn\nVERSION_ID=1.2.0\n"))
	f.Add([]byte(`NAME="Cairn" # x` + "\nA='b'\"c\"\\d\n"))
	f.Add([]byte("ID='unterminated\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRelease(b)
		if err != nil {
			return
		}
		for k := range r {
			if !keyRE.MatchString(k) {
				t.Fatalf("key %q", k)
			}
		}
		again, err := ParseRelease([]byte(r.Format()))
		if err != nil || !maps.Equal(again, r) {
			t.Fatalf("%q: formatted %q, read back %q, %v", b, r.Format(), again, err)
		}
	})
}
