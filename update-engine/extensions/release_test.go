package extensions

import (
	"testing"

	"github.com/cairn-os/cairn/update-engine/osrelease"
)

func TestMisfit(t *testing.T) {
	cairn := osrelease.Release{"ID": "cairn", "VERSION_ID": "4116.0.0"}
	leveled := osrelease.Release{"ID": "cairn", "VERSION_ID": "4116.0.0", "SYSEXT_LEVEL": "2"}
	rolling := osrelease.Release{"ID": "arch"}
	for _, tc := range []struct {
		name      string
		host, ext osrelease.Release
		want      string
		fits      string // fits(ext)
		host_     string // describeHost(host, "x86-64", ext)
	}{
		{"same ID and version", cairn, osrelease.Release{"ID": "cairn", "VERSION_ID": "4116.0.0"}, "",
			"cairn 4116.0.0", "cairn 4116.0.0"},
		{"another version", cairn, osrelease.Release{"ID": "cairn", "VERSION_ID": "4081.2.0"}, "another OS version",
			"cairn 4081.2.0", "cairn 4116.0.0"},
		{"another OS", cairn, osrelease.Release{"ID": "debian", "VERSION_ID": "4116.0.0"}, "another OS",
			"debian 4116.0.0", "cairn 4116.0.0"},
		{"no version where the host has one", cairn, osrelease.Release{"ID": "cairn"}, "another OS version",
			"cairn of any version", "cairn 4116.0.0"},
		{"no ID", cairn, osrelease.Release{"VERSION_ID": "4116.0.0"}, "its extension-release has no ID",
			"no OS", "cairn 4116.0.0"},
		{"empty", cairn, osrelease.Release{}, "its extension-release is empty", "no OS", "cairn 4116.0.0"},
		{"_any OS fits any version", cairn, osrelease.Release{"ID": "_any", "VERSION_ID": "1"}, "", "any OS", "cairn 4116.0.0"},
		{"_any OS, another architecture", cairn, osrelease.Release{"ID": "_any", "ARCHITECTURE": "arm64"}, "another architecture",
			"any OS on arm64", "cairn 4116.0.0 on x86-64"},
		{"same architecture", cairn, osrelease.Release{"ID": "cairn", "VERSION_ID": "4116.0.0", "ARCHITECTURE": "x86-64"}, "",
			"cairn 4116.0.0 on x86-64", "cairn 4116.0.0 on x86-64"},
		{"_any architecture", cairn, osrelease.Release{"ID": "cairn", "VERSION_ID": "4116.0.0", "ARCHITECTURE": "_any"}, "",
			"cairn 4116.0.0", "cairn 4116.0.0"},
		{"level on both, equal: the version does not count", leveled, osrelease.Release{"ID": "cairn", "VERSION_ID": "1", "SYSEXT_LEVEL": "2"}, "",
			"cairn sysext level 2", "cairn sysext level 2"},
		{"level on both, different", leveled, osrelease.Release{"ID": "cairn", "VERSION_ID": "4116.0.0", "SYSEXT_LEVEL": "3"}, "another sysext level",
			"cairn sysext level 3", "cairn sysext level 2"},
		{"level on the host only: the version counts", leveled, osrelease.Release{"ID": "cairn", "VERSION_ID": "4081.2.0"}, "another OS version",
			"cairn 4081.2.0", "cairn 4116.0.0"},
		{"level on the extension only: the version counts", cairn, osrelease.Release{"ID": "cairn", "VERSION_ID": "4081.2.0", "SYSEXT_LEVEL": "2"}, "another OS version",
			"cairn sysext level 2", "cairn 4116.0.0"},
		{"level on the host, none on the extension, same version", leveled, osrelease.Release{"ID": "cairn", "VERSION_ID": "4116.0.0"}, "",
			"cairn 4116.0.0", "cairn 4116.0.0"},
		{"host level without version, extension without level", osrelease.Release{"ID": "cairn", "SYSEXT_LEVEL": "2"}, osrelease.Release{"ID": "cairn", "VERSION_ID": "9"}, "",
			"cairn 9", "cairn"},
		{"rolling host takes any version", rolling, osrelease.Release{"ID": "arch", "VERSION_ID": "9"}, "", "arch 9", "arch"},
		{"scope without system", cairn, osrelease.Release{"ID": "cairn", "VERSION_ID": "4116.0.0", "SYSEXT_SCOPE": "initrd portable"}, "another scope",
			`cairn 4116.0.0 in scope "initrd portable"`, `cairn 4116.0.0 in scope "system"`},
		{"scope with system", cairn, osrelease.Release{"ID": "cairn", "VERSION_ID": "4116.0.0", "SYSEXT_SCOPE": "portable system"}, "",
			`cairn 4116.0.0 in scope "portable system"`, `cairn 4116.0.0 in scope "system"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := misfit(tc.host, "x86-64", tc.ext); got != tc.want {
				t.Errorf("misfit = %q, want %q", got, tc.want)
			}
			if got := fits(tc.ext); got != tc.fits {
				t.Errorf("fits = %q, want %q", got, tc.fits)
			}
			if got := describeHost(tc.host, "x86-64", tc.ext); got != tc.host_ {
				t.Errorf("describeHost = %q, want %q", got, tc.host_)
			}
		})
	}
}
