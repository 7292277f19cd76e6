// Package clitest runs rkt's command line in-process against scratch data and configuration
// directories, for the tests of cli and cli/remote. It takes the command line as a function,
// so that cli's own tests can use it.
package clitest

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// Run is cli.Run with its options given.
type Run func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int

// Env is one scratch rkt: its data directory (--dir) and configuration directories.
type Env struct {
	Dir, Local, System string
	run                Run
}

// New is an Env in t's temporary directory, laid out as on a host, which runs rkt with run.
func New(t testing.TB, run Run) *Env {
	t.Helper()
	d := t.TempDir()
	return &Env{Dir: filepath.Join(d, "var/lib/rkt"), Local: filepath.Join(d, "etc/rkt"), System: filepath.Join(d, "usr/lib/rkt"), run: run}
}

// Rkt runs rkt with args after the Env's directories, stdin as its input, and returns its
// stdout, stderr and exit status (logged).
func (e *Env) Rkt(t testing.TB, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	all := append([]string{"--dir=" + e.Dir, "--local-config=" + e.Local, "--system-config=" + e.System}, args...)
	code := e.run(context.Background(), all, strings.NewReader(stdin), &out, &errb)
	t.Logf("rkt %s -> %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out.String(), errb.String())
	return out.String(), errb.String(), code
}
