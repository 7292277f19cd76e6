package locksmith

import (
	"fmt"
	"strings"
	"time"
)

// Window is a reboot window: daily at a time, or weekly on a day at a time, for a length.
// The format is locksmith's: LOCKSMITHD_REBOOT_WINDOW_START="Thu 04:00" (or "04:00" for every
// day) and LOCKSMITHD_REBOOT_WINDOW_LENGTH="1h30m".
type Window struct {
	Weekly   bool
	Day      time.Weekday
	Hour     int
	Minute   int
	Length   time.Duration
	Location *time.Location
}

var days = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// ParseWindow parses start and length; both empty means "no window" (nil).
func ParseWindow(start, length string) (*Window, error) {
	if start == "" && length == "" {
		return nil, nil
	}
	w := &Window{Location: time.Local}
	f := strings.Fields(start)
	if len(f) == 2 {
		d, ok := days[strings.ToLower(f[0])[:min(3, len(f[0]))]]
		if !ok {
			return nil, fmt.Errorf("reboot window start %q: unknown day %q", start, f[0])
		}
		w.Weekly, w.Day = true, d
		f = f[1:]
	}
	if len(f) != 1 {
		return nil, fmt.Errorf("reboot window start %q: want [DAY] HH:MM", start)
	}
	if _, err := fmt.Sscanf(f[0], "%d:%d", &w.Hour, &w.Minute); err != nil || w.Hour < 0 || w.Hour > 23 || w.Minute < 0 || w.Minute > 59 {
		return nil, fmt.Errorf("reboot window start %q: want HH:MM", start)
	}
	d, err := time.ParseDuration(length)
	if err != nil || d <= 0 {
		return nil, fmt.Errorf("reboot window length %q: want a positive duration", length)
	}
	period := 24 * time.Hour
	if w.Weekly {
		period *= 7
	}
	if d > period {
		return nil, fmt.Errorf("reboot window length %s is longer than its period %s", d, period)
	}
	w.Length = d
	return w, nil
}

// lastStart is the latest window start at or before t.
func (w *Window) lastStart(t time.Time) time.Time {
	t = t.In(w.Location)
	s := time.Date(t.Year(), t.Month(), t.Day(), w.Hour, w.Minute, 0, 0, w.Location)
	if w.Weekly {
		s = s.AddDate(0, 0, int(w.Day)-int(t.Weekday()))
	}
	for s.After(t) {
		if w.Weekly {
			s = s.AddDate(0, 0, -7)
		} else {
			s = s.AddDate(0, 0, -1)
		}
	}
	return s
}

// Wait returns how long from t until the window is open (0 if it is open at t).
// A nil window is always open.
func (w *Window) Wait(t time.Time) time.Duration {
	if w == nil {
		return 0
	}
	s := w.lastStart(t)
	if t.Sub(s) < w.Length {
		return 0
	}
	next := s.AddDate(0, 0, 1)
	if w.Weekly {
		next = s.AddDate(0, 0, 7)
	}
	return next.Sub(t)
}

// Next returns how long from t until the start of the next window: the one after the window
// open at t, or the coming one if none is open. A nil window is always open: 0.
func (w *Window) Next(t time.Time) time.Duration {
	if w == nil {
		return 0
	}
	if wait := w.Wait(t); wait > 0 {
		return wait
	}
	s := w.lastStart(t)
	if w.Weekly {
		return s.AddDate(0, 0, 7).Sub(t)
	}
	return s.AddDate(0, 0, 1).Sub(t)
}
