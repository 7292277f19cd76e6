package updateconf

import "time"

// Schedule decides when the next update check happens, as Container Linux's update_engine
// did: a first check a few minutes after start, then every ~45 minutes with random fuzz so
// that a fleet does not hit the server in step, and exponential backoff after failed checks.
// It is pure: the caller supplies the random number and the clock.
type Schedule struct {
	Initial    time.Duration // first check after start
	Interval   time.Duration // between successful checks
	Fuzz       time.Duration // total width of the random spread around each delay
	MaxBackoff time.Duration // cap of the delay after failures
}

// DefaultSchedule is Container Linux's: 7 min, 45 min ± 5 min, at most 4 h after errors.
var DefaultSchedule = Schedule{Initial: 7 * time.Minute, Interval: 45 * time.Minute, Fuzz: 10 * time.Minute, MaxBackoff: 4 * time.Hour}

// Delay returns how long to wait before the next check. first is true before the first
// check since start; failures counts consecutive failed checks; r is uniform in [0, 1).
func (s Schedule) Delay(first bool, failures int, r float64) time.Duration {
	d := s.Interval
	if first {
		d = s.Initial
	} else if failures > 0 {
		for i := 0; i < failures && d < s.MaxBackoff; i++ {
			d *= 2
		}
		if d > s.MaxBackoff {
			d = s.MaxBackoff
		}
	}
	d += time.Duration((r - 0.5) * float64(s.Fuzz))
	if d < time.Minute && s.Interval >= time.Minute {
		d = time.Minute
	}
	return d
}
