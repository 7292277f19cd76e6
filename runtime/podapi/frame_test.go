package podapi

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestFrames(t *testing.T) {
	var b bytes.Buffer
	WriteFrame(&b, Stdout, []byte("out\n"))
	WriteFrame(&b, Stderr, []byte("err\n"))
	WriteFrame(&b, Stdout, nil) // nothing to send: no frame
	WriteFrame(&b, Stdout, []byte("more"))
	if got := b.Bytes()[:12]; !bytes.Equal(got, []byte{1, 0, 0, 0, 0, 0, 0, 4, 'o', 'u', 't', '\n'}) {
		t.Fatalf("stdcopy header: % x", got)
	}
	var out, errs bytes.Buffer
	if err := Demux(&b, &out, &errs); err != nil {
		t.Fatal(err)
	}
	if out.String() != "out\nmore" || errs.String() != "err\n" {
		t.Fatalf("out %q err %q", out.String(), errs.String())
	}
	big := bytes.Repeat([]byte("x"), MaxFrame+10)
	b.Reset()
	WriteFrame(&b, Stderr, big)
	errs.Reset()
	if err := Demux(&b, nil, &errs); err != nil || !bytes.Equal(errs.Bytes(), big) {
		t.Fatalf("a write larger than a frame: %v, %d bytes", err, errs.Len())
	}
}

func TestBadFrames(t *testing.T) {
	for name, in := range map[string]string{
		"stdin frame":   "\x00\x00\x00\x00\x00\x00\x00\x01x",
		"bad padding":   "\x01\x01\x00\x00\x00\x00\x00\x01x",
		"empty frame":   "\x01\x00\x00\x00\x00\x00\x00\x00",
		"huge frame":    "\x01\x00\x00\x00\xff\xff\xff\xff",
		"unknown":       "\x07\x00\x00\x00\x00\x00\x00\x01x",
		"cut in header": "\x01\x00\x00",
	} {
		t.Run(name, func(t *testing.T) {
			err := Demux(strings.NewReader(in), io.Discard, io.Discard)
			if !errors.Is(err, ErrBadFrame) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("%v", err)
			}
		})
	}
	if err := Demux(strings.NewReader("\x01\x00\x00\x00\x00\x00\x00\x05ab"), io.Discard, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut in data: %v", err)
	}
}
