package daemon_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/update-engine/api"
	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/omaha/omahatest"
	"github.com/cairn-os/cairn/update-engine/payload"
	"github.com/cairn-os/cairn/update-engine/slots"
	"github.com/cairn-os/cairn/update-engine/testdisk"
)

const appID = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}"

// binary returns a built command: $CAIRN_BIN/<name> or a fresh go build.
func binary(t *testing.T, name string) string {
	t.Helper()
	if dir := os.Getenv("CAIRN_BIN"); dir != "" {
		return filepath.Join(dir, name)
	}
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", out, "github.com/cairn-os/cairn/update-engine/cmd/"+name)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, b)
	}
	return out
}

type disk = testdisk.Disk

func newDisk(t *testing.T) *disk { return testdisk.New(t) }

func writeAt(t *testing.T, dev string, b []byte) {
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	f.Sync()
}

func hashDev(t *testing.T, dev string, n int64) [32]byte {
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, io.LimitReader(f, n))
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// world is one test machine: disk, config, Omaha server, keys, binaries.
type world struct {
	t                    *testing.T
	d                    *disk
	dir                  string
	priv                 ed25519.PrivateKey
	srv                  *omahatest.Server
	addr                 string
	mu                   sync.Mutex
	ranges               []string
	lie                  *omaha.UpdateResponse
	engineBin, clientBin string
	usrA                 []byte
	hashA                [32]byte
}

func newWorld(t *testing.T) *world {
	w := &world{t: t, d: newDisk(t), dir: t.TempDir()}
	w.engineBin, w.clientBin = binary(t, "update_engine"), binary(t, "update_engine_client")
	privPEM, pubPEM, _ := payload.GenerateKey()
	w.priv, _ = payload.ParsePrivateKey(privPEM)
	os.WriteFile(filepath.Join(w.dir, "key.pem"), pubPEM, 0o644)
	// Version 1.0.0 is installed in slot A and booted.
	w.usrA = bytes.Repeat([]byte("cairn 1.0.0 /usr "), 1<<16)
	writeAt(t, w.d.Part(3), w.usrA)
	w.hashA = hashDev(t, w.d.Part(3), disklayout.SlotA.Partition().Size)
	if err := w.d.ESP.Create(context.Background(), "EFI/Linux/cairn-1.0.0-A.efi", strings.NewReader("UKI 1.0.0")); err != nil {
		t.Fatal(err)
	}
	w.boot(disklayout.SlotA, "1.0.0")
	os.WriteFile(filepath.Join(w.dir, "machine-id"), []byte("0123456789abcdef0123456789abcdef\n"), 0o644)
	os.WriteFile(filepath.Join(w.dir, "boot-id"), []byte("11111111-2222-3333-4444-555555555555\n"), 0o644)

	w.srv = &omahatest.Server{Dir: filepath.Join(w.dir, "payloads"), AppID: appID}
	os.MkdirAll(filepath.Join(w.srv.Dir, "stable"), 0o755)
	inner := w.srv.Handler()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.addr = ln.Addr().String()
	hs := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		if rg := r.Header.Get("Range"); rg != "" {
			w.ranges = append(w.ranges, rg)
		}
		lie := w.lie
		w.mu.Unlock()
		if lie != nil && r.Method == http.MethodPost {
			// A server that offers what the engine must refuse on its own; events still
			// go to the real server, which records them.
			body, _ := io.ReadAll(r.Body)
			req, _ := omaha.ParseRequest(bytes.NewReader(body))
			if req != nil && len(req.Apps) > 0 && req.Apps[0].UpdateCheck != nil {
				resp := &omaha.Response{Protocol: omaha.Protocol, Apps: []*omaha.AppResponse{{ID: appID, Status: "ok", UpdateCheck: lie}}}
				b, _ := omaha.Marshal(resp)
				rw.Write(b)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		inner.ServeHTTP(rw, r)
	})}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	os.WriteFile(filepath.Join(w.dir, "update.conf"), []byte(fmt.Sprintf(
		"GROUP=stable\nSERVER=http://%s%s\nPUBLIC_KEYS=%s\nBOARD=amd64-usr\nAPP_ID=%s\nMACHINE_ALIAS=rack-4-node-2\n",
		w.addr, omahatest.UpdatePath, filepath.Join(w.dir, "key.pem"), appID)), 0o644)
	os.WriteFile(filepath.Join(w.dir, "oem-release"), []byte("ID=qemu\nVERSION_ID=0.3\nNAME=\"QEMU\"\n"), 0o644)
	return w
}

