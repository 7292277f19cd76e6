package apply

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/payload"
	"github.com/cairn-os/cairn/update-engine/slots"
)

type fixture struct {
	t       *testing.T
	dir     string
	priv    ed25519.PrivateKey
	keys    []ed25519.PublicKey
	usr     []byte
	uki     []byte
	parts   map[disklayout.Slot]string
	esp     slots.DirESP
	slots   *slots.Slots
	srv     *httptest.Server
	mu      sync.Mutex
	files   map[string][]byte
	ranges  []string
	applier *Applier
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, dir: t.TempDir(), files: map[string][]byte{}}
	privPEM, pubPEM, _ := payload.GenerateKey()
	f.priv, _ = payload.ParsePrivateKey(privPEM)
	f.keys, _ = payload.ParsePublicKeys(pubPEM)
	rnd := rand.New(rand.NewSource(2))
	f.usr = make([]byte, 3<<20)
	rnd.Read(f.usr[:1<<20])
	f.uki = []byte(strings.Repeat("UKI ", 5000))
	f.parts = map[disklayout.Slot]string{}
	for _, s := range []disklayout.Slot{disklayout.SlotA, disklayout.SlotB} {
		p := filepath.Join(f.dir, "usr-"+string(s))
		os.WriteFile(p, bytes.Repeat([]byte(s), 4<<20), 0o644) // old content, 4 MiB "partition"
		f.parts[s] = p
	}
	f.esp = slots.DirESP{Root: filepath.Join(f.dir, "esp")}
	f.esp.Create(context.Background(), "EFI/Linux/"+slots.EntryName("1.0.0", disklayout.SlotA, -1), strings.NewReader("uki A"))
	cmdline := filepath.Join(f.dir, "cmdline")
	os.WriteFile(cmdline, []byte("mount.usr=PARTUUID="+disklayout.GUIDUSRA), 0o644)
	f.slots = &slots.Slots{ESP: f.esp, Cmdline: cmdline, BootEnv: filepath.Join(f.dir, "no-boot.env"), EFIVars: filepath.Join(f.dir, "none"),
		PartitionPath: func(s disklayout.Slot) (string, error) { return f.parts[s], nil }}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		b, ok := f.files[r.URL.Path]
		if rg := r.Header.Get("Range"); rg != "" {
			f.ranges = append(f.ranges, rg)
		}
		f.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "p", timeZero, bytes.NewReader(b))
	}))
	t.Cleanup(f.srv.Close)
	f.applier = &Applier{Slots: f.slots, HTTP: f.srv.Client(), StateDir: filepath.Join(f.dir, "state"), Keys: f.keys,
		Board: "amd64-usr", CurrentVersion: "1.0.0"}
	return f
}

var timeZero time.Time

func (f *fixture) build(version, board, minSrc string, key ed25519.PrivateKey, exts ...payload.Extension) []byte {
	var buf bytes.Buffer
	src := func(name string, b []byte) payload.Source {
		return payload.Source{Name: name, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
	}
	if _, err := payload.Build(&buf, payload.BuildOptions{Version: version, Board: board, MinSourceVersion: minSrc,
		USR: src("usr", f.usr), UKI: src("uki", f.uki), TempDir: f.t.TempDir(), Extensions: exts}, key); err != nil {
		f.t.Fatal(err)
	}
	return buf.Bytes()
}

// serve publishes b and returns the request an Omaha answer would produce for it.
func (f *fixture) serve(name, version string, b []byte) Request {
	f.mu.Lock()
	f.files["/"+name] = b
	f.mu.Unlock()
	sum := sha256.Sum256(b)
	return Request{URL: f.srv.URL + "/" + name, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:]), Version: version}
}

func (f *fixture) assertBUntouched() {
	f.t.Helper()
	b, _ := os.ReadFile(f.parts[disklayout.SlotB])
	if !bytes.Equal(b, bytes.Repeat([]byte("B"), 4<<20)) {
		f.t.Fatal("slot B partition was written")
	}
	f.assertSafe()
}

