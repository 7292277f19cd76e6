package extensions

import (
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Release is an os-release or extension-release file: its KEY=VALUE assignments.
type Release map[string]string

var keyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// maxRelease bounds what is read of a release file: real ones are a few hundred bytes.
const maxRelease = 64 << 10

// ParseRelease reads the os-release format: one KEY=VALUE per line, the value unquoted or in
// single or double quotes with shell-like backslash escapes, '#' comment lines. As systemd
// does, a line that is no assignment is skipped; an unterminated quote is an error, and so
// is a file larger than 64 KiB.
func ParseRelease(b []byte) (Release, error) {
	if len(b) > maxRelease {
		return nil, fmt.Errorf("%w: release file of %d bytes", ErrRelease, len(b))
	}
	r := Release{}
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		key, raw, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || !keyRE.MatchString(key) {
			continue
		}
		v, err := unquote(strings.TrimSpace(raw))
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %s: %w", ErrRelease, n+1, key, err)
		}
		r[key] = v
	}
	return r, nil
}

// unquote undoes the shell quoting os-release allows: 'single' (literal), "double" (\ escapes
// \ " $ `), and unquoted words (\ escapes any character); quoted and unquoted parts may
// follow each other.
func unquote(s string) (string, error) {
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return "", fmt.Errorf("unterminated '")
			}
			out.WriteString(s[i+1 : i+1+end])
			i += end + 1
		case '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`", s[i+1]) >= 0 {
					i++
				}
				out.WriteByte(s[i])
			}
			if i >= len(s) {
				return "", fmt.Errorf("unterminated \"")
			}
		case '\\':
			if i+1 < len(s) {
				i++
				out.WriteByte(s[i])
			}
		default:
			out.WriteByte(c)
		}
	}
	return out.String(), nil
}

// Format writes r in the os-release format, keys sorted, every value single-quoted so that
// ParseRelease reads back the same values.
func (r Release) Format() string {
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

// Misfit says why systemd-sysext would leave out an extension whose extension-release is ext
// on a host whose os-release is host and whose kernel reports architecture arch (systemd's
// name: x86-64, arm64, ...), or "" when it merges it. The rules are systemd 252's: the
// extension's ARCHITECTURE, when given and not _any, must be arch; its SYSEXT_SCOPE, when
// given, must include "system"; its ID must be the host's or _any (and _any fits any
// version); a host without VERSION_ID and SYSEXT_LEVEL (a rolling release) takes any version;
// when both have SYSEXT_LEVEL the levels must be equal; otherwise, when the host has a
// VERSION_ID, the extension must have the same one.
func Misfit(host Release, arch string, ext Release) string {
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

// Fits describes the OS an extension-release names, as "cairn 4081.2.0", "cairn sysext
// level 2" or "any OS", with its architecture and scope when it names them.
func Fits(ext Release) string {
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

// Describe names a host in the terms Fits names ext's OS in: its ID and VERSION_ID, its
// sysext level and architecture where ext names one, and the scope where ext names one.
func Describe(host Release, arch string, ext Release) string {
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

// HostArch is systemd's name for the architecture this program runs on, which is what the
// kernel reports for a native binary.
func HostArch() string {
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