func (w *world) boot(slot disklayout.Slot, version string) {
	os.WriteFile(filepath.Join(w.dir, "cmdline"), []byte("console=ttyS0 mount.usr=PARTUUID="+strings.ToLower(slot.Partition().GUID)+" ro\n"), 0o644)
	os.WriteFile(filepath.Join(w.dir, "os-release"), []byte("ID=cairn\nVERSION_ID="+version+"\n"), 0o644)
}

func (w *world) slots() *slots.Slots {
	return &slots.Slots{ESP: w.d.ESP, Cmdline: filepath.Join(w.dir, "cmdline"), BootEnv: filepath.Join(w.dir, "no-boot.env"), PartitionPath: slots.DiskPartitions(w.d.Loop),
		EFIVars: filepath.Join(w.dir, "no-efivars")}
}

// usrImage is a /usr image of size bytes: random blocks, repeated, so that it compresses
// but still has to be written for real.
func usrImage(version string, size int) []byte {
	r := rand.New(rand.NewSource(int64(len(version)) + int64(version[0])))
	block := make([]byte, 1<<20)
	r.Read(block)
	copy(block, "cairn "+version)
	return bytes.Repeat(block, size>>20)
}

func (w *world) publish(version, board string, usr []byte, mutate func([]byte) []byte) string {
	var buf bytes.Buffer
	src := func(name string, b []byte) payload.Source {
		return payload.Source{Name: name, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
	}
	if _, err := payload.Build(&buf, payload.BuildOptions{Version: version, Board: board, USR: src("usr", usr),
		UKI: src("uki", []byte("UKI "+version)), TempDir: w.t.TempDir()}, w.priv); err != nil {
		w.t.Fatal(err)
	}
	b := buf.Bytes()
	if mutate != nil {
		b = mutate(b)
	}
	p := filepath.Join(w.srv.Dir, "stable", version+".cairn")
	os.WriteFile(p, b, 0o644)
	return p
}

func (w *world) unpublish() {
	files, _ := filepath.Glob(filepath.Join(w.srv.Dir, "stable", "*"))
	for _, f := range files {
		os.Remove(f)
	}
}

func (w *world) engineArgs(extra ...string) []string {
	return append([]string{"-config", filepath.Join(w.dir, "update.conf"), "-state-dir", filepath.Join(w.dir, "state"),
		"-socket", filepath.Join(w.dir, "ue.sock"), "-esp-image", w.d.Part(1), "-disk", w.d.Loop,
		"-cmdline", filepath.Join(w.dir, "cmdline"), "-boot-env", filepath.Join(w.dir, "no-boot.env"), "-os-release", filepath.Join(w.dir, "os-release"),
		"-machine-id", filepath.Join(w.dir, "machine-id"), "-boot-id", filepath.Join(w.dir, "boot-id"), "-oem-release", filepath.Join(w.dir, "oem-release"),
		"-efivars", filepath.Join(w.dir, "no-efivars"), "-dbus", "off", "-initial-check", "1h", "-interval", "1h",
		"-extensions", filepath.Join(w.dir, "extensions"), "-extension-store", filepath.Join(w.dir, "extension-store")}, extra...)
}

// startDaemon runs update_engine as a child process until the test ends or it is killed.
func (w *world) startDaemon() *exec.Cmd {
	cmd := exec.Command(w.engineBin, w.engineArgs()...)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if w.t.Failed() {
			w.t.Logf("update_engine log:\n%s", logs.String())
		}
	})
	sock := filepath.Join(w.dir, "ue.sock")
	for range 200 {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return cmd
		}
		time.Sleep(25 * time.Millisecond)
	}
	w.t.Fatalf("update_engine did not come up:\n%s", logs.String())
	return nil
}