// assertSafe: slot A as it was, slot B not bootable.
func (f *fixture) assertSafe() {
	f.t.Helper()
	a, _ := os.ReadFile(f.parts[disklayout.SlotA])
	if !bytes.Equal(a, bytes.Repeat([]byte("A"), 4<<20)) {
		f.t.Fatal("active slot A partition changed")
	}
	st, err := f.slots.Status(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	if st.Slot(disklayout.SlotA).State != slots.StateGood || st.Next != disklayout.SlotA {
		f.t.Fatalf("slot A no longer the good next boot: %+v", st)
	}
	if b := st.Slot(disklayout.SlotB); b.State != slots.StateEmpty && b.State != slots.StateBad {
		f.t.Fatalf("slot B bootable after a failed update: %+v", b)
	}
}

func TestApplyFullCycle(t *testing.T) {
	f := newFixture(t)
	var steps []string
	phases := map[string]Phase{}
	for _, st := range Steps() {
		phases[st.Name] = st.Phase
	}
	onProgress := func(p Progress) {
		if len(steps) == 0 || steps[len(steps)-1] != p.Step {
			steps = append(steps, p.Step)
		}
		if p.Phase != phases[p.Step] {
			t.Errorf("progress %+v: phase %v, the step declares %v", p, p.Phase, phases[p.Step])
		}
	}
	req := f.serve("2.0.0.cairn", "2.0.0", f.build("2.0.0", "amd64-usr", "0.1", f.priv))
	res, err := f.applier.Apply(context.Background(), req, Options{OnProgress: onProgress})
	if err != nil {
		t.Fatal(err)
	}
	if res.Slot != disklayout.SlotB || res.Version != "2.0.0" || res.PreviousVersion != "1.0.0" {
		t.Fatalf("result %+v", res)
	}
	want := "download verify-payload invalidate-inactive write-usr verify-usr write-uki stage-extensions record set-next-boot cleanup"
	if got := strings.Join(steps, " "); got != want {
		t.Fatalf("steps %s\nwant  %s", got, want)
	}
	b, _ := os.ReadFile(f.parts[disklayout.SlotB])
	if !bytes.Equal(b[:len(f.usr)], f.usr) {
		t.Fatal("slot B does not hold the new /usr image")
	}
	st, _ := f.slots.Status(context.Background())
	if bs := st.Slot(disklayout.SlotB); st.Next != disklayout.SlotB || bs.State != slots.StateTrying || bs.TriesLeft != 3 || bs.Entry != "cairn-2.0.0-B+3.efi" {
		t.Fatalf("status %+v", st)
	}
	uki, _ := os.ReadFile(filepath.Join(f.esp.Root, "EFI/Linux/cairn-2.0.0-B+3.efi"))
	if !bytes.Equal(uki, f.uki) {
		t.Fatal("UKI on the ESP differs")
	}
	p, err := ReadPending(f.applier.StateDir)
	if err != nil || p == nil || p.NewVersion != "2.0.0" || p.PreviousVersion != "1.0.0" || p.NewSlot != disklayout.SlotB {
		t.Fatalf("pending %+v %v", p, err)
	}
	if _, err := os.Stat(filepath.Join(f.applier.StateDir, payloadFile)); !os.IsNotExist(err) {
		t.Fatal("payload not cleaned up")
	}
}

func TestApplyRefusals(t *testing.T) {
	otherPrivPEM, _, _ := payload.GenerateKey()
	otherPriv, _ := payload.ParsePrivateKey(otherPrivPEM)
	cases := []struct {
		name  string
		setup func(f *fixture) Request
		force bool
		want  error
		code  omaha.ErrorCode
	}{
		{"bad signature", func(f *fixture) Request {
			return f.serve("p", "2.0.0", f.build("2.0.0", "amd64-usr", "", otherPriv))
		}, false, payload.ErrSignature, omaha.ErrorCodePayloadPubKeyVerify},
		{"server hash mismatch", func(f *fixture) Request {
			r := f.serve("p", "2.0.0", f.build("2.0.0", "amd64-usr", "", f.priv))
			r.SHA256 = strings.Repeat("0", 64)
			return r
		}, false, payload.ErrHashMismatch, omaha.ErrorCodePayloadHashMismatch},
		{"content altered and announced", func(f *fixture) Request {
			b := f.build("2.0.0", "amd64-usr", "", f.priv)
			b[len(b)-len(f.uki)/100-50] ^= 0xff
			return f.serve("p", "2.0.0", b)
		}, false, payload.ErrHashMismatch, omaha.ErrorCodePayloadHashMismatch},
		{"truncated payload", func(f *fixture) Request {
			b := f.build("2.0.0", "amd64-usr", "", f.priv)
			return f.serve("p", "2.0.0", b[:len(b)-100])
		}, false, payload.ErrTruncated, omaha.ErrorCodePayloadSizeMismatch},
		{"short download", func(f *fixture) Request {
			b := f.build("2.0.0", "amd64-usr", "", f.priv)
			r := f.serve("p", "2.0.0", b[:len(b)-100])
			r.Size += 100
			return r
		}, false, payload.ErrTruncated, omaha.ErrorCodePayloadSizeMismatch},
		{"same version", func(f *fixture) Request {
			return f.serve("p", "1.0.0", f.build("1.0.0", "amd64-usr", "", f.priv))
		}, false, ErrNotNewer, omaha.ErrorCodeNotNewer},
		{"downgrade", func(f *fixture) Request {
			return f.serve("p", "0.9.0", f.build("0.9.0", "amd64-usr", "", f.priv))
		}, false, ErrNotNewer, omaha.ErrorCodeNotNewer},
		{"wrong board", func(f *fixture) Request {
			return f.serve("p", "2.0.0", f.build("2.0.0", "arm64-usr", "", f.priv))
		}, false, ErrWrongBoard, omaha.ErrorCodeWrongBoard},
		{"too old to update from", func(f *fixture) Request {
			return f.serve("p", "2.0.0", f.build("2.0.0", "amd64-usr", "1.5.0", f.priv))
		}, false, ErrTooOld, omaha.ErrorCodeNotNewer},
		{"server lies about version", func(f *fixture) Request {
			return f.serve("p", "3.0.0", f.build("2.0.0", "amd64-usr", "", f.priv))
		}, false, ErrMismatch, omaha.ErrorCodeOmahaResponseInvalid},
		{"bad signature even forced", func(f *fixture) Request {
			return f.serve("p", "0.9.0", f.build("0.9.0", "amd64-usr", "", otherPriv))
		}, true, payload.ErrSignature, omaha.ErrorCodePayloadPubKeyVerify},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			_, err := f.applier.Apply(context.Background(), c.setup(f), Options{Force: c.force})
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			var se *StepError
			if !errors.As(err, &se) || se.Code != c.code {
				t.Fatalf("error %v: code %v, want %d", err, se, c.code)
			}
			f.assertBUntouched()
		})
	}
}

