package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-os/cairn/console/cli"
	"github.com/cairn-os/cairn/console/consoletest"
	"github.com/cairn-os/cairn/console/store"
	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/payload"
)

func run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := (&cli.CLI{Stdin: strings.NewReader(stdin)}).Run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestUsersTokensMigrate(t *testing.T) {
	db := filepath.Join(t.TempDir(), "var", "console.db")
	if out, errs, code := run(t, "", "migrate", "-db", db); code != 0 || !strings.Contains(out, "schema version 3: applied [1 2 3]") {
		t.Fatalf("migrate: %d %s %s", code, out, errs)
	}
	if out, _, code := run(t, "", "migrate", "-db", db); code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("migrate again: %d %s", code, out)
	}
	if out, errs, code := run(t, "correct horse battery\n", "user", "add", "-db", db, "-role", "admin", "alice"); code != 0 || !strings.Contains(out, "alice (admin) added") {
		t.Fatalf("user add: %d %s %s", code, out, errs)
	}
	if _, errs, code := run(t, "short\n", "user", "add", "-db", db, "bob"); code != 1 || !strings.Contains(errs, "at least 10 characters") {
		t.Fatalf("weak password: %d %s", code, errs)
	}
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("another good password\n"), 0o600)
	if out, errs, code := run(t, "", "user", "passwd", "-db", db, "-password-file", pw, "alice"); code != 0 || !strings.Contains(out, "sessions ended") {
		t.Fatalf("passwd: %d %s %s", code, out, errs)
	}
	out, errs, code := run(t, "", "token", "create", "-db", db, "-user", "alice", "-name", "ci", "-role", "viewer")
	if code != 0 || !strings.HasPrefix(out, "cairn_") {
		t.Fatalf("token create: %d %s %s", code, out, errs)
	}
	if _, errs, code := run(t, "", "token", "create", "-db", db, "-user", "alice"); code != 2 || !strings.Contains(errs, "-name") {
		t.Fatalf("token without a name: %d %s", code, errs)
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"user"}, {"serve", "-listen"}} {
		if _, _, code := run(t, "", args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	st, err := store.Open(context.Background(), db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log, _ := st.ActivityLog(context.Background(), store.ActivityFilter{})
	if len(log) != 3 || log[0].Kind != "token.created" || log[2].Actor != "cairn-console user add" {
		t.Fatalf("activity %+v", log)
	}
}

// serve -import-dir is the development server: the payloads of a directory published, the
// URL on stdout; a machine is offered the newest verified one of its track.
func TestServeImportDir(t *testing.T) {
	dir := t.TempDir()
	privPEM, pubPEM, _ := payload.GenerateKey()
	key, _ := payload.ParsePrivateKey(privPEM)
	os.WriteFile(filepath.Join(dir, "key.pem"), pubPEM, 0o644)
	otherPEM, _, _ := payload.GenerateKey()
	other, _ := payload.ParsePrivateKey(otherPEM)
	os.MkdirAll(filepath.Join(dir, "import", "stable"), 0o755)
	for v, k := range map[string][]byte{"1.5.0": nil, "2.0.0": nil, "3.0.0": otherPEM} {
		sign := key
		if k != nil {
			sign = other
		}
		p := consoletest.BuildPayload(t, v, "amd64-usr", sign, nil)
		b, _ := os.ReadFile(p)
		os.WriteFile(filepath.Join(dir, "import", "stable", v+".cairn"), b, 0o644)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var errb testenv.Buffer
	done := make(chan int)
	args := []string{"serve", "-listen", "127.0.0.1:0", "-db", filepath.Join(dir, "c.db"), "-payload-dir", filepath.Join(dir, "payloads"),
		"-keys", filepath.Join(dir, "key.pem"), "-import-dir", filepath.Join(dir, "import")}
	go func() { done <- cli.Run(ctx, args, pw, &errb) }()
	url, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no URL: %v\n%s", err, errb.String())
	}
	go io.Copy(io.Discard, pr)
	url = strings.TrimSpace(url)
	resp, err := (&omaha.Client{URL: url + "v1/update/"}).Do(ctx, &omaha.Request{Protocol: "3.0", Apps: []*omaha.AppRequest{{
		ID: "io.github.cairn-os.cairn", Version: "1.0.0", Track: "stable", MachineID: "m1", UpdateCheck: &omaha.UpdateCheck{}}}})
	if err != nil {
		t.Fatal(err)
	}
	if u, err := resp.Apps[0].FindUpdate(); err != nil || u == nil || u.Version != "2.0.0" {
		t.Fatalf("offered %+v %v\n%s", u, err, errb.String())
	}
	if !strings.Contains(errb.String(), "not publishing an unverified payload") || !strings.Contains(errb.String(), "3.0.0") {
		t.Errorf("the unverified payload is not reported:\n%s", errb.String())
	}
	res, err := http.Get(url + "healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", res, err)
	}
	res.Body.Close()
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d\n%s", code, errb.String())
	}
}