func (w *world) client(args ...string) (string, error) {
	cmd := exec.Command(w.clientBin, append([]string{"-socket", filepath.Join(w.dir, "ue.sock")}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%v: %s", err, errb.String())
	}
	return out.String(), err
}

func (w *world) status() *slots.Status {
	st, err := w.slots().Status(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	return st
}

// assertSafe: slot A's bytes unchanged and still the next boot; slot B has no boot entry.
func (w *world) assertSafe() {
	w.t.Helper()
	if hashDev(w.t, w.d.Part(3), disklayout.SlotA.Partition().Size) != w.hashA {
		w.t.Fatal("the active slot's partition changed")
	}
	st := w.status()
	if st.Next != disklayout.SlotA || st.Slot(disklayout.SlotA).State != slots.StateGood {
		w.t.Fatalf("slot A is no longer the good next boot: %+v", st)
	}
	if b := st.Slot(disklayout.SlotB); b.State != slots.StateEmpty {
		w.t.Fatalf("slot B is bootable: %+v", b)
	}
	names, _ := w.d.ESP.List(context.Background(), slots.EntryDir)
	for _, n := range names {
		if strings.Contains(n, "-B") {
			w.t.Fatalf("slot B file %s left on the ESP", n)
		}
	}
}

func (w *world) events() []omahatest.Event { return w.srv.Events() }

// watchUntil kills cmd when a status matches.
func (w *world) killWhen(cmd *exec.Cmd, match func(api.Status) bool) api.Status {
	var seen api.Status
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	api.Dial(ctx, filepath.Join(w.dir, "ue.sock"), api.Call{Method: api.MethodWatch}, func(r api.Reply) bool {
		if r.Status != nil && match(*r.Status) {
			seen = *r.Status
			cmd.Process.Signal(syscall.SIGKILL)
			return false
		}
		return true
	})
	cmd.Wait()
	if seen.CurrentOperation == "" {
		w.t.Fatal("the awaited state never came")
	}
	return seen
}

func TestRootFullCycleAndReboot(t *testing.T) {
	w := newWorld(t)
	usr := usrImage("2.0.0", 64<<20)
	w.publish("2.0.0", "amd64-usr", usr, nil)
	w.startDaemon()
	out, err := w.client("-update")
	if err != nil || !strings.Contains(out, "reboot") {
		t.Fatalf("update_engine_client -update: %v %s", err, out)
	}
	out, _ = w.client("-status")
	for _, want := range []string{"CURRENT_OP=UPDATE_STATUS_UPDATED_NEED_REBOOT", "NEW_VERSION=2.0.0", "PROGRESS=1.000000"} {
		if !strings.Contains(out, want) {
			t.Errorf("-status lacks %s:\n%s", want, out)
		}
	}
	out, _ = w.client("-slots", "-format=json")
	var st slots.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Next != disklayout.SlotB || st.Slot(disklayout.SlotB).TriesLeft != 3 {
		t.Fatalf("-slots: %v %s", err, out)
	}
	if hashDev(t, w.d.Part(4), int64(len(usr))) != sha256.Sum256(usr) {
		t.Fatal("USR-B does not hold the new image")
	}
	if hashDev(t, w.d.Part(3), disklayout.SlotA.Partition().Size) != w.hashA {
		t.Fatal("USR-A changed")
	}
	rc, err := w.d.ESP.Open(context.Background(), "EFI/Linux/cairn-2.0.0-B+3.efi")
	if err != nil {
		t.Fatal(err)
	}
	uki, _ := io.ReadAll(rc)
	rc.Close()
	if string(uki) != "UKI 2.0.0" {
		t.Fatalf("UKI on the ESP: %q", uki)
	}
	var kinds []string
	for _, e := range w.events() {
		kinds = append(kinds, fmt.Sprintf("%d/%d", e.Type, e.Result))
	}
	if got := strings.Join(kinds, " "); got != "13/1 14/1 800/1" {
		t.Fatalf("events %s, want 13/1 14/1 800/1", got)
	}
	if e := w.events()[0]; e.MachineAlias != "rack-4-node-2" || e.OEM != "qemu" || e.OEMVersion != "0.3" || e.AlephVersion != "1.0.0" {
		t.Fatalf("machine attributes in %+v", e)
	}

	// Reboot: the loader counts a try on B, and the new version runs on trial: it reports
	// nothing and checks for nothing until it is blessed good.
	if err := w.slots().CountBootAttempt(context.Background(), disklayout.SlotB); err != nil {
		t.Fatal(err)
	}
	w.boot(disklayout.SlotB, "2.0.0")
	w.unpublish()
	before := len(w.events())
	trial, err := exec.Command(w.engineBin, w.engineArgs("-once")...).CombinedOutput()
	if err == nil || !strings.Contains(string(trial), "on trial") || len(w.events()) != before {
		t.Fatalf("update_engine -once on trial: %v, events %+v\n%s", err, w.events()[before:], trial)
	}
	// systemd-bless-boot marks it good after boot-complete.target: the update is complete.
	if err := w.slots().MarkGood(context.Background(), disklayout.SlotB); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(w.engineBin, w.engineArgs("-once")...).CombinedOutput(); err != nil {
		t.Fatalf("update_engine -once after the bless: %v\n%s", err, out)
	}
	evs := w.events()
	last := evs[len(evs)-1]
	if last.Type != omaha.EventTypeUpdateComplete || last.Result != omaha.EventResultSuccessReboot || last.PreviousVersion != "1.0.0" || last.Version != "2.0.0" ||
		last.AlephVersion != "1.0.0" {
		t.Fatalf("after reboot: %+v", last)
	}
}

func TestRootBadPayloads(t *testing.T) {
	w := newWorld(t)
	usr := usrImage("2.0.0", 4<<20)
	flipPart := func(b []byte) []byte { b[len(b)-40] ^= 0xff; return b }
	otherPEM, _, _ := payload.GenerateKey()
	otherKey, _ := payload.ParsePrivateKey(otherPEM)
	cases := []struct {
		name    string
		publish func()
		code    omaha.ErrorCode
	}{
		{"bad signature", func() {
			k := w.priv
			w.priv = otherKey
			w.publish("2.0.0", "amd64-usr", usr, nil)
			w.priv = k
		}, omaha.ErrorCodePayloadPubKeyVerify},
		{"hash mismatch", func() { w.publish("2.0.0", "amd64-usr", usr, flipPart) }, omaha.ErrorCodePayloadHashMismatch},
		{"truncated", func() {
			w.publish("2.0.0", "amd64-usr", usr, func(b []byte) []byte { return b[:len(b)-1000] })
		}, omaha.ErrorCodePayloadSizeMismatch},
		{"wrong board", func() { w.publish("2.0.0", "arm64-usr", usr, nil) }, omaha.ErrorCodeWrongBoard},
		{"not newer", func() {
			p := w.publish("0.9.0", "amd64-usr", usr, nil)
			b, _ := os.ReadFile(p)
			sum := sha256.Sum256(b)
			w.mu.Lock()
			w.lie = &omaha.UpdateResponse{Status: "ok", URLs: &omaha.URLs{URLs: []omaha.URL{{CodeBase: "http://" + w.addr + "/payloads/stable/"}}},
				Manifest: &omaha.Manifest{Version: "0.9.0", Packages: []omaha.Package{{Name: "0.9.0.cairn", Size: int64(len(b)), SHA256: fmt.Sprintf("%x", sum)}}}}
			w.mu.Unlock()
		}, omaha.ErrorCodeNotNewer},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w.t = t
			w.unpublish()
			w.mu.Lock()
			w.lie = nil
			w.mu.Unlock()
			c.publish()
			before := len(w.events())
			out, err := exec.Command(w.engineBin, w.engineArgs("-once")...).CombinedOutput()
			if err == nil {
				t.Fatalf("bad payload applied:\n%s", out)
			}
			w.assertSafe()
			evs := w.events()[before:]
			if len(evs) == 0 || evs[len(evs)-1].ErrorCode != c.code || evs[len(evs)-1].Result != omaha.EventResultError {
				t.Fatalf("events %+v, want error code %d\n%s", evs, c.code, out)
			}
		})
	}
}

