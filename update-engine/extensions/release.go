package extensions

import (
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/cairn-os/cairn/update-engine/osrelease"
)

// The fields systemd-sysext compares.
const (
	keyID        = "ID"
	keyVersionID = "VERSION_ID"
	keySysextLvl = "SYSEXT_LEVEL"
	keyArch      = "ARCHITECTURE"
	keyScope     = "SYSEXT_SCOPE"
	anyValue     = "_any"
	hostScope    = "system" // systemd-sysext.service runs after the initrd
)

// misfit says why systemd-sysext would leave out an extension whose extension-release is ext
// on a host whose os-release is host and whose kernel reports architecture arch (systemd's
// name: x86-64, arm64, ...), or "" when it merges it. The rules are systemd 252's: the
// extension's ARCHITECTURE, when given and not _any, must be arch; its SYSEXT_SCOPE, when
// given, must include "system"; its ID must be the host's or _any (and _any fits any
// version); a host without VERSION_ID and SYSEXT_LEVEL (a rolling release) takes any version;
// when both have SYSEXT_LEVEL the levels must be equal; otherwise, when the host has a
// VERSION_ID, the extension must have the same one.
func misfit(host osrelease.Release, arch string, ext osrelease.Release) string {
	if len(ext) == 0 {
		return "its extension-release is empty"
	}
	if s, ok := ext[keyScope]; ok && !slices.Contains(strings.Fields(s), hostScope) {
		return "another scope"
	}
	if a := ext[keyArch]; a != "" && a != anyValue && a != arch {
		return "another architecture"
	}
	id := ext[keyID]
	switch {
	case id == "":
		return "its extension-release has no ID"
	case id == anyValue:
		return ""
	case id != host[keyID]:
		return "another OS"
	}
	hostVersion, hostLevel := host[keyVersionID], host[keySysextLvl]
	if hostVersion == "" && hostLevel == "" {
		return ""
	}
	if lvl := ext[keySysextLvl]; hostLevel != "" && lvl != "" {
		if lvl != hostLevel {
			return "another sysext level"
		}
		return ""
	}
	if hostVersion != "" && ext[keyVersionID] != hostVersion {
		return "another OS version"
	}
	return ""
}

// fits describes the OS an extension-release names, as "cairn 4081.2.0", "cairn sysext
// level 2" or "any OS", with its architecture and scope when it names them.
func fits(ext osrelease.Release) string {
	var s string
	switch id := ext[keyID]; {
	case id == anyValue:
		s = "any OS"
	case id == "":
		s = "no OS"
	case ext[keySysextLvl] != "":
		s = id + " sysext level " + ext[keySysextLvl]
	case ext[keyVersionID] != "":
		s = id + " " + ext[keyVersionID]
	default:
		s = id + " of any version"
	}
	if a := ext[keyArch]; a != "" && a != anyValue {
		s += " on " + a
	}
	if sc, ok := ext[keyScope]; ok {
		s += " in scope " + strconv.Quote(sc)
	}
	return s
}

// describeHost names a host in the terms fits names ext's OS in: its ID and VERSION_ID, its
// sysext level and architecture where ext names one, and the scope where ext names one.
func describeHost(host osrelease.Release, arch string, ext osrelease.Release) string {
	s := host[keyID] + " " + host[keyVersionID]
	if ext[keySysextLvl] != "" && host[keySysextLvl] != "" {
		s = host[keyID] + " sysext level " + host[keySysextLvl]
	}
	s = strings.TrimSpace(s)
	if a := ext[keyArch]; a != "" && a != anyValue {
		s += " on " + arch
	}
	if _, ok := ext[keyScope]; ok {
		s += " in scope " + strconv.Quote(hostScope)
	}
	return s
}

// hostArch is systemd's name for the architecture this program runs on, which is what the
// kernel reports for a native binary.
func hostArch() string {
	if a, ok := systemdArch[runtime.GOARCH]; ok {
		return a
	}
	return runtime.GOARCH
}

var systemdArch = map[string]string{
	"amd64": "x86-64", "386": "x86", "arm64": "arm64", "arm": "arm", "riscv64": "riscv64",
	"ppc64le": "ppc64-le", "ppc64": "ppc64", "s390x": "s390x", "loong64": "loongarch64",
	"mips64le": "mips64-le", "mipsle": "mips-le",
}