func TestForcedDowngrade(t *testing.T) {
	f := newFixture(t)
	_, err := f.applier.Apply(context.Background(), f.serve("p", "0.9.0", f.build("0.9.0", "amd64-usr", "", f.priv)), Options{Force: true})
	var se *StepError
	if !errors.As(err, &se) || se.Step != "set-next-boot" {
		// 0.9.0 sorts after the running 1.0.0: without efivarfs it cannot be pinned.
		t.Fatalf("forced downgrade without a way to boot it: %v", err)
	}
	f.assertSafe()
	f.applier.Slots.EFIVars = t.TempDir()
	if _, err := f.applier.Apply(context.Background(), f.serve("p", "0.9.0", f.build("0.9.0", "amd64-usr", "", f.priv)), Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(f.applier.Slots.EFIVars, "LoaderEntryOneShot-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f")); err != nil {
		t.Fatal("no one-shot boot pinned for the downgrade")
	}
}

func TestResumedDownload(t *testing.T) {
	f := newFixture(t)
	b := f.build("2.0.0", "amd64-usr", "", f.priv)
	req := f.serve("p", "2.0.0", b)
	// A previous run was killed half-way through the download.
	os.MkdirAll(f.applier.StateDir, 0o700)
	id, _ := json.Marshal(req)
	os.WriteFile(filepath.Join(f.applier.StateDir, identityFile), id, 0o600)
	os.WriteFile(filepath.Join(f.applier.StateDir, partialFile), b[:len(b)/2], 0o600)
	if _, err := f.applier.Apply(context.Background(), req, Options{}); err != nil {
		t.Fatal(err)
	}
	if len(f.ranges) != 1 || f.ranges[0] != "bytes="+strconv.Itoa(len(b)/2)+"-" {
		t.Fatalf("range requests %v", f.ranges)
	}
	// A partial file of another payload is not resumed.
	f2 := newFixture(t)
	req2 := f2.serve("p", "2.0.0", f2.build("2.0.0", "amd64-usr", "", f2.priv))
	os.MkdirAll(f2.applier.StateDir, 0o700)
	os.WriteFile(filepath.Join(f2.applier.StateDir, identityFile), id, 0o600)
	os.WriteFile(filepath.Join(f2.applier.StateDir, partialFile), []byte("garbage"), 0o600)
	if _, err := f2.applier.Apply(context.Background(), req2, Options{}); err != nil {
		t.Fatal(err)
	}
	if len(f2.ranges) != 0 {
		t.Fatalf("resumed another payload's download: %v", f2.ranges)
	}
}

