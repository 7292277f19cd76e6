package locksmithcli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-os/cairn/update-engine/api"
)

func TestNodeName(t *testing.T) {
	for _, tc := range []struct {
		env, host string
		hostErr   error
		want, err string
	}{
		{env: "node-2", host: "ignored", want: "node-2"},
		{host: "Worker-7", want: "worker-7"},
		{env: " ", host: "h\n", want: "h"},
		{hostErr: errors.New("uname"), err: "NODE_NAME is not set"},
		{host: "", err: "host name is empty"},
	} {
		got, err := nodeName(func(k string) string {
			if k != "NODE_NAME" {
				t.Fatalf("getenv %s", k)
			}
			return tc.env
		}, func() (string, error) { return tc.host, tc.hostErr })
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("NODE_NAME=%q host %q (%v): %q, %v; want %q, %q", tc.env, tc.host, tc.hostErr, got, err, tc.want, tc.err)
		}
	}
}

// With REBOOT_STRATEGY=kubernetes and no kubeconfig locksmithd stops at start, naming the
// file and where to read how to make it.
func TestLocksmithdKubernetesNeedsKubeconfig(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "update.conf")
	missing := filepath.Join(dir, "locksmithd.conf")
	os.WriteFile(conf, []byte("REBOOT_STRATEGY=kubernetes\nLOCKSMITHD_KUBECONFIG="+missing+"\n"), 0o644)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code := RunDaemon(ctx, []string{"-config", conf, "-dbus", "off", "-socket", filepath.Join(dir, "none.sock")}, &out, &out)
	if code != 1 || !strings.Contains(out.String(), missing) || !strings.Contains(out.String(), "update-engine/README.md") {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
}

func TestEngineSlots(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "ue.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	want := &api.SlotList{Active: "A", Inactive: "B", Next: "B", Slots: []api.Slot{{Slot: "A", Version: "1.0.0", State: api.SlotGood, Active: true},
		{Slot: "B", Version: "2.0.0", State: api.SlotTrying, TriesLeft: 3, NextBoot: true}}}
	var reply atomic.Pointer[api.Reply]
	reply.Store(&api.Reply{Slots: want})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var call api.Call
			line, _ := bufio.NewReader(c).ReadBytes('\n')
			if json.Unmarshal(line, &call) == nil && call.Method == api.MethodSlots {
				json.NewEncoder(c).Encode(reply.Load())
			}
			c.Close()
		}
	}()
	ctx := context.Background()
	got, err := engineSlots(ctx, socket)
	if err != nil || got.Next != "B" || len(got.Slots) != 2 || got.Slots[1].Version != "2.0.0" {
		t.Fatalf("%+v %v", got, err)
	}
	reply.Store(&api.Reply{Error: "slots: no ESP"})
	if _, err := engineSlots(ctx, socket); err == nil || !strings.Contains(err.Error(), "no ESP") {
		t.Fatalf("error reply: %v", err)
	}
}
