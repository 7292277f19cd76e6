package discovery

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// Limits on what a discovery page may hold. Real pages are a few hundred bytes with a
// handful of tags; anything far beyond is a broken or hostile server.
const (
	DefaultMaxPageSize = 256 << 10
	MaxMetaTags        = 64
	maxTemplateLen     = 2048
)

// Meta kinds.
const (
	KindDiscovery = "ac-discovery"
	KindPubKeys   = "ac-discovery-pubkeys"
)

// Meta is one <meta name="ac-discovery[-pubkeys]" content="PREFIX URL-TEMPLATE"> tag.
type Meta struct {
	Kind     string // KindDiscovery or KindPubKeys
	Prefix   string // the image-name prefix the tag is for
	Template string // a URL template ({name}, {version}, {os}, {arch}, {ext}, other labels)
}

// ErrPageTooBig means a discovery page exceeded its size limit.
var ErrPageTooBig = errors.New("discovery page too big")

// ParseMeta reads the appc discovery meta tags of an HTML page, reading at most limit bytes
// (DefaultMaxPageSize when limit <= 0): a longer page is an error, not a silent cut, since
// the tags past the cut could change the answer. Tags of other names, without a prefix and
// a template, or beyond MaxMetaTags are ignored.
func ParseMeta(r io.Reader, limit int64) ([]Meta, error) {
	if limit <= 0 {
		limit = DefaultMaxPageSize
	}
	lr := &io.LimitedReader{R: r, N: limit + 1}
	z := html.NewTokenizer(lr)
	z.SetMaxBuf(int(limit) + 1)
	var out []Meta
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			err := z.Err()
			if lr.N <= 0 {
				return nil, fmt.Errorf("%w: more than %d bytes", ErrPageTooBig, limit)
			}
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if errors.Is(err, html.ErrBufferExceeded) {
				return nil, fmt.Errorf("%w: a token longer than %d bytes", ErrPageTooBig, limit)
			}
			return nil, fmt.Errorf("reading discovery page: %w", err)
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		name, hasAttr := z.TagName()
		if atom.Lookup(name) != atom.Meta || !hasAttr || len(out) >= MaxMetaTags {
			continue
		}
		if m, ok := metaFromAttrs(z); ok {
			out = append(out, m)
		}
	}
}

func metaFromAttrs(z *html.Tokenizer) (Meta, bool) {
	var m Meta
	var content string
	for {
		key, val, more := z.TagAttr()
		switch string(key) {
		case "name":
			m.Kind = string(val)
		case "content":
			content = string(val)
		}
		if !more {
			break
		}
	}
	if m.Kind != KindDiscovery && m.Kind != KindPubKeys {
		return Meta{}, false
	}
	fields := strings.Fields(content)
	if len(fields) != 2 || len(fields[1]) > maxTemplateLen {
		return Meta{}, false
	}
	m.Prefix, m.Template = fields[0], fields[1]
	return m, true
}