func TestCancelledWriteLeavesSlotUnbootable(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancelAtWrite := func(p Progress) {
		if p.Step == "write-usr" {
			cancel()
		}
	}
	_, err := f.applier.Apply(ctx, f.serve("p", "2.0.0", f.build("2.0.0", "amd64-usr", "", f.priv)), Options{OnProgress: cancelAtWrite})
	if err == nil {
		t.Fatal("cancelled apply succeeded")
	}
	f.assertSafe()
	if _, err := f.applier.Apply(context.Background(), f.serve("p", "2.0.0", f.build("2.0.0", "amd64-usr", "", f.priv)), Options{}); err != nil {
		t.Fatalf("retry: %v", err)
	}
}

func TestStalledDownloadEnds(t *testing.T) {
	f := newFixture(t)
	b := f.build("2.0.0", "amd64-usr", "", f.priv)
	sum := sha256.Sum256(b)
	stalled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b[:1000])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer stalled.Close()
	old := StallTimeout
	StallTimeout = 300 * time.Millisecond
	defer func() { StallTimeout = old }()
	_, err := f.applier.Apply(context.Background(), Request{URL: stalled.URL + "/p", Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:]), Version: "2.0.0"}, Options{})
	if err == nil || !strings.Contains(err.Error(), "no data for") {
		t.Fatalf("stalled download: %v", err)
	}
	f.assertBUntouched()
	// A server announcing an absurd size is refused before anything is fetched.
	_, err = f.applier.Apply(context.Background(), Request{URL: stalled.URL + "/p", Size: MaxPayloadSize + 1, SHA256: hex.EncodeToString(sum[:]), Version: "2.0.0"}, Options{})
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("huge size: %v", err)
	}
}

