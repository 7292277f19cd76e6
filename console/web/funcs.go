package web

import (
	"fmt"
	"html/template"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/console/store"
	"github.com/cairn-os/cairn/update-engine/omaha"
)

func funcs() template.FuncMap {
	return template.FuncMap{
		"ago":          Ago,
		"when":         When,
		"iso":          func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"statusLabel":  StatusLabel,
		"statusColor":  StatusColor,
		"statusClass":  func(s rollout.Status) string { return "st-" + string(orUndefined(s)) },
		"inProgress":   func(s rollout.Status) bool { return s.InProgress() },
		"errName":      func(code int) string { return omaha.ErrorCode(code).String() },
		"short":        Short,
		"bytes":        func(n int64) string { return humanize.IBytes(uint64(max(n, 0))) },
		"pct":          func(f float64) string { return fmt.Sprintf("%.0f%%", math.Round(f)) },
		"percent":      percent,
		"progressPct":  func(f float64) string { return fmt.Sprintf("%.0f", math.Round(100*math.Max(0, math.Min(1, f)))) },
		"donut":        Donut,
		"bar":          Bar,
		"appRef":       appRef,
		"esc":          url.PathEscape,
		"query":        url.QueryEscape,
		"add":          func(a, b int) int { return a + b },
		"plural":       plural,
		"duration":     func(d rollout.Duration) string { return Duration(time.Duration(d)) },
		"goDuration":   func(d rollout.Duration) string { return GoDuration(time.Duration(d)) },
		"limit":        limitText,
		"machineName":  MachineName,
		"severityIcon": severityIcon,
		"eventText":    func(e *store.Event) string { return e.String() },
		"eventKind":    func(e *store.Event) string { return string(e.Kind()) },
		"lower":        strings.ToLower,
		"initial":      initial,
		"opLabel":      OperationLabel,
		"stepText":     StepText,
		"machineOf": func(m map[[2]string]string, app, id string) string {
			if n := m[[2]string{app, id}]; n != "" {
				return n
			}
			return Short(id)
		},
		"podClass": podClass,
		"dict":     dict,
		"str":      func(v any) string { return fmt.Sprint(v) },
		"frag": func(frags map[string]template.HTML, id string) template.HTML {
			return frags[id]
		},
	}
}

func orUndefined(s rollout.Status) rollout.Status {
	if s == "" {
		return rollout.StatusUndefined
	}
	return s
}

func percent(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func limitText(n int) string {
	if n <= 0 {
		return "no limit"
	}
	return fmt.Sprint(n)
}

// dict builds a map for a partial template: dict "k1" v1 "k2" v2.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, fmt.Errorf("dict: odd number of arguments")
	}
	m := map[string]any{}
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
		}
		m[k] = kv[i+1]
	}
	return m, nil
}

// Ago says how long before now t was, as people say it: "just now", "12 s ago",
// "5 min ago", "3 h ago", "2 days ago"; "never" for the zero time.
func Ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		d = -d
		return "in " + span(d)
	case d < 5*time.Second:
		return "just now"
	}
	return span(d) + " ago"
}

func span(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

// When is a time for a table: date and time in UTC, to the second.
func When(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

// Duration says a duration as people say it: "1 h", "30 min", "1 h 30 min", "45 s".
func Duration(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	var parts []string
	if h := int(d.Hours()); h > 0 {
		if h%24 == 0 && h >= 48 {
			return fmt.Sprintf("%d days", h/24)
		}
		parts = append(parts, fmt.Sprintf("%d h", h))
		d -= time.Duration(h) * time.Hour
	}
	if m := int(d.Minutes()); m > 0 {
		parts = append(parts, fmt.Sprintf("%d min", m))
		d -= time.Duration(m) * time.Minute
	}
	if s := int(d.Seconds()); s > 0 {
		parts = append(parts, fmt.Sprintf("%d s", s))
	}
	if len(parts) == 0 {
		return d.String()
	}
	return strings.Join(parts, " ")
}

// GoDuration is a duration as a form field holds it: "1h", "30m", "1h30m", "45s".
func GoDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Short is the start of a long id (a machine id, a UUID), enough to tell ids apart.
func Short(id string) string {
	if len(id) <= 12 {
		return id
	}
	return id[:8] + "…"
}

// MachineName is how pages name a machine: its alias, else its id.
func MachineName(in *store.Instance) string {
	if in.Alias != "" {
		return in.Alias
	}
	return in.ID
}

// OperationLabel is an engine's operation for people: UPDATE_STATUS_DOWNLOADING is
// "Downloading", UPDATE_STATUS_UPDATED_NEED_REBOOT "Updated, needs a reboot".
func OperationLabel(op string) string {
	switch op {
	case "":
		return ""
	case "UPDATE_STATUS_UPDATED_NEED_REBOOT":
		return "Updated, needs a reboot"
	case "UPDATE_STATUS_REPORTING_ERROR_EVENT":
		return "Reporting an error"
	}
	s := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(op, "UPDATE_STATUS_"), "_", " "))
	return strings.ToUpper(s[:1]) + s[1:]
}

// StepText says where an update is: the operation, and the step when it says more
// ("Finalizing · write-usr", but "Downloading" rather than "Downloading · download").
func StepText(op, step string) string {
	l := OperationLabel(op)
	switch {
	case l == "":
		return step
	case step == "" || strings.Contains(strings.ToLower(l), strings.ToLower(step)):
		return l
	}
	return l + " · " + step
}

// podClass is a pod state's pill colour.
func podClass(state string) string {
	switch state {
	case "running":
		return "green"
	case "embryo", "preparing", "prepared":
		return "blue"
	case "exited":
		return "gray"
	}
	return "orange"
}

// initial is a name's first letter, for an avatar.
func initial(s string) string {
	for _, r := range s {
		return strings.ToUpper(string(r))
	}
	return "?"
}

func severityIcon(s string) string {
	switch s {
	case store.SeverityError:
		return "✕"
	case store.SeverityWarning:
		return "!"
	}
	return "i"
}
