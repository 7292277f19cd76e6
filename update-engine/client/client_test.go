package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/update-engine/api"
)

func TestStatusFormat(t *testing.T) {
	var b bytes.Buffer
	(&printer{w: &b}).status(&api.Status{LastCheckedTime: 1700000000, Progress: 0.5, CurrentOperation: api.OpDownloading, NewVersion: "2.0.0", NewSize: 42})
	want := "LAST_CHECKED_TIME=1700000000\nPROGRESS=0.500000\nCURRENT_OP=UPDATE_STATUS_DOWNLOADING\nNEW_VERSION=2.0.0\nNEW_SIZE=42\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	(&printer{w: &b, json: true}).status(&api.Status{CurrentOperation: api.OpIdle})
	if !strings.Contains(b.String(), `"current_operation":"UPDATE_STATUS_IDLE"`) {
		t.Fatalf("json: %s", b.String())
	}
}

func TestUsageAndNoDaemon(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Run(context.Background(), nil, &out, &errb); code != 2 {
		t.Fatalf("no verb: exit %d", code)
	}
	sock := filepath.Join(t.TempDir(), "none.sock")
	if code := Run(context.Background(), []string{"-socket", sock, "-status"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), sock) {
		t.Fatalf("no daemon: exit %d, %s", code, errb.String())
	}
	// A daemon that answers an error is a failed -update.
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "ue.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		bufio.NewReader(c).ReadString('\n')
		c.Write([]byte(`{"done":true,"result":"no-update","error":"update step verify-payload: payload signature does not verify"}` + "\n"))
		c.Close()
	}()
	errb.Reset()
	if code := Run(context.Background(), []string{"-socket", ln.Addr().String(), "-update"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "signature") {
		t.Fatalf("failed update: exit %d, %s", code, errb.String())
	}
}

// An offer the engine refused is no update, and the client says why.
func TestUpdateRefusedSaysWhy(t *testing.T) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "ue.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		bufio.NewReader(c).ReadString('\n')
		c.Write([]byte(`{"done":true,"result":"no-update","status":{"current_operation":"UPDATE_STATUS_IDLE","last_error":"version 2.0.0: this machine rolled back from it"}}` + "\n"))
		c.Close()
	}()
	var out, errb bytes.Buffer
	if code := Run(context.Background(), []string{"-socket", ln.Addr().String(), "-update"}, &out, &errb); code != 0 ||
		out.String() != "No update applied: version 2.0.0: this machine rolled back from it\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}

func TestUpdateMessage(t *testing.T) {
	for _, c := range []struct {
		reply api.Reply
		want  string
	}{
		{api.Reply{Done: true, Result: "no-update"}, "No update available."},
		{api.Reply{Done: true, Result: "no-update", Status: &api.Status{CurrentOperation: api.OpIdle}}, "No update available."},
		{api.Reply{Done: true, Result: "no-update", Status: &api.Status{LastError: "version 2.0.0: rolled back"}}, "No update applied: version 2.0.0: rolled back"},
		{api.Reply{Done: true, Result: "updated"}, "Update applied: reboot to use it."},
		{api.Reply{Done: true, Result: "updated", Status: &api.Status{LastError: "stale"}}, "Update applied: reboot to use it."},
		{api.Reply{Done: true, Result: "already-updated"}, "An update is already applied: reboot to use it."},
		{api.Reply{Done: true, Result: "something-new"}, ""},
	} {
		if got := updateMessage(c.reply); got != c.want {
			t.Errorf("%+v: %q, want %q", c.reply, got, c.want)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// A result that cannot be written to stdout fails the command, in either format.
func TestStdoutFailureFails(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "ue.sock"))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			bufio.NewReader(c).ReadString('\n')
			c.Write([]byte(`{"status":{"current_operation":"UPDATE_STATUS_IDLE"}}` + "\n"))
		}()
		var errb bytes.Buffer
		code := Run(context.Background(), []string{"-socket", ln.Addr().String(), "-status", "-format", format}, failingWriter{}, &errb)
		if code != 1 || !strings.Contains(errb.String(), "no space left on device") {
			t.Errorf("%s: exit %d, stderr %q", format, code, errb.String())
		}
	}
}
