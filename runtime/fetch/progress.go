package fetch

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progressBar draws "what: [=====>     ]  1.2 MiB / 3.4 MiB" on one terminal line, at most ten
// times a second.
type progressBar struct {
	w     io.Writer
	what  string
	total int64 // -1 when unknown
	n     int64
	last  time.Time
}

func newProgressBar(w io.Writer, what string, total int64) *progressBar {
	p := &progressBar{w: w, what: what, total: total}
	p.draw()
	return p
}

func (p *progressBar) Write(b []byte) (int, error) {
	p.add(len(b))
	return len(b), nil
}

// add counts n more bytes.
func (p *progressBar) add(n int) {
	p.n += int64(n)
	if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond {
		p.last = now
		p.draw()
	}
}

func (p *progressBar) draw() {
	const width = 30
	if p.total <= 0 {
		fmt.Fprintf(p.w, "\r%s: %s", p.what, size(p.n))
		return
	}
	done := int(min(p.n, p.total) * width / p.total)
	bar := strings.Repeat("=", done)
	if done < width {
		bar += ">" + strings.Repeat(" ", width-done-1)
	}
	fmt.Fprintf(p.w, "\r%s: [%s] %s / %s", p.what, bar, size(p.n), size(p.total))
}

func (p *progressBar) finish() {
	p.draw()
	fmt.Fprintln(p.w)
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
