package podapi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The output of an attach to an app without a tty comes in frames, as Docker's attach
// multiplexes stdout and stderr on one connection (its stdcopy format, which CRI streaming
// servers already read): an 8-byte header, [stream, 0, 0, 0, size as 4 bytes big-endian],
// then size bytes of data.

// Stream identifies the stream a frame carries.
type Stream byte

// The streams, numbered as Docker numbers them.
const (
	Stdin  Stream = 0
	Stdout Stream = 1
	Stderr Stream = 2
)

func (s Stream) String() string {
	switch s {
	case Stdin:
		return "stdin"
	case Stdout:
		return "stdout"
	case Stderr:
		return "stderr"
	}
	return fmt.Sprintf("stream %d", byte(s))
}

// MaxFrame bounds a frame's data: the supervisor sends at most what one read of an app's
// output returned (32 KiB); a reader refuses anything larger rather than allocate it.
const MaxFrame = 1 << 20

const frameHeader = 8

// ErrBadFrame says a frame header is not one that WriteFrame writes.
var ErrBadFrame = errors.New("malformed attach frame")

// WriteFrame writes data as one frame of stream s (several, if it is larger than MaxFrame).
func WriteFrame(w io.Writer, s Stream, data []byte) error {
	for len(data) > 0 {
		n := min(len(data), MaxFrame)
		var hdr [frameHeader]byte
		hdr[0] = byte(s)
		binary.BigEndian.PutUint32(hdr[4:], uint32(n))
		if _, err := w.Write(append(hdr[:], data[:n]...)); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// ReadFrame reads one frame. It returns io.EOF at a clean end between frames and
// io.ErrUnexpectedEOF inside one.
func ReadFrame(r io.Reader) (Stream, []byte, error) {
	var hdr [frameHeader]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	s := Stream(hdr[0])
	n := binary.BigEndian.Uint32(hdr[4:])
	if s != Stdout && s != Stderr || hdr[1] != 0 || hdr[2] != 0 || hdr[3] != 0 || n == 0 || n > MaxFrame {
		return 0, nil, fmt.Errorf("%w: header % x", ErrBadFrame, hdr)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return s, data, nil
}

// Demux copies frames from r to stdout and stderr (either may be nil: its frames are
// dropped) until r ends; a clean end is not an error.
func Demux(r io.Reader, stdout, stderr io.Writer) error {
	for {
		s, data, err := ReadFrame(r)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		w := stdout
		if s == Stderr {
			w = stderr
		}
		if w == nil {
			continue
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
}
