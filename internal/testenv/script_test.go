package testenv

import (
	"context"
	"os"
	"strings"
	"testing"
)

func TestRunScript(t *testing.T) {
	var out strings.Builder
	var order []string
	var dir string
	err := RunScript(context.Background(), "ok", &out, func(s TB) {
		s.Cleanup(func() { order = append(order, "first") })
		s.Cleanup(func() { order = append(order, "second") })
		dir = s.TempDir()
		s.Logf("in %s", "it")
		s.Log("a", 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "in it\na 1\n" {
		t.Errorf("log: %q", got)
	}
	if strings.Join(order, ",") != "second,first" {
		t.Errorf("cleanups ran %v; want the last registered first", order)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("TempDir %s left behind (%v)", dir, err)
	}
}

func TestRunScriptFatal(t *testing.T) {
	var out strings.Builder
	reached, cleaned := false, false
	var ctxDone bool
	err := RunScript(context.Background(), "fatal", &out, func(s TB) {
		ctx := s.Context()
		s.Cleanup(func() { cleaned, ctxDone = true, ctx.Err() != nil })
		s.Errorf("first %d", 1)
		if !s.Failed() {
			t.Error("Failed after Errorf: false")
		}
		s.Fatalf("stop %s", "here")
		reached = true
	})
	if err == nil || !strings.Contains(err.Error(), "fatal") {
		t.Errorf("RunScript: %v; want the failure named", err)
	}
	if reached {
		t.Error("Fatalf returned")
	}
	if !cleaned || !ctxDone {
		t.Errorf("cleanup ran: %v, with the context cancelled: %v", cleaned, ctxDone)
	}
	if got := out.String(); got != "first 1\nstop here\n" {
		t.Errorf("log: %q", got)
	}
}

func TestRunScriptSkipFails(t *testing.T) {
	var out strings.Builder
	if err := RunScript(context.Background(), "skip", &out, func(s TB) { Require(s, false, "needs %s", "a thing") }); err == nil {
		t.Error("a script that skips succeeded; it cannot do what it needs")
	}
	if !strings.Contains(out.String(), "needs a thing") {
		t.Errorf("log: %q", out.String())
	}
}

func TestShortFromFlag(t *testing.T) {
	if short() != testing.Short() {
		t.Errorf("short() = %v, testing.Short() = %v", short(), testing.Short())
	}
}
