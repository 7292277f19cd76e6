package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"
)

// Postgres starts a PostgreSQL server of the test's own (Debian's postgresql package) with
// its data in a temporary directory, listening only on a unix socket there (no TCP port, so
// nothing to collide with and nothing reachable from outside), and returns the DSN of an
// empty database "test" on it. The server runs as the postgres user when the test runs as
// root (PostgreSQL refuses to run as root), else as the test's own user; it is stopped when
// the test ends. More databases on the same server: CREATE DATABASE through the DSN.
func Postgres(t TB) string {
	t.Helper()
	SkipShort(t, "needs a PostgreSQL server")
	bin := postgresBin(t)
	dir, err := os.MkdirTemp("", "cairn-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		Require(t, err == nil, "needs the postgres user (Debian's postgresql package)")
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
		return cmd
	}
	data := filepath.Join(dir, "data")
	if out, err := run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	var log bytes.Buffer
	// -F: no fsync (a test's data need not survive the machine); listen_addresses='' : the
	// socket in dir only.
	srv := run("postgres", "-D", data, "-k", dir, "-c", "listen_addresses=", "-F")
	srv.Stdout, srv.Stderr = &log, &log
	if err := srv.Start(); err != nil {
		t.Fatalf("postgres: %v", err)
	}
	exited := make(chan struct{})
	go func() { srv.Wait(); close(exited) }()
	t.Cleanup(func() {
		srv.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			srv.Process.Kill()
			<-exited
		}
	})
	for {
		out, err := run("pg_isready", "-h", dir, "-U", "postgres", "-q").CombinedOutput()
		if err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("postgres exited: %s\n%s", out, log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if out, err := run("createdb", "-h", dir, "-U", "postgres", "test").CombinedOutput(); err != nil {
		t.Fatalf("createdb: %v\n%s\n%s", err, out, log.String())
	}
	return fmt.Sprintf("host=%s user=postgres dbname=test sslmode=disable", dir)
}

// postgresBin is the directory of the newest PostgreSQL server programs Debian installed.
func postgresBin(t TB) string {
	t.Helper()
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	Require(t, len(found) > 0, "needs PostgreSQL's server (Debian's postgresql package; make deps installs it)")
	major := func(p string) int {
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		return n
	}
	sort.Slice(found, func(i, j int) bool { return major(found[i]) < major(found[j]) })
	return filepath.Dir(found[len(found)-1])
}