// TestKillLosesNoAcknowledgedEvent runs cairn-console as a process, has machines report
// events to it as fast as they can, kills it with SIGKILL in the middle, and finds every
// event it had acknowledged (200) in the database: on SQLite and on PostgreSQL.
func TestKillLosesNoAcknowledgedEvent(t *testing.T) {
	testenv.SkipShort(t, "builds and kills a cairn-console process")
	bin := filepath.Join(t.TempDir(), "cairn-console")
	if dir := os.Getenv("CAIRN_BIN"); dir != "" {
		bin = filepath.Join(dir, "cairn-console")
	} else if out, err := exec.Command("go", "build", "-o", bin, "github.com/cairn-os/cairn/console/cmd/cairn-console").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Run("sqlite", func(t *testing.T) { killTest(t, bin, filepath.Join(t.TempDir(), "console.db")) })
	t.Run("postgres", func(t *testing.T) { killTest(t, bin, testenv.Postgres(t)) })
}

func killTest(t *testing.T, bin, dsn string) {
	ctx := context.Background()
	st, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	app, err := st.CreateApp(ctx, store.App{ProductID: "io.github.cairn-os.cairn", Name: "Cairn"})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	cmd := exec.Command(bin, "serve", "-listen", "127.0.0.1:0", "-db", dsn, "-payload-dir", filepath.Join(t.TempDir(), "payloads"))
	var logs testenv.Buffer
	cmd.Stderr = &logs
	stdout, _ := cmd.StdoutPipe()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	url, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("no URL: %v\n%s", err, logs.String())
	}
	client := &omaha.Client{URL: strings.TrimSpace(url) + "v1/update/", HTTP: &http.Client{Timeout: 10 * time.Second}}

	// Each event is told apart by its error code: machine w sends codes w*100000+1, +2, ...
	var mu sync.Mutex
	acked := map[int]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 1; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				code := w*100000 + i
				_, err := client.Do(ctx, &omaha.Request{Protocol: "3.0", Apps: []*omaha.AppRequest{{ID: "io.github.cairn-os.cairn", Version: "1.0.0",
					Track: "stable", MachineID: fmt.Sprintf("m%d", w), Events: []*omaha.EventRequest{omaha.Failed(omaha.ErrorCode(code))}}}})
				if err != nil {
					return // the console is gone
				}
				mu.Lock()
				acked[code] = true
				mu.Unlock()
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	close(stop)
	wg.Wait()
	if len(acked) < 50 {
		t.Fatalf("only %d events acknowledged before the kill\n%s", len(acked), logs.String())
	}

	st, err = store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stored := map[int]bool{}
	for after := int64(0); ; {
		evs, err := st.Events(ctx, store.EventFilter{AppID: app.ID, AfterID: after, Oldest: true, Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			stored[int(e.ErrorCode)] = true
		}
		after = evs[len(evs)-1].ID
	}
	lost := 0
	for code := range acked {
		if !stored[code] {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged events lost by the kill", lost, len(acked))
	}
	t.Logf("%d events acknowledged before the kill, all stored (%d stored in all)", len(acked), len(stored))
}
