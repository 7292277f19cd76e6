package sim

import (
	"testing"
	"time"
)

func TestHistogramQuantile(t *testing.T) {
	for _, tc := range []struct {
		name string
		adds []time.Duration
		q    float64
		want time.Duration // the upper bound of the quantile's bucket
	}{
		{"empty", nil, 0.5, 0},
		{"one", []time.Duration{time.Millisecond}, 0.99, 1024 * time.Microsecond},
		{"below a microsecond", []time.Duration{0}, 0.5, 1189 * time.Nanosecond},
		{"median of three", []time.Duration{time.Microsecond, time.Millisecond, time.Second}, 0.5, 1024 * time.Microsecond},
		{"p99 of a hundred", append(repeat(99, 100*time.Microsecond), time.Second), 0.99, 107634 * time.Nanosecond},
		{"p99 takes the tail", append(repeat(98, 100*time.Microsecond), time.Second, time.Second), 0.99, 1048576 * time.Microsecond},
		{"beyond the last bucket", []time.Duration{time.Hour}, 0.5, 67108864 * time.Microsecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h histogram
			for _, d := range tc.adds {
				h.add(d)
			}
			if got := h.quantile(tc.q); got != tc.want {
				t.Errorf("quantile(%g) = %s, want %s", tc.q, got, tc.want)
			}
		})
	}
}

func repeat(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func TestNew(t *testing.T) {
	ok := Config{URL: "http://127.0.0.1:8000/v1/update/", AppID: "app", Hosts: 10, Group: "stable", Version: "1.0.0", CheckInterval: time.Hour}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		ok     bool
	}{
		{"valid", func(*Config) {}, true},
		{"no URL", func(c *Config) { c.URL = "" }, false},
		{"no hosts", func(c *Config) { c.Hosts = 0 }, false},
		{"no version", func(c *Config) { c.Version = "" }, false},
		{"failure rate above one", func(c *Config) { c.FailureRate = 1.5 }, false},
		{"negative rollback rate", func(c *Config) { c.RollbackRate = -0.1 }, false},
		{"interval below a minute", func(c *Config) { c.CheckInterval = time.Second }, false},
		{"negative speed", func(c *Config) { c.Speed = -1 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.change(&c)
			if _, err := New(c); (err == nil) != tc.ok {
				t.Errorf("New: %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// One seed gives the same machines; another, others.
func TestNewDeterministic(t *testing.T) {
	cfg := Config{URL: "http://127.0.0.1:8000/v1/update/", AppID: "app", Hosts: 50, Group: "stable", Version: "1.0.0", CheckInterval: time.Hour, Seed: 7}
	a, _ := New(cfg)
	b, _ := New(cfg)
	cfg.Seed = 8
	c, _ := New(cfg)
	for i := range a.hosts {
		x, y := a.hosts[i], b.hosts[i]
		if x.e.MachineID != y.e.MachineID || x.bandwidth != y.bandwidth || x.disk != y.disk || len(x.pods) != len(y.pods) ||
			x.rng.Uint64() != y.rng.Uint64() {
			t.Fatalf("machine %d differs between two fleets of one seed", i)
		}
		if x.e.MachineID == c.hosts[i].e.MachineID {
			t.Fatalf("machine %d the same under another seed", i)
		}
	}
}

// A download takes the payload's size over the machine's bandwidth; every step of apply's
// is timed.
func TestSteps(t *testing.T) {
	h := &host{bandwidth: 100e6, disk: 200e6}
	steps := h.steps(400e6)
	if len(steps) == 0 || steps[0].Name != "download" || steps[0].d != 4*time.Second {
		t.Fatalf("steps: %+v", steps)
	}
	for _, s := range steps {
		if s.d <= 0 {
			t.Errorf("step %s takes %s", s.Name, s.d)
		}
		if s.Name == "write-usr" && s.d != 4*time.Second {
			t.Errorf("write-usr of 800 MB at 200 MB/s takes %s", s.d)
		}
	}
}
