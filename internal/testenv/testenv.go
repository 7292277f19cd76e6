// Package testenv gates the privileged test tiers (root, VM). A root or VM test that lacks a
// prerequisite skips with the reason on a developer's machine, and fails when CI=true, so
// that CI can never go green by skipping the tests that matter; -short skips them all.
package testenv

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
)

// TB is what the helpers here, and the clusters built on them (flannel/clustertest,
// kube/clustertest), ask of a test: the methods of testing.TB they call. A *testing.T is
// one; so is a Script, through which a program (cairn-demo) drives those clusters without
// linking package testing.
type TB interface {
	Helper()
	Log(args ...any)
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Cleanup(f func())
	TempDir() string
	Context() context.Context
	Failed() bool
}

// InCI reports whether the tests run under CI (CI=true), where a missing prerequisite is a failure.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require skips the test with the reason unless ok; under CI it fails instead.
func Require(t TB, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	why := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("prerequisite missing under CI=true: %s", why)
	}
	t.Skipf("skipping: %s", why)
}

// RequireRoot gates the root tier: namespaces, mounts, loop devices, netlink. With -short
// (make unit) it skips even as root: every privileged test goes through here or RequireVM,
// so -short means the unit tier alone, whoever runs it.
func RequireRoot(t TB) {
	t.Helper()
	SkipShort(t, "root tier")
	Require(t, os.Geteuid() == 0, "needs root (namespaces, mounts, netlink)")
}

// RequireVM gates the VM tier (qemu boots of built images), which also needs root.
func RequireVM(t TB) {
	t.Helper()
	SkipShort(t, "VM tier")
	RequireRoot(t)
}

// SkipShort skips t under -short: what the test needs (the tier named: root, a VM, a
// service such as etcd or a bus) is more than the unit tier, which runs anywhere.
func SkipShort(t TB, tier string) {
	t.Helper()
	if short() {
		t.Skipf("%s: not with -short", tier)
	}
}

// RequireCommand gates on a program in PATH and returns its path.
func RequireCommand(t TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	Require(t, err == nil, "needs %s in PATH (make deps installs it)", name)
	return p
}

// RequireFile gates on a file (a kernel, firmware, a device node) and returns its path.
func RequireFile(t TB, path string) string {
	t.Helper()
	_, err := os.Stat(path)
	Require(t, err == nil, "needs %s: %v", path, err)
	return path
}

// short is testing.Short, read from the test binary's -test.short flag (registered by
// package testing before a test runs), so that this package does not link package testing;
// a program has no such flag and is never short.
func short() bool {
	f := flag.Lookup("test.short")
	return f != nil && f.Value.String() == "true"
}
