package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOSVersion(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content, want string
		wantErr             bool
	}{
		{"as image/build writes it", "NAME=\"Cairn\"\nID=cairn\nVERSION_ID=4116.0.0\n", "4116.0.0", false},
		{"quoted, with escapes", `VERSION_ID="4116.0.0+\"dev\""`, `4116.0.0+"dev"`, false},
		{"spaces around the key", "ID=cairn\n VERSION_ID = 1.2.0\n", "1.2.0", false},
		{"VERSION when there is no VERSION_ID", "VERSION='1.2.0 (Cairn)'\n", "1.2.0 (Cairn)", false},
		{"IMAGE_VERSION last", "IMAGE_VERSION=7\n", "7", false},
		{"no version", "ID=cairn\n", "", true},
		{"malformed", "VERSION_ID='1.2.0\n", "", true},
		{"missing", "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, "/", " "))
			if tc.name != "missing" {
				if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := osVersion(p)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("osVersion = %q, %v; want %q (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestKeyOf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "oem-release")
	if err := os.WriteFile(p, []byte("ID=qemu\nVERSION_ID=0.3\nNAME=\"QEMU\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"ID": "qemu", "VERSION_ID": "0.3", "NAME": "QEMU", "BUILD": ""} {
		if got := keyOf(p, key); got != want {
			t.Errorf("keyOf(%s) = %q, want %q", key, got, want)
		}
	}
	if got := keyOf(filepath.Join(t.TempDir(), "none"), "ID"); got != "" {
		t.Errorf("keyOf of a missing file = %q", got)
	}
}
