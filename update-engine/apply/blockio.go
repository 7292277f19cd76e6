package apply

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Writing and reading back a slot: large, page-aligned buffers moved through a short pipeline
// (decode → write, read → hash) so that the CPU and the device work at the same time, with
// no copy beyond the one out of the decoder's block. The device is opened with O_DIRECT
// where it allows it: the bytes go from these buffers to the device without passing through
// the page cache (one copy less per byte, no gigabyte of dirty pages for the kernel to write
// back, and the running system's cache is not evicted for a /usr it does not use), and the
// read-back sees the device, not a cached copy.

const (
	ioBufSize = 4 << 20 // per write or read; a multiple of every logical block size
	ioBufs    = 4       // in flight: one filling, the others queued for or at the device
	ioAlign   = 4096    // O_DIRECT alignment of offsets, lengths and memory
)

// directIO can be turned off to test the buffered path.
var directIO = true

// bufPool is a fixed set of page-aligned buffers, mapped outside the Go heap (the garbage
// collector neither scans them nor counts them towards its target), reused by every step of
// a run.
type bufPool struct {
	mem  []byte
	bufs [][]byte
}

func newBufPool() (*bufPool, error) {
	mem, err := unix.Mmap(-1, 0, ioBufSize*ioBufs, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("I/O buffers: %w", err)
	}
	p := &bufPool{mem: mem}
	for i := range ioBufs {
		p.bufs = append(p.bufs, mem[i*ioBufSize:(i+1)*ioBufSize:(i+1)*ioBufSize])
	}
	return p, nil
}

func (p *bufPool) release() {
	if p != nil && p.mem != nil {
		// munmap of the whole mapping newBufPool made fails only on a bad address or
		// length, which this cannot pass; the buffers are dropped either way.
		_ = unix.Munmap(p.mem)
		p.mem, p.bufs = nil, nil
	}
}

// openDevice opens a slot's partition (or a file standing in for one in tests) for
// writing or reading, with O_DIRECT if the file system or driver accepts it.
func openDevice(path string, flag int) (f *os.File, direct bool, err error) {
	if directIO {
		f, err := os.OpenFile(path, flag|unix.O_DIRECT, 0)
		if err == nil {
			return f, true, nil
		}
		if !errors.Is(err, unix.EINVAL) {
			return nil, false, err
		}
	}
	f, err = os.OpenFile(path, flag, 0)
	return f, false, err
}

// setDirect switches O_DIRECT off for a final piece whose length is not aligned.
func setDirect(f *os.File, on bool) error {
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	if on {
		fl |= unix.O_DIRECT
	} else {
		fl &^= unix.O_DIRECT
	}
	_, err = unix.FcntlInt(f.Fd(), unix.F_SETFL, fl)
	return err
}

// pipeErr keeps the first error of a pipeline.
type pipeErr struct {
	mu  sync.Mutex
	err error
}

func (p *pipeErr) set(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
}

func (p *pipeErr) get() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// deviceWriter is an io.Writer for the decoder: it copies what it is given into aligned
// buffers and a goroutine writes full ones to the device in order, from offset 0, while
// the decoder goes on. It does not hash: verify-usr hashes what the device gives back.
type deviceWriter struct {
	ctx      context.Context
	f        *os.File
	direct   bool
	progress func(done int64)

	buf        []byte
	free, full chan []byte
	wrote      chan struct{}
	err        pipeErr
	filled     int64
	offset     int64 // the writing goroutine's
}

func newDeviceWriter(ctx context.Context, f *os.File, direct bool, pool *bufPool, progress func(int64)) *deviceWriter {
	n := len(pool.bufs)
	w := &deviceWriter{ctx: ctx, f: f, direct: direct, progress: progress,
		free: make(chan []byte, n), full: make(chan []byte, n), wrote: make(chan struct{})}
	for _, b := range pool.bufs {
		w.free <- b[:0]
	}
	w.buf = <-w.free
	go w.writeLoop()
	return w
}

func (w *deviceWriter) writeLoop() {
	defer close(w.wrote)
	for b := range w.full {
		if w.err.get() == nil {
			if err := w.writeAt(b); err != nil {
				w.err.set(err)
			}
		}
		w.free <- b[:0]
	}
}

func (w *deviceWriter) writeAt(b []byte) error {
	if w.direct && len(b)%ioAlign != 0 {
		// The last piece of an image whose size is not a multiple of the alignment.
		if err := setDirect(w.f, false); err != nil {
			return err
		}
		w.direct = false
	}
	for len(b) > 0 {
		n, err := w.f.WriteAt(b, w.offset)
		w.offset += int64(n)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (w *deviceWriter) Write(p []byte) (int, error) {
	if err := w.err.get(); err != nil {
		return 0, err
	}
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	n := len(p)
	for len(p) > 0 {
		c := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+c]
		p = p[c:]
		if len(w.buf) == cap(w.buf) {
			w.full <- w.buf
			w.buf = <-w.free
		}
	}
	w.filled += int64(n)
	if w.progress != nil {
		w.progress(w.filled)
	}
	return n, nil
}

// Close hands on what is buffered, waits for the writes and returns the first error. The
// buffers are free again when it returns.
func (w *deviceWriter) Close() error {
	if len(w.buf) > 0 && w.err.get() == nil {
		w.full <- w.buf
	}
	w.buf = nil
	close(w.full)
	<-w.wrote
	return w.err.get()
}

// hashDevice reads size bytes from the start of f and hashes them, reading the next buffer
// while the previous one is hashed.
func hashDevice(ctx context.Context, f *os.File, size int64, h hash.Hash, pool *bufPool, progress func(int64)) (int64, error) {
	type chunk struct {
		b   []byte
		err error
	}
	free := make(chan []byte, len(pool.bufs))
	for _, b := range pool.bufs {
		free <- b
	}
	full := make(chan chunk, len(pool.bufs))
	stop, exited := make(chan struct{}), make(chan struct{})
	defer func() {
		// The reader must be done with the buffers before they are used again.
		close(stop)
		<-exited
	}()
	go func() {
		defer close(exited)
		defer close(full)
		var off int64
		for off < size {
			var b []byte
			select {
			case b = <-free:
			case <-stop:
				return
			}
			want := min(int64(len(b)), size-off)
			// O_DIRECT reads whole aligned blocks: read the last one whole and keep what
			// belongs to the image.
			n, err := io.ReadFull(io.NewSectionReader(f, off, (want+ioAlign-1)/ioAlign*ioAlign), b[:(want+ioAlign-1)/ioAlign*ioAlign])
			if int64(n) > want {
				n, err = int(want), nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			off += int64(n)
			select {
			case full <- chunk{b[:n], err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var done int64
	for c := range full {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		h.Write(c.b)
		done += int64(len(c.b))
		if progress != nil {
			progress(done)
		}
		if c.err == io.EOF {
			break
		}
		if c.err != nil {
			return done, c.err
		}
		free <- c.b[:cap(c.b)]
	}
	return done, nil
}
