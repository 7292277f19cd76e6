package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Tool runs the repository's tools/<script> ("kube/build.sh") with args: it builds the
// binaries named (or finds them in its cache) and prints the directory they are in, which Tool
// returns. A build that fails fails t. The script's progress goes to the test log as it comes.
func Tool(t TB, script string, args ...string) string {
	t.Helper()
	dir, err := TryTool(t, script, args...)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// RequireTool is Tool for a test to which the tool is a prerequisite like a command in PATH (a
// peer built from upstream to compare with): a build that fails, as it does offline with a
// cold cache, skips t, or fails it under CI=true.
func RequireTool(t TB, script string, args ...string) string {
	t.Helper()
	RequireCommand(t, "go")
	dir, err := TryTool(t, script, args...)
	Require(t, err == nil, "%v", err)
	return dir
}

// TryTool is Tool for a tool that t can do without (a benchmark's optional peer): a build
// that fails returns its error, the script's output in t's log.
func TryTool(t TB, script string, args ...string) (string, error) {
	t.Helper()
	return runTool(t.Context(), ".", script, args, &lineLog{t: t})
}

// runTool finds tools/<script> in from or the nearest directory above it that has one, runs
// it with args and stderr, and returns the directory it printed.
func runTool(ctx context.Context, from, script string, args []string, stderr io.Writer) (string, error) {
	name := strings.Join(append([]string{"tools/" + script}, args...), " ")
	path, err := findTool(from, script)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stderr = stderr
	out, err := cmd.Output()
	if f, ok := stderr.(interface{ Flush() }); ok {
		f.Flush()
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w (its output is in the log)", name, err)
	}
	dir, err := toolDir(out)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return dir, nil
}

// errNoTool is a script that neither the test's directory nor any above it has under tools/.
var errNoTool = errors.New("not found in this directory or any above it")

func findTool(from, script string) (string, error) {
	d, err := filepath.Abs(from)
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(d, "tools", script)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		up := filepath.Dir(d)
		if up == d {
			return "", errNoTool
		}
		d = up
	}
}

// toolDir is the directory a build script printed: its last line, an absolute path.
func toolDir(out []byte) (string, error) {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	dir := lines[len(lines)-1]
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("printed %q, not the directory it built into", dir)
	}
	return dir, nil
}

// lineLog writes each line to the test log.
type lineLog struct {
	t   TB
	buf []byte
}

func (w *lineLog) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.t.Log(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

// Flush logs what is left of an unfinished last line.
func (w *lineLog) Flush() {
	if len(w.buf) > 0 {
		w.t.Log(string(w.buf))
		w.buf = nil
	}
}