func TestRootKillDuringDownloadAndWrite(t *testing.T) {
	w := newWorld(t)
	usr := usrImage("2.0.0", 256<<20)
	p := w.publish("2.0.0", "amd64-usr", usr, nil)
	st, _ := os.Stat(p)
	// Slow enough to be caught half-way: the download takes ~4 s.
	w.srv.Rate = st.Size() / 4

	cmd := w.startDaemon()
	go w.client("-update")
	seen := w.killWhen(cmd, func(s api.Status) bool { return s.Step == "download" && s.Progress > 0.25 })
	t.Logf("killed at %s %.0f%%", seen.Step, 100*seen.Progress)
	w.assertSafe()
	partial, err := os.Stat(filepath.Join(w.dir, "state", "payload.partial"))
	if err != nil || partial.Size() == 0 {
		t.Fatalf("no partial download kept: %v", err)
	}

	// Restart at full speed and kill it again while it writes /usr.
	w.srv.Rate = 0
	cmd = w.startDaemon()
	go w.client("-update")
	seen = w.killWhen(cmd, func(s api.Status) bool { return s.Step == "write-usr" && s.Progress > 0.2 })
	t.Logf("killed at %s %.0f%%", seen.Step, 100*seen.Progress)
	w.assertSafe()
	// USR-B really was half-written when the engine died: its start is the new image.
	if hashDev(t, w.d.Part(4), 1<<20) != sha256.Sum256(usr[:1<<20]) {
		t.Fatal("USR-B was not being written when the engine was killed")
	}
	w.mu.Lock()
	ranges := append([]string(nil), w.ranges...)
	w.mu.Unlock()
	if len(ranges) != 1 || !strings.HasPrefix(ranges[0], fmt.Sprintf("bytes=%d-", partial.Size())) {
		t.Fatalf("download not resumed from %d: ranges %v", partial.Size(), ranges)
	}

	// The restarted engine tells the server that the attempt it saw start was interrupted.
	interrupted := false
	for _, e := range w.events() {
		interrupted = interrupted || (e.Result == omaha.EventResultError && e.ErrorCode == omaha.ErrorCodeInterrupted)
	}
	if !interrupted {
		t.Fatalf("no interrupted attempt reported: %+v", w.events())
	}

	// A clean retry goes through.
	w.startDaemon()
	if out, err := w.client("-update"); err != nil || !strings.Contains(out, "reboot") {
		t.Fatalf("retry: %v %s", err, out)
	}
	if hashDev(t, w.d.Part(4), int64(len(usr))) != sha256.Sum256(usr) {
		t.Fatal("USR-B does not hold the new image after the retry")
	}
	if s := w.status(); s.Next != disklayout.SlotB || s.Slot(disklayout.SlotB).State != slots.StateTrying {
		t.Fatalf("after retry: %+v", s)
	}
}

