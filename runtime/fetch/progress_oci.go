package fetch

import (
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// progressImage shows one progress bar for all the layer bytes the store reads from a
// registry image (the store reads layers in parallel, so the bar is shared).
type progressImage struct {
	v1.Image
	w    io.Writer
	once sync.Once
	bar  *sharedBar
}

type sharedBar struct {
	mu    sync.Mutex
	bar   *progressBar
	open  int
	total int
}

func (p *progressImage) Layers() ([]v1.Layer, error) {
	ls, err := p.Image.Layers()
	if err != nil {
		return nil, err
	}
	p.once.Do(func() {
		var total int64
		for _, l := range ls {
			if n, err := l.Size(); err == nil {
				total += n
			}
		}
		p.bar = &sharedBar{bar: &progressBar{w: p.w, what: "Downloading layers", total: total}, total: len(ls)}
	})
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = &progressLayer{Layer: l, bar: p.bar}
	}
	return out, nil
}

type progressLayer struct {
	v1.Layer
	bar *sharedBar
}

func (l *progressLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	return &progressReader{rc: rc, bar: l.bar}, nil
}

type progressReader struct {
	rc     io.ReadCloser
	bar    *sharedBar
	closed bool
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.rc.Read(b)
	r.bar.mu.Lock()
	r.bar.bar.add(n)
	r.bar.mu.Unlock()
	return n, err
}

func (r *progressReader) Close() error {
	r.bar.mu.Lock()
	if !r.closed {
		r.closed = true
		r.bar.open++
		if r.bar.open == r.bar.total {
			r.bar.bar.finish()
		}
	}
	r.bar.mu.Unlock()
	return r.rc.Close()
}
