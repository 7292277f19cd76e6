// Package osrelease reads the os-release format (os-release(5)): /etc/os-release and
// /usr/lib/os-release, a system extension's extension-release, and files written the same way
// such as an OEM's oem-release. It depends only on the standard library, so that the update
// engine's check of system extensions and its own version read these files alike.
package osrelease

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// Release is an os-release file's KEY=VALUE assignments.
type Release map[string]string

// MaxSize bounds what is read of a release file: real ones are a few hundred bytes.
const MaxSize = 64 << 10

// ErrSyntax: a file is larger than MaxSize or has an unterminated quote.
var ErrSyntax = errors.New("not in os-release format")

var keyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Parse reads the os-release format: one KEY=VALUE per line, the value unquoted or in single
// or double quotes with shell-like backslash escapes, '#' comment lines. As systemd does, a
// line that is no assignment is skipped and a later assignment of a key wins; an unterminated
// quote is ErrSyntax, and so is a file larger than MaxSize.
func Parse(b []byte) (Release, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrSyntax, len(b), MaxSize)
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
			return nil, fmt.Errorf("%w: line %d: %s: %w", ErrSyntax, n+1, key, err)
		}
		r[key] = v
	}
	return r, nil
}

// ReadFile reads and parses the file at path, reading no more than MaxSize+1 bytes of it.
func ReadFile(path string) (Release, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	r, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
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
