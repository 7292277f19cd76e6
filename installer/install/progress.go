package install

import (
	"fmt"
	"io"
)

// progress prints "written/total (pct%)" lines at most once per 5%.
type progress struct {
	w     io.Writer
	total int64
	last  int64
}

func (p *progress) update(n int64) {
	if p.w == nil || p.total <= 0 {
		return
	}
	pct := n * 100 / p.total
	if pct >= p.last+5 || n == p.total {
		p.last = pct
		fmt.Fprintf(p.w, "writing image: %d/%d MiB (%d%%)\n", n>>20, p.total>>20, pct)
	}
}
