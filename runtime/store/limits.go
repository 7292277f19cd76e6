package store

import (
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"github.com/dustin/go-humanize"
)

// Limits bound what one import extracts, so that a small hostile archive (a compression
// bomb, a sparse file declaring a TiB, millions of empty files) cannot fill the disk. They
// are checked as the archive is read, before anything past them is written; an import that
// goes past one is abandoned and leaves nothing in the store.
type Limits struct {
	// MaxImageSize bounds the file content an import writes, over all the layers it
	// extracts, counting each regular file by the size its header declares: a sparse file
	// counts whole, as its holes are written out. Layers already in the store are not
	// extracted again and do not count.
	MaxImageSize int64
	// MaxImageEntries bounds the names an import creates (files, directories, links, and
	// the parent directories an archive leaves implied), over all its layers.
	MaxImageEntries int64
	// MaxCompressionRatio bounds, for each layer, its extracted size over the bytes of the
	// (compressed) archive read so far, once the layer is past RatioGrace.
	MaxCompressionRatio int64

	// Origin names, by setting ("maxImageSize", "maxImageEntries", "maxCompressionRatio"),
	// the file that set a limit; a limit it does not name is the default.
	Origin map[string]string
	// ConfigDir is where an administrator sets the limits (/etc/rkt/store.d), for the error
	// that says how to raise one.
	ConfigDir string
}

// DefaultLimits apply where Limits leaves a field zero. 16 GiB holds ordinary images many
// times over (the largest machine-learning images may need more) and bounds what one image
// takes of a disk; 1,000,000 names is about twice a whole Debian development machine's root
// file system; real layers compress a few-fold (text-heavy ones rarely past 20), so 100-fold
// is a bomb or a large file of zeros, which RatioGrace still lets through when it is small.
var DefaultLimits = Limits{MaxImageSize: 16 << 30, MaxImageEntries: 1_000_000, MaxCompressionRatio: 100}

// RatioGrace is how much a layer may extract before MaxCompressionRatio applies: a small
// file of zeros compresses a thousand-fold and harms nobody.
const RatioGrace = 64 << 20

// maxLimit caps every limit, so that adding up declared sizes cannot overflow.
const maxLimit = 1 << 60

// withDefaults fills the zero fields of l from DefaultLimits and caps every field.
func (l Limits) withDefaults() Limits {
	for _, f := range []struct{ v, def *int64 }{
		{&l.MaxImageSize, &DefaultLimits.MaxImageSize},
		{&l.MaxImageEntries, &DefaultLimits.MaxImageEntries},
		{&l.MaxCompressionRatio, &DefaultLimits.MaxCompressionRatio},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
		*f.v = min(*f.v, maxLimit)
	}
	return l
}

// exceeded is the error for going past a limit: what happened, at which entry, which
// setting stopped it, where it was set and how to raise it.
func (l Limits) exceeded(setting, what, entry string) error {
	var where string
	switch f := l.Origin[setting]; {
	case f != "":
		where = ", set in " + f + "; raise it there"
	case l.setting(setting) == DefaultLimits.setting(setting):
		where = ", the default"
		if l.ConfigDir != "" {
			where += fmt.Sprintf("; raise it in a file in %s: {\"rktKind\": \"store\", \"rktVersion\": \"v1\", %q: ...}", l.ConfigDir, setting)
		}
	}
	return fmt.Errorf("%w: %s at entry %q (store limit %s%s)", ErrTooLarge, what, strings.TrimPrefix(entry, "./"), setting, where)
}

func (l Limits) setting(name string) int64 {
	switch name {
	case "maxImageSize":
		return l.MaxImageSize
	case "maxImageEntries":
		return l.MaxImageEntries
	case "maxCompressionRatio":
		return l.MaxCompressionRatio
	}
	return 0
}

// budget is one import's account against its Limits, shared by the layers it extracts at
// the same time.
type budget struct {
	limits         Limits
	bytes, entries atomic.Int64
}

func newBudget(l Limits) *budget { return &budget{limits: l.withDefaults()} }

// layer returns the tarx.Limit for one archive of the import; in reports how many bytes of
// the archive (as stored, compressed) have been read so far.
func (b *budget) layer(in func() int64) *layerBudget { return &layerBudget{budget: b, in: in} }

// layerBudget charges one archive's entries to its import's budget and checks the archive's
// own compression ratio as its files are written.
type layerBudget struct {
	*budget
	in      func() int64
	written int64
}

// Charge implements tarx.Limit: the sizes headers declare, before anything is written.
func (l *layerBudget) Charge(name string, size int64) error {
	lim := &l.limits
	if size > lim.MaxImageSize {
		return lim.exceeded("maxImageSize", fmt.Sprintf("extracts to more than %s (a file of %s)",
			humanize.IBytes(uint64(lim.MaxImageSize)), humanize.IBytes(uint64(size))), name)
	}
	if n := l.entries.Add(1); n > lim.MaxImageEntries {
		return lim.exceeded("maxImageEntries", fmt.Sprintf("more than %d files, directories and links", lim.MaxImageEntries), name)
	}
	if n := l.budget.bytes.Add(size); n > lim.MaxImageSize {
		return lim.exceeded("maxImageSize", "extracts to more than "+humanize.IBytes(uint64(lim.MaxImageSize)), name)
	}
	return nil
}

// Wrote implements tarx.WriteLimit: the ratio of what the layer wrote to how much of its
// archive was read to write it. Checked on the writes, not on declared sizes: a large file
// declares its size before its data is read, and a binary of 100 MiB at the start of a layer
// is no bomb.
func (l *layerBudget) Wrote(name string, n int64) error {
	lim := &l.limits
	l.written += n
	if in := l.in(); l.written > RatioGrace && l.written/lim.MaxCompressionRatio > in {
		return lim.exceeded("maxCompressionRatio", fmt.Sprintf("expands more than %d-fold (%s from %s of archive)",
			lim.MaxCompressionRatio, humanize.IBytes(uint64(l.written)), humanize.IBytes(uint64(in))), name)
	}
	return nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}
