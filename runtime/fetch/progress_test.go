package fetch

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/fetch/insecure"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/fixture/fixturetest"
)

func TestProgressOnlyWhenAsked(t *testing.T) {
	pub := fixturetest.NewKey(t, "publisher", fixture.KeyOptions{})
	a := newACI(t, "example.com/app", pub)
	for _, show := range []bool{false, true} {
		h := newHarness(t)
		h.trustKey("example.com", pub)
		serve(h, "/app.aci", a)
		f := h.fetcher(insecure.None, PullUpdate)
		var buf bytes.Buffer
		if show {
			f.Progress = &buf
		}
		if _, err := f.Fetch(context.Background(), Request{Image: "https://example.com/app.aci"}); err != nil {
			t.Fatal(err)
		}
		got := buf.String()
		if show && (!strings.Contains(got, "Downloading ACI: [==============================] ") || !strings.HasSuffix(got, "\n")) {
			t.Fatalf("progress %q", got)
		}
		if !show && got != "" {
			t.Fatalf("quiet fetch wrote %q", got)
		}
	}
}

func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	p := newProgressBar(&buf, "x", 4<<20)
	p.Write(make([]byte, 1<<20))
	p.last = p.last.AddDate(-1, 0, 0) // let the next write draw
	p.Write(make([]byte, 1<<20))
	p.finish()
	if !strings.Contains(buf.String(), "x: [===============>              ] 2.0 MiB / 4.0 MiB\n") {
		t.Fatalf("bar %q", buf.String())
	}
	buf.Reset()
	q := newProgressBar(&buf, "y", -1)
	q.Write(make([]byte, 3000))
	q.finish()
	if !strings.HasSuffix(buf.String(), "y: 2.9 KiB\n") {
		t.Fatalf("unknown size %q", buf.String())
	}
}

func TestIsTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if IsTerminal(w) || IsTerminal(&bytes.Buffer{}) {
		t.Fatal("a pipe or a buffer is not a terminal")
	}
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	testenv.Require(t, err == nil, "no pseudo-terminal: %v", err)
	defer ptmx.Close()
	if !IsTerminal(ptmx) {
		t.Fatal("a pseudo-terminal is a terminal")
	}
}
