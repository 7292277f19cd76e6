package testenv

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
)

// Script is a TB for a program: RunScript runs a function with one, as go test runs a test,
// so that a program drives the clusters the tests build (cairn-demo's Kubernetes nodes)
// through the same code. Its log goes to a writer; Fatal ends the function's goroutine, as
// a test's does; Skipf is a failure, a program having no one to skip for.
type Script struct {
	name string
	out  io.Writer
	ctx  context.Context

	mu       sync.Mutex
	failed   bool
	cleanups []func()
	tmp      string
	tmpN     int
}

var _ TB = (*Script)(nil)

// RunScript runs f with a Script named name that logs to out, then its cleanups, last
// registered first, and returns an error if f failed. The Script's Context is ctx until f
// returns, then cancelled, as a test's is before its cleanups run.
func RunScript(ctx context.Context, name string, out io.Writer, f func(TB)) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	s := &Script{name: name, out: out, ctx: ctx}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(s)
	}()
	<-done
	cancel()
	s.runCleanups()
	if s.Failed() {
		return fmt.Errorf("%s failed", name)
	}
	return nil
}

// runCleanups runs the cleanups in a goroutine of their own, so that one that calls Fatal
// ends only itself (and is a failure), as in a test.
func (s *Script) runCleanups() {
	for {
		s.mu.Lock()
		n := len(s.cleanups)
		if n == 0 {
			s.mu.Unlock()
			break
		}
		c := s.cleanups[n-1]
		s.cleanups = s.cleanups[:n-1]
		s.mu.Unlock()
		done := make(chan struct{})
		go func() {
			defer close(done)
			c()
		}()
		<-done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tmp != "" {
		if err := os.RemoveAll(s.tmp); err != nil {
			s.failed = true
			fmt.Fprintf(s.out, "%s: remove its temporary directory: %v\n", s.name, err)
		}
	}
}

// Helper does nothing: a Script's lines name no caller.
func (s *Script) Helper() {}

// Log writes its arguments as fmt.Sprintln does, a line.
func (s *Script) Log(args ...any) { s.line(fmt.Sprintln(args...)) }

// Logf writes a line.
func (s *Script) Logf(format string, args ...any) { s.line(fmt.Sprintf(format, args...)) }

// Errorf writes a line and marks the script failed; it goes on.
func (s *Script) Errorf(format string, args ...any) {
	s.fail()
	s.line(fmt.Sprintf(format, args...))
}

// Fatal writes a line, marks the script failed and ends the calling goroutine.
func (s *Script) Fatal(args ...any) {
	s.fail()
	s.line(fmt.Sprintln(args...))
	runtime.Goexit()
}

// Fatalf is Fatal with a format.
func (s *Script) Fatalf(format string, args ...any) {
	s.fail()
	s.line(fmt.Sprintf(format, args...))
	runtime.Goexit()
}

// Skipf is Fatalf: what a test skips for, a program cannot do without.
func (s *Script) Skipf(format string, args ...any) { s.Fatalf(format, args...) }

// Cleanup registers f to run after the script's function, last registered first.
func (s *Script) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

// TempDir is a new directory under one the script removes at its end.
func (s *Script) TempDir() string {
	d, err := s.tempDir()
	if err != nil {
		s.Fatalf("TempDir: %v", err)
	}
	return d
}

func (s *Script) tempDir() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tmp == "" {
		d, err := os.MkdirTemp("", s.name+"-")
		if err != nil {
			return "", err
		}
		s.tmp = d
	}
	s.tmpN++
	d := fmt.Sprintf("%s/%03d", s.tmp, s.tmpN)
	return d, os.Mkdir(d, 0o700)
}

// Context is the script's context, cancelled when its function returns.
func (s *Script) Context() context.Context { return s.ctx }

// Failed reports whether Errorf or Fatal was called.
func (s *Script) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *Script) fail() {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
}

func (s *Script) line(msg string) {
	if len(msg) == 0 || msg[len(msg)-1] != '\n' {
		msg += "\n"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = io.WriteString(s.out, msg)
}
