package omaha

import (
	"cmp"
	"encoding/xml"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Namespace is the XML namespace of what Cairn's engine reports beyond Omaha: attributes
// on a request's <app> (the operation, step and progress of an update under way) and on a
// rollback's <event> (the boot tries the version had), and a <pods> element in the <app>
// (the machine's pods). Servers that do not know it ignore it: Go's encoding/xml, which
// Nebraska and go-omaha's server decode with, skips attributes and elements a struct does
// not name, and CoreOS update_engine's server side never existed outside Google.
//
// Encoded, an <app> reads:
//
//	<app appid="…" version="1.0.0" … xmlns:cairn="https://github.com/cairn-os/cairn"
//	     cairn:op="UPDATE_STATUS_DOWNLOADING" cairn:step="download" cairn:progress="0.42">
//	  <pods xmlns="https://github.com/cairn-os/cairn" total="2">
//	    <pod uuid="…" state="running"><podapp name="web" image="example.com/web:1.2" state="running"></podapp></pod>
//	  </pods>
//	</app>
const Namespace = "https://github.com/cairn-os/cairn"

// Bounds of a pod list, so that a machine's request stays far below the 64 KiB Nebraska
// accepts whatever runs on it.
const (
	MaxPods       = 64       // pods listed; Pods.Total says how many there are
	MaxPodApps    = 8        // apps listed per pod
	MaxPodField   = 128      // bytes of a name, an image or a state
	MaxPodsBytes  = 16 << 10 // the <pods> element, encoded
	podsOverheadB = 96       // an encoded <pods> element without pods, rounded up
)

// Report is Cairn's part of an <app>: while an update runs, the engine's operation (its
// CURRENT_OP, e.g. UPDATE_STATUS_DOWNLOADING), the step of the update (apply's step
// names: download, write-usr, …) and the progress of the operation (0 to 1, never going
// back within one operation); with update checks, the machine's pods.
type Report struct {
	Operation string   `xml:"https://github.com/cairn-os/cairn op,attr,omitempty"`
	Step      string   `xml:"https://github.com/cairn-os/cairn step,attr,omitempty"`
	Progress  Fraction `xml:"https://github.com/cairn-os/cairn progress,attr,omitempty"`
	Pods      *Pods    `xml:"https://github.com/cairn-os/cairn pods"`
}

// Fraction is a share from 0 to 1, such as progress.
type Fraction float64

// Round is f to three decimals: what the engine sends, so that a report changes when the
// progress moved by a tenth of a percent, not at every byte.
func (f Fraction) Round() Fraction {
	return Fraction(math.Round(float64(f)*1000) / 1000)
}

// MarshalXMLAttr writes the shortest decimal that reads back as f.
func (f Fraction) MarshalXMLAttr(name xml.Name) (xml.Attr, error) {
	return xml.Attr{Name: name, Value: strconv.FormatFloat(float64(f), 'f', -1, 64)}, nil
}

// UnmarshalXMLAttr reads a Fraction; an error names the attribute.
func (f *Fraction) UnmarshalXMLAttr(a xml.Attr) error {
	v, err := strconv.ParseFloat(strings.TrimSpace(a.Value), 64)
	if err != nil || math.IsNaN(v) || v < 0 || v > 1 {
		return fmt.Errorf("attribute %s=%q: not a number from 0 to 1", a.Name.Local, a.Value)
	}
	*f = Fraction(v)
	return nil
}

// Pods is a machine's pods as its container runtime lists them (rkt list): at most MaxPods,
// running ones first; Total is how many there are.
type Pods struct {
	Total Int   `xml:"total,attr"`
	Pods  []Pod `xml:"pod"`
}

// Pod is one pod: its UUID, its state (rkt's: embryo, preparing, prepared, running,
// exited, garbage, …) and its apps.
type Pod struct {
	UUID  string   `xml:"uuid,attr" json:"uuid"`
	State string   `xml:"state,attr" json:"state"`
	Apps  []PodApp `xml:"podapp" json:"apps,omitempty"`
}

// PodApp is one app of a pod: its name, image and state.
type PodApp struct {
	Name  string `xml:"name,attr" json:"name"`
	Image string `xml:"image,attr,omitempty" json:"image,omitempty"`
	State string `xml:"state,attr,omitempty" json:"state,omitempty"`
}

// podRank orders pod states for a list cut short: what runs first.
func podRank(state string) int {
	switch state {
	case "running":
		return 0
	case "embryo", "preparing", "prepared":
		return 1
	case "exited":
		return 2
	}
	return 3
}

// BoundPods sorts pods (running first, then by UUID) and cuts the list to the bounds:
// MaxPods pods, MaxPodApps apps each, fields of MaxPodField bytes (whole characters,
// control characters dropped), and MaxPodsBytes encoded, dropping pods from the end. Total
// is how many pods there were. Sending it again gives the same list, so that a server can
// tell an unchanged list by comparing.
func BoundPods(pods []Pod) *Pods {
	out := &Pods{Total: Int(len(pods))}
	sorted := slices.Clone(pods)
	slices.SortStableFunc(sorted, func(a, b Pod) int {
		return cmp.Or(cmp.Compare(podRank(a.State), podRank(b.State)), strings.Compare(a.UUID, b.UUID))
	})
	size := podsOverheadB
	for _, p := range sorted {
		if len(out.Pods) == MaxPods {
			break
		}
		q := Pod{UUID: field(p.UUID), State: field(p.State)}
		for _, a := range p.Apps {
			if len(q.Apps) == MaxPodApps {
				break
			}
			q.Apps = append(q.Apps, PodApp{Name: field(a.Name), Image: field(a.Image), State: field(a.State)})
		}
		n := podSize(q)
		if size+n > MaxPodsBytes {
			break
		}
		size += n
		out.Pods = append(out.Pods, q)
	}
	return out
}

// Bound is BoundPods of the list, for a list that came from elsewhere (a server bounds what
// it keeps). Total stays the larger of what was said and what is listed.
func (p *Pods) Bound() *Pods {
	if p == nil {
		return nil
	}
	b := BoundPods(p.Pods)
	b.Total = max(b.Total, p.Total, 0)
	return b
}

// podSize is the encoded size of a pod: its fields as encoding/xml escapes them and the
// markup around them.
func podSize(p Pod) int {
	n := len(`<pod uuid="" state=""></pod>`) + escapedLen(p.UUID) + escapedLen(p.State)
	for _, a := range p.Apps {
		n += len(`<podapp name="" image="" state=""></podapp>`) + escapedLen(a.Name) + escapedLen(a.Image) + escapedLen(a.State)
	}
	return n
}

// escapedLen is the length of s in an attribute as encoding/xml writes it.
func escapedLen(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"', '\'':
			n += 5 // &#34; &#39;
		case '&':
			n += 5 // &amp;
		case '<', '>':
			n += 4 // &lt; &gt;
		default:
			n++
		}
	}
	return n
}

// field is s without control characters, invalid UTF-8 and what XML cannot hold, cut to MaxPodField bytes at a
// character's boundary.
func field(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == utf8.RuneError || r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0xfffe || r == 0xffff {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > MaxPodField {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
