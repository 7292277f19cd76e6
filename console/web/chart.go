package web

import (
	"fmt"
	"html/template"
	"math"
	"strings"

	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/console/store"
)

// Slice is one part of a breakdown chart.
type Slice struct {
	Key   string // what it counts: a version or a status
	Label string
	N     int
	Color string
	URL   string // the instances it counts
}

// Chart is a breakdown: instances by version or by status.
type Chart struct {
	Title  string
	Total  int
	Slices []Slice
	// Target is the key to mark (the group's version).
	Target string
}

// Pct is a slice's share of the total, in percent.
func (c Chart) Pct(s Slice) float64 {
	if c.Total == 0 {
		return 0
	}
	return 100 * float64(s.N) / float64(c.Total)
}

// VersionChart breaks instances down by version, newest first, coloured by colors.
func VersionChart(title string, b []store.Breakdown, colors map[string]string, target string, url func(key string) string) Chart {
	c := Chart{Title: title, Target: target}
	for _, x := range b {
		label := x.Key
		if label == "" {
			label = "unknown"
		}
		col := colors[x.Key]
		if col == "" {
			col = VersionColor(len(c.Slices))
		}
		c.Slices = append(c.Slices, Slice{Key: x.Key, Label: label, N: x.N, Color: col, URL: url(x.Key)})
		c.Total += x.N
	}
	return c
}

// StatusChart breaks instances down by status, in the order of an update.
func StatusChart(title string, b []store.Breakdown, url func(key string) string) Chart {
	n := map[string]int{}
	for _, x := range b {
		n[x.Key] += x.N
	}
	c := Chart{Title: title}
	for _, s := range rollout.Statuses {
		if n[string(s)] == 0 {
			continue
		}
		c.Slices = append(c.Slices, Slice{Key: string(s), Label: StatusLabel(s), N: n[string(s)], Color: StatusColor(s), URL: url(string(s))})
		c.Total += n[string(s)]
	}
	return c
}

// VersionColors gives each version of an application's fleet its colour, newest first, so
// that a version has the same colour on every page.
func VersionColors(b []store.Breakdown) map[string]string {
	m := map[string]string{}
	for i, x := range b {
		m[x.Key] = VersionColor(i)
	}
	return m
}

// Donut draws the chart as a ring (SVG), the total in its middle: each slice an arc of a
// circle whose circumference is 100, drawn with a dash of its percentage.
func Donut(c Chart) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="donut" viewBox="0 0 42 42" role="img" aria-label="%s">`, template.HTMLEscapeString(c.Title+": "+c.summary()))
	b.WriteString(`<circle cx="21" cy="21" r="15.915" fill="none" stroke="#eaeef2" stroke-width="5.5"></circle>`)
	offset := 25.0 // start at 12 o'clock
	for _, s := range c.Slices {
		p := c.Pct(s)
		if p <= 0 {
			continue
		}
		gap := 0.0
		if len(c.Slices) > 1 && p > 1 {
			gap = 0.4 // a hairline between slices
		}
		fmt.Fprintf(&b, `<circle cx="21" cy="21" r="15.915" fill="none" stroke="%s" stroke-width="5.5" stroke-dasharray="%.3f %.3f" stroke-dashoffset="%.3f"><title>%s</title></circle>`,
			s.Color, math.Max(p-gap, 0.01), 100-math.Max(p-gap, 0.01), offset, template.HTMLEscapeString(fmt.Sprintf("%s: %d (%.0f%%)", s.Label, s.N, p)))
		offset -= p
	}
	fmt.Fprintf(&b, `<text x="21" y="21" class="donut-total">%d</text><text x="21" y="26.5" class="donut-caption">%s</text></svg>`,
		c.Total, plural(c.Total, "machine", "machines"))
	return template.HTML(b.String()) //nolint:gosec // built from escaped parts
}

// Bar draws the chart as one stacked horizontal bar (SVG), for table rows.
func Bar(c Chart) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="stackbar" viewBox="0 0 100 8" preserveAspectRatio="none" role="img" aria-label="%s">`,
		template.HTMLEscapeString(c.Title+": "+c.summary()))
	b.WriteString(`<rect x="0" y="0" width="100" height="8" rx="2" fill="#eaeef2"></rect>`)
	x := 0.0
	for _, s := range c.Slices {
		w := c.Pct(s)
		if w <= 0 {
			continue
		}
		fmt.Fprintf(&b, `<rect x="%.3f" y="0" width="%.3f" height="8" fill="%s"><title>%s</title></rect>`, x, w, s.Color,
			template.HTMLEscapeString(fmt.Sprintf("%s: %d (%.0f%%)", s.Label, s.N, w)))
		x += w
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from escaped parts
}

func (c Chart) summary() string {
	if c.Total == 0 {
		return "no machines"
	}
	var parts []string
	for _, s := range c.Slices {
		parts = append(parts, fmt.Sprintf("%s %d", s.Label, s.N))
	}
	return strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