// A payload signed with a wrong /usr hash (a signer's mistake: the compressed bytes match
// their signed hash, the image they decode to does not match its own) is written, then
// refused by the read-back before the slot could boot.
func TestSignedWrongUSRHash(t *testing.T) {
	f := newFixture(t)
	b := f.build("2.0.0", "amd64-usr", "", f.priv)
	h, err := payload.ReadHeader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	usr, _ := h.Manifest.Part(payload.PartUSR)
	raw := h.RawManifest()
	wrong := bytes.Replace(raw, []byte(`"sha256":"`+usr.SHA256+`"`), []byte(`"sha256":"`+strings.Repeat("0", 64)+`"`), 1)
	if bytes.Equal(wrong, raw) {
		t.Fatal("the manifest does not name the /usr hash as expected")
	}
	const prefix = 14 // magic, manifest length, signature length
	copy(b[prefix:], wrong)
	copy(b[prefix+len(wrong):], ed25519.Sign(f.priv, b[:prefix+len(wrong)]))
	_, err = f.applier.Apply(context.Background(), f.serve("p", "2.0.0", b), Options{})
	var se *StepError
	if !errors.Is(err, payload.ErrHashMismatch) || !errors.As(err, &se) || se.Step != "verify-usr" || se.Code != omaha.ErrorCodeNewRootfsVerification {
		t.Fatalf("error %v, want a hash mismatch in verify-usr", err)
	}
	f.assertSafe()
}

// The download is hashed as it arrives, a resumed one from its first byte: a partial file
// that is not the payload's beginning fails the server's hash, and the next run starts over.
func TestResumedDownloadOfBadPrefix(t *testing.T) {
	f := newFixture(t)
	b := f.build("2.0.0", "amd64-usr", "", f.priv)
	req := f.serve("p", "2.0.0", b)
	os.MkdirAll(f.applier.StateDir, 0o700)
	id, _ := json.Marshal(req)
	os.WriteFile(filepath.Join(f.applier.StateDir, identityFile), id, 0o600)
	bad := append([]byte(nil), b[:len(b)/2]...)
	bad[len(bad)/2] ^= 1
	os.WriteFile(filepath.Join(f.applier.StateDir, partialFile), bad, 0o600)
	_, err := f.applier.Apply(context.Background(), req, Options{})
	var se *StepError
	if !errors.Is(err, payload.ErrHashMismatch) || !errors.As(err, &se) || se.Step != "download" || se.Code != omaha.ErrorCodePayloadHashMismatch {
		t.Fatalf("error %v, want the server's hash to fail in download", err)
	}
	f.assertBUntouched()
	if _, err := f.applier.Apply(context.Background(), req, Options{}); err != nil {
		t.Fatalf("the next run: %v", err)
	}
}

// Each step's phase is what the engine reports while it runs: downloading, then verifying
// before anything touches a slot, then finalizing.
func TestStepPhases(t *testing.T) {
	want := []struct {
		step  string
		phase Phase
	}{
		{"download", PhaseDownload},
		{"verify-payload", PhaseVerify},
		{"invalidate-inactive", PhaseFinalize},
		{"write-usr", PhaseFinalize},
		{"verify-usr", PhaseFinalize},
		{"write-uki", PhaseFinalize},
		{"stage-extensions", PhaseFinalize},
		{"record", PhaseFinalize},
		{"set-next-boot", PhaseFinalize},
		{"cleanup", PhaseFinalize},
	}
	steps := Steps()
	if len(steps) != len(want) {
		t.Fatalf("%d steps, want %d", len(steps), len(want))
	}
	for i, w := range want {
		if steps[i].Name != w.step || steps[i].Phase != w.phase {
			t.Errorf("step %d: %s in phase %v, want %s in %v", i, steps[i].Name, steps[i].Phase, w.step, w.phase)
		}
	}
	for p, s := range map[Phase]string{PhaseDownload: "download", PhaseVerify: "verify", PhaseFinalize: "finalize", 0: "Phase(0)"} {
		if p.String() != s {
			t.Errorf("Phase(%d).String() = %q, want %q", int(p), p.String(), s)
		}
	}
}