// The new version never boots to good: the loader spends its tries, falls back to slot A, and
// the engine on A reports the rollback.
func TestRootRollbackReported(t *testing.T) {
	w := newWorld(t)
	w.publish("2.0.0", "amd64-usr", usrImage("2.0.0", 8<<20), nil)
	if out, err := exec.Command(w.engineBin, w.engineArgs("-once")...).CombinedOutput(); err != nil {
		t.Fatalf("update: %v\n%s", err, out)
	}
	ctx := context.Background()
	for range 3 { // three boots of B that never reach boot-complete.target
		if err := w.slots().CountBootAttempt(ctx, disklayout.SlotB); err != nil {
			t.Fatal(err)
		}
	}
	st := w.status()
	if st.Next != disklayout.SlotA || st.Slot(disklayout.SlotB).State != slots.StateBad {
		t.Fatalf("after three failed boots: %+v", st)
	}
	// Back on the old slot, with the server still offering 2.0.0 (as Nebraska does; -once is
	// an on-demand check, which the console too answers after a rollback): the rollback is
	// reported, and 2.0.0 is not installed again.
	out, err := exec.Command(w.engineBin, w.engineArgs("-once")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "rolled back from it") || !strings.Contains(string(out), "no update") {
		t.Fatalf("update_engine -once on the old slot, 2.0.0 still offered: %v\n%s", err, out)
	}
	evs := w.events()
	var rollback, declined *omahatest.Event
	for i := range evs {
		if evs[i].Type == omaha.EventTypeUpdateComplete && evs[i].Result == omaha.EventResultError {
			switch evs[i].ErrorCode {
			case omaha.ErrorCodeRollback:
				rollback = &evs[i]
			case omaha.ErrorCodeUpdateIgnoredPerPolicy:
				declined = &evs[i]
			}
		}
		if evs[i].Type == omaha.EventTypeUpdateDownloadStarted && rollback != nil {
			t.Fatalf("the rolled-back version was downloaded again: %+v", evs[i:])
		}
	}
	if rollback == nil || rollback.PreviousVersion != "2.0.0" || rollback.Version != "1.0.0" {
		t.Fatalf("rollback event %+v in %+v", rollback, evs)
	}
	// The offer is declined in so many words, so that the server does not hold it in progress.
	if declined == nil || declined.Version != "1.0.0" {
		t.Fatalf("no event declining 2.0.0 in %+v", evs)
	}
	if st := w.status(); st.Next != disklayout.SlotA || st.Slot(disklayout.SlotB).State != slots.StateBad {
		t.Fatalf("after the refusal: %+v", st)
	}
	if hashDev(t, w.d.Part(3), disklayout.SlotA.Partition().Size) != w.hashA {
		t.Fatal("USR-A changed")
	}
	// An operator can retry it.
	if out, err := exec.Command(w.engineBin, w.engineArgs("-once", "-force")...).CombinedOutput(); err != nil || !strings.Contains(string(out), "updated: reboot") {
		t.Fatalf("update_engine -once -force: %v\n%s", err, out)
	}
	if st := w.status(); st.Next != disklayout.SlotB || st.Slot(disklayout.SlotB).State != slots.StateTrying {
		t.Fatalf("after the forced retry: %+v", st)
	}
}
