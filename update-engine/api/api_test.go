package api

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"testing"
)

func TestResultString(t *testing.T) {
	for _, c := range []struct {
		r    Result
		want string
	}{
		{ResultNoUpdate, "no-update"},
		{ResultUpdated, "updated"},
		{ResultAlreadyUpdated, "already-updated"},
		{Result(7), "Result(7)"},
	} {
		if got := c.r.String(); got != c.want {
			t.Errorf("Result(%d).String() = %q, want %q", int(c.r), got, c.want)
		}
	}
}

// serve answers one connection on a fresh socket with lines, after checking the call.
func serve(t *testing.T, want Call, lines ...string) string {
	sock := filepath.Join(t.TempDir(), "ue.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadBytes('\n')
		var got Call
		if err := json.Unmarshal(line, &got); err != nil || got != want {
			t.Errorf("call %q, want %+v", line, want)
			return
		}
		for _, l := range lines {
			c.Write([]byte(l + "\n"))
		}
	}()
	return sock
}

func TestDial(t *testing.T) {
	ctx := context.Background()
	call := Call{Method: MethodUpdate, Force: true}
	sock := serve(t, call,
		`{"status":{"current_operation":"UPDATE_STATUS_DOWNLOADING","progress":0.5}}`,
		`{"done":true,"result":"updated","status":{"current_operation":"UPDATE_STATUS_UPDATED_NEED_REBOOT"}}`)
	var got []Reply
	if err := Dial(ctx, sock, call, func(r Reply) bool { got = append(got, r); return !r.Done }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Status.CurrentOperation != OpDownloading || got[0].Status.Progress != 0.5 ||
		!got[1].Done || got[1].Result != ResultUpdated.String() || got[1].Status.CurrentOperation != OpNeedReboot {
		t.Fatalf("replies %+v", got)
	}

	// An error before the end is the call's error; a final reply's error is the caller's.
	sock = serve(t, Call{Method: "Nope"}, `{"error":"unknown method \"Nope\""}`)
	if err := Dial(ctx, sock, Call{Method: "Nope"}, func(Reply) bool { return true }); err == nil || err.Error() != `unknown method "Nope"` {
		t.Fatalf("error reply: %v", err)
	}
	sock = serve(t, Call{Method: MethodUpdate}, `{"done":true,"result":"no-update","error":"bad signature"}`)
	var last Reply
	if err := Dial(ctx, sock, Call{Method: MethodUpdate}, func(r Reply) bool { last = r; return true }); err != nil || last.Error != "bad signature" {
		t.Fatalf("final error reply: %v %+v", err, last)
	}

	if err := Dial(ctx, filepath.Join(t.TempDir(), "none.sock"), Call{Method: MethodGetStatus}, func(Reply) bool { return false }); err == nil {
		t.Fatal("no daemon: no error")
	}
}
