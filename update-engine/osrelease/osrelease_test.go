package osrelease

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// format writes r in the os-release format, keys sorted, every value single-quoted so that
// Parse reads back the same values.
func format(r Release) string {
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "='" + strings.ReplaceAll(r[k], "'", `'\''`) + "'\n")
	}
	return b.String()
}

func TestParse(t *testing.T) {
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
		{"too large", strings.Repeat("#\n", MaxSize), nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if tc.wantErr {
				if !errors.Is(err, ErrSyntax) {
					t.Fatalf("got %v, %v; want ErrSyntax", got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		want          Release
		wantErr       error
	}{
		{"os-release", "NAME=\"Cairn\"\nID=cairn\nVERSION_ID=1.2.0\n", Release{"NAME": "Cairn", "ID": "cairn", "VERSION_ID": "1.2.0"}, nil},
		{"malformed", "ID='cairn\n", nil, ErrSyntax},
		{"larger than MaxSize", strings.Repeat("#", 2*MaxSize), nil, ErrSyntax},
		{"missing", "", nil, fs.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if !errors.Is(tc.wantErr, fs.ErrNotExist) {
				if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadFile(p)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), p) {
					t.Fatalf("got %v, %v; want %v naming %s", got, err, tc.wantErr, p)
				}
				return
			}
			if err != nil || !maps.Equal(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestFormatRoundTrip(t *testing.T) {
	r := Release{"ID": "cairn", "Q": `it's "quoted" \ $x`, "E": ""}
	got, err := Parse([]byte(format(r)))
	if err != nil || !maps.Equal(got, r) {
		t.Fatalf("%q -> %q, %v", format(r), got, err)
	}
}

// FuzzParse: whatever parses has only valid keys and reads back the same through format.
func FuzzParse(f *testing.F) {
	f.Add([]byte("ID=cairn\nVERSION_ID=1.2.0\n"))
	f.Add([]byte(`NAME="Cairn" # x` + "\nA='b'\"c\"\\d\n"))
	f.Add([]byte("ID='unterminated\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil {
			return
		}
		for k := range r {
			if !keyRE.MatchString(k) {
				t.Fatalf("key %q", k)
			}
		}
		again, err := Parse([]byte(format(r)))
		if err != nil || !maps.Equal(again, r) {
			t.Fatalf("%q: formatted %q, read back %q, %v", b, format(r), again, err)
		}
	})
}
