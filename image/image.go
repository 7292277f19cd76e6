// Package image holds what the Cairn image builder ships as data: the list of Debian packages
// that make /usr (packages.txt, each with its reason). The pipeline is in image/build.
package image

import (
	_ "embed"
	"fmt"
	"strings"
)

//go:embed packages.txt
var packagesTxt string

// Package is one line of packages.txt.
type Package struct {
	Name   string
	Reason string
}

// DefaultPackages returns the packages of image/packages.txt in order.
func DefaultPackages() []Package {
	p, err := ParsePackages(packagesTxt)
	if err != nil {
		panic(err) // the embedded list is tested
	}
	return p
}

// ParsePackages parses the packages.txt format: "name  # reason", comments and blank lines
// ignored. A package without a reason is an error: every package must say why it is there.
func ParsePackages(text string) ([]Package, error) {
	var out []Package
	seen := map[string]bool{}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, reason, _ := strings.Cut(line, "#")
		name, reason = strings.TrimSpace(name), strings.TrimSpace(reason)
		if strings.ContainsAny(name, " \t,") || !validName(name) {
			return nil, fmt.Errorf("packages.txt line %d: %q is not one Debian package name", i+1, name)
		}
		if reason == "" {
			return nil, fmt.Errorf("packages.txt line %d: package %s has no reason", i+1, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("packages.txt line %d: package %s listed twice", i+1, name)
		}
		seen[name] = true
		out = append(out, Package{Name: name, Reason: reason})
	}
	return out, nil
}

// validName follows Debian policy 5.6.1: lower case letters, digits, + - . ; at least two
// characters, starting with an alphanumeric.
func validName(s string) bool {
	if len(s) < 2 {
		return false
	}
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case i > 0 && (c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}
